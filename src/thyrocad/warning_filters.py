"""Warning filters that hold when threads interleave.

`warnings.catch_warnings` saves and restores the process-wide filter list: it is not
thread-safe (Python documentation, `warnings`). In the web app, requests and report builders
run in threads; one thread decoding pixels with UserWarning turned into an error made a
harmless pydicom warning in another request (a patient name over 64 characters) a server
error, and two blocks that overlap can restore each other's filters for good. Every thyrocad
block that changes the filters enters `filtered`, which holds one process-wide lock for the
block's duration, and none turns a warning from any library into an error: a caller that must
refuse on a warning records them and checks the record (`thyrocad.io.dicom`). A record holds
the recording thread's warnings only: a thread outside any block that warns meanwhile (the
lock cannot stop it) is shown as it would have been, not taken for the recorder's.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.RLock()


@contextmanager
def filtered(
    action: str, category: type[Warning] = Warning, *, record: bool = False
) -> Iterator[list[warnings.WarningMessage] | None]:
    """`warnings.catch_warnings()` with `simplefilter(action, category)`, under the
    process-wide lock (module doc); yields this thread's warnings' record when `record`."""
    with _LOCK, warnings.catch_warnings():  # restores `showwarning` on exit
        warnings.simplefilter(action, category)
        yield _record_this_thread() if record else None


def _record_this_thread() -> list[warnings.WarningMessage]:
    """Install a `warnings.showwarning` (documented as replaceable) that keeps this thread's
    warnings in the returned list and passes other threads' on to the one it replaces."""
    owner, shown, caught = threading.get_ident(), warnings.showwarning, []

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if threading.get_ident() == owner:
            caught.append(warnings.WarningMessage(message, category, filename, lineno, file, line))
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    return caught
