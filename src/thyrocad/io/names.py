"""Views and patients from file names: `PH0001_anterior.png` is patient PH0001's anterior view.

A file name states a view with a token at the end of its stem (the name without its last
suffix), case-insensitive:

- `anterior`, `ant`, `posterior`, `post`, after a separator (`_`, `-`, `.` or a space):
  `PH0001_anterior.png`, `pt 12 - Post.jpg`, `0042.ANT.dcm`;
- the same tokens in capitals right after a digit or a lower-case letter: `PH0001ANT.png`,
  `smithPOST.png` (not `GRANT.png`, not `elephant.png`);
- or the whole stem: `anterior.png` (in a patient folder).

The patient is the stem before the token, without trailing separators (`PH0001`). Single
letters (`_a`, `_p`) are not read from names: too many names end in them by chance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from thyrocad.study import View

VIEW_TOKENS = {
    "anterior": View.ANTERIOR,
    "ant": View.ANTERIOR,
    "posterior": View.POSTERIOR,
    "post": View.POSTERIOR,
}
_TOKENS = "|".join(sorted(VIEW_TOKENS, key=len, reverse=True))
_SEPARATED = re.compile(rf"^(?P<patient>.*?)[\s_.\-]+(?P<token>{_TOKENS})$", re.IGNORECASE)
_GLUED = re.compile(rf"^(?P<patient>.*[0-9a-z])(?P<token>{_TOKENS.upper()})$")
_WHOLE = re.compile(rf"^(?P<patient>)(?P<token>{_TOKENS})$", re.IGNORECASE)


@dataclass(frozen=True)
class NamedView:
    """What a file name says: the view, the token that said it, the patient stem before it."""

    view: View
    token: str
    patient: str


def view_from_name(name: str | PurePath) -> NamedView | None:
    """The view a file name states (see the module docstring), or None."""
    stem = PurePath(name).stem.strip()
    for pattern in (_WHOLE, _SEPARATED, _GLUED):
        found = pattern.match(stem)
        if found:
            token = found["token"]
            return NamedView(VIEW_TOKENS[token.lower()], token, found["patient"].strip(" _.-"))
    return None
