"""The slow half of an analysis, made after its verdict: Grad-CAM, figures, report, DICOM.

An upload is answered as soon as the model has decided (`DiagnosisService.decide`: verdict,
probabilities, flags); the rest (`DiagnosisService.render`: Grad-CAM and matplotlib, most of
an analysis's time) runs in this small thread pool and then updates the stored record.
`result["report"]` says where it stands: "pending", then "ready" (with `result["files"]`) or
"failed" (with a note, nothing half-written listed). `wait` blocks until a diagnosis's report
is done (`?wait_report=true` on the API).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

logger = logging.getLogger(__name__)

PENDING, READY, FAILED = "pending", "ready", "failed"


REPORT_NICENESS = 10
"""Nice value of the report threads: a verdict ready to run gets a core before a report."""


def _yield_to_verdicts() -> None:
    """Lower this report thread's CPU priority (Linux schedules each thread by its own nice
    value; elsewhere this is a no-op), so that a verdict waiting for a core gets it first."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, thread) < REPORT_NICENESS:  # never raise priority
            os.setpriority(os.PRIO_PROCESS, thread, REPORT_NICENESS)
    except OSError as exc:  # a report at normal priority rather than none
        logger.warning("report thread priority left as it was: %s", exc)


class Reports:
    """A pool of `workers` threads making reports, and the futures of those not yet done."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="thyrocad-report",
            initializer=_yield_to_verdicts,
        )
        self._running: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, diagnosis_id: str, job: Callable[[], None]) -> None:
        """Run `job` (which stores the report's outcome itself) in the pool."""
        with self._lock:
            future = self._pool.submit(job)
            self._running[diagnosis_id] = future
        future.add_done_callback(lambda _: self._forget(diagnosis_id))

    def wait(self, diagnosis_id: str, timeout: float) -> bool:
        """Wait up to `timeout` s for the report of `diagnosis_id`; False if still running."""
        with self._lock:
            future = self._running.get(diagnosis_id)
        if future is None:
            return True
        try:
            future.result(timeout)
        except FutureTimeout:
            return False
        return True

    def shutdown(self) -> None:
        """Finish the reports under way, start no new ones."""
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _forget(self, diagnosis_id: str) -> None:
        with self._lock:
            self._running.pop(diagnosis_id, None)
