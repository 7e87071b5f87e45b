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

A block that only silences its own thread's warnings (a library's warning may quote a
patient's name) enters `quiet` instead: it changes no filter, so it holds no lock while it
runs. Building DICOM results (about 0.1 s per object) under the lock made every other
thread's header parsing and pixel decoding wait for it (docs/benchmarks.md, web app).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.RLock()
_THREAD = threading.local()  # .quiet: how many `quiet` blocks this thread is in


class _Quiet:
    """The `warnings.showwarning` installed while any thread is quiet: it drops a quiet
    thread's warnings and passes the others on to the one it replaced."""

    def __init__(self) -> None:
        self.threads = 0  # threads inside `quiet`, counted under _LOCK
        self.forward = warnings.showwarning

    def __call__(self, message, category, filename, lineno, file=None, line=None) -> None:
        if not getattr(_THREAD, "quiet", 0):
            self.forward(message, category, filename, lineno, file, line)


_QUIET = _Quiet()


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


@contextmanager
def quiet() -> Iterator[None]:
    """This thread's warnings dropped for the block; other threads' shown as before. No filter
    changes, so no lock is held while the block runs (module doc)."""
    with _LOCK:
        if warnings.showwarning is not _QUIET:  # first block, or another hook replaced it
            _QUIET.forward, warnings.showwarning = warnings.showwarning, _QUIET
        _QUIET.threads += 1
    _THREAD.quiet = getattr(_THREAD, "quiet", 0) + 1
    try:
        yield
    finally:
        _THREAD.quiet -= 1
        with _LOCK:
            _QUIET.threads -= 1
            if not _QUIET.threads and warnings.showwarning is _QUIET:
                warnings.showwarning = _QUIET.forward
