"""Keeping patient data out of logs and error messages.

Libraries quote the values they complain about: pydicom's "Invalid value for VR DA:
'1970-01-01'", highdicom's warnings about person names, Python's "invalid literal for int()
with base 10: '...'". `redact` withholds every quoted part of such a message, `RedactingFilter`
does so for every record of another library, `describe_exception` names an unanticipated
exception by type and place only, and `protect_logs` keeps pydicom and highdicom below
WARNING silent (their INFO lines name instances). The interfaces (CLI, web app, DICOM node),
which own the logging setup, call `protect_logs`. No pydicom import: the CLI starts fast.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

# Quoted text in a library's message ('...', "...", b'...'): where libraries put values.
_QUOTED = re.compile(r"""b?'[^'\n]*'|b?"[^"\n]*\"""")
WITHHELD = "<value withheld>"
LIBRARY_LOGGERS = ("pydicom", "highdicom")


def redact(text: str) -> str:
    """`text` with every quoted part replaced: libraries quote the values they complain about."""
    return _QUOTED.sub(WITHHELD, text)


def describe_exception(exc: BaseException) -> str:
    """An exception as type and the place it was raised, without its message (which may
    quote a header value): for errors thyrocad did not anticipate."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = ""
    if tb is not None:
        code = tb.tb_frame.f_code
        where = f" in {Path(code.co_filename).name}:{tb.tb_lineno} ({code.co_name})"
    return f"{type(exc).__name__}{where}"


class RedactingFilter(logging.Filter):
    """Rewrites a library's record so that quoted values in its message are withheld
    (records of the loggers named in `exempt`, e.g. an access log, stay as they are)."""

    def __init__(self, exempt: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.exempt = exempt

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("thyrocad") and record.name not in self.exempt:
            record.msg = redact(record.getMessage())
            record.args = None
        return True


def protect_logs() -> None:
    """pydicom and highdicom: nothing below WARNING, quoted values withheld in what remains.

    Called by the interfaces (CLI, web app, DICOM node), which own the logging setup."""
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        if library.getEffectiveLevel() < logging.WARNING:
            library.setLevel(logging.WARNING)
        if not any(isinstance(f, RedactingFilter) for f in library.filters):
            library.addFilter(RedactingFilter())
