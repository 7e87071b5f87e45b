"""A DICOM node for the PACS: C-STORE SCP that diagnoses each received study and sends back
the results (SR + Secondary Capture) by C-STORE and/or STOW-RS (`thyrocad.node.send`).

Receiving follows PITFALLS 8.2: the C-STORE handler only writes the raw bytes (preamble, file
meta, dataset as received) to disk and answers 0x0000; a worker thread analyses a study once
no instance of it has arrived for `quiet_s` seconds, through the diagnosis service, asking it
only for the DICOM objects it sends. Calling AE titles are checked against an allow-list, the
called AE title against the node's own.

Everything lives on disk under the work folder, so that a crash (kill -9, power loss) loses
nothing and stops nothing:

- `incoming/.partial/`: objects being written (removed at start);
- `incoming/<key>/`: a study's received objects, in its quiet period (re-queued at start);
- `incoming/<key>.work-<id>/`: a study being analysed (analysed again at start, at most
  `MAX_ATTEMPTS` times in all; then removed and logged as failed);
- `results/<id>/`: the results written by the analysis (`<id>.partial` while written;
  removed at start);
- `outbox/<job>.json`: results not yet accepted by every destination, re-sent with
  exponential back-off (`thyrocad.node.outbox`), across restarts;
- `status.json`: studies waiting, being analysed, results awaiting a destination (pending),
  done and failed since start, rewritten whenever it changes.

A failure in one study (or in a send) never ends the worker. `<key>` is a hash of the Study
Instance UID: no path or log line shows the UID.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    EnhancedSRStorage,
    NuclearMedicineImageStorage,
    SecondaryCaptureImageStorage,
    Verification,
)

from thyrocad.diagnosis.service import DiagnosisService, Outputs
from thyrocad.errors import DicomNodeError, ThyrocadError
from thyrocad.files import write_text_atomic
from thyrocad.io.privacy import describe_exception, protect_logs
from thyrocad.node.outbox import Delivery, Outbox
from thyrocad.node.send import PacsTarget, StowTarget, check_aet, send_files, stow_files

logger = logging.getLogger(__name__)

# Received and analysed.
ANALYSED_CLASSES = (NuclearMedicineImageStorage,)
# Accepted but not analysed, so that pushing a whole study (results included) never fails.
IGNORED_CLASSES = (SecondaryCaptureImageStorage, ComprehensiveSRStorage, EnhancedSRStorage)
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_OUT_OF_RESOURCES = 0xA700
PARTIAL = ".partial"
WORK = ".work"
MAX_ATTEMPTS = 2  # analyses of one study, counting those a crash interrupted
HISTORY = 1000  # finished and failed study keys remembered (for status and tests)


def study_key(study_uid: str) -> str:
    """A folder name for a study that reveals nothing of its UID in paths or logs."""
    return hashlib.sha256(study_uid.encode()).hexdigest()[:20]


class CadNode:
    """C-STORE SCP; calls `on_study(folder)` for each complete study, then sends what it returns.

    `on_study` gets the folder of received NM instances of one study and returns the paths of
    the result files (DICOM) to send to `pacs` (C-STORE) and/or `stow` (STOW-RS); the study
    folder is removed afterwards. Results a destination did not accept are re-sent after
    `retry_s` seconds, doubling up to `retry_max_s`.
    """

    def __init__(
        self,
        *,
        aet: str,
        port: int,
        work_dir: Path,
        on_study: Callable[[Path], list[Path]],
        pacs: PacsTarget | None,
        stow: StowTarget | None = None,
        host: str = "127.0.0.1",
        allow: Sequence[str] | None = None,
        quiet_s: float = 5.0,
        retry_s: float = 30.0,
        retry_max_s: float = 3600.0,
    ) -> None:
        self.aet = check_aet(aet)
        self.address = (host, port)
        self.work_dir = Path(work_dir)
        self.incoming = self.work_dir / "incoming"
        self.outbox = Outbox(self.work_dir / "outbox", retry_s, retry_max_s)
        self.on_study = on_study
        self.pacs = pacs
        self.stow = stow
        self.quiet_s = quiet_s
        self.processed: deque[str] = deque(maxlen=HISTORY)  # study keys, in order of completion
        self.failed: deque[str] = deque(maxlen=HISTORY)
        self._last_seen: dict[str, float] = {}
        self._ready: deque[Path] = deque()  # work folders to analyse (recovered ones first)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = None
        self._worker: threading.Thread | None = None
        self._status = ""
        self.ae = AE(ae_title=self.aet)
        self.ae.require_called_aet = True
        if allow:
            self.ae.require_calling_aet = [check_aet(a) for a in allow]
        for sop_class in (*ANALYSED_CLASSES, *IGNORED_CLASSES):
            self.ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
        self.ae.add_supported_context(Verification)
        protect_logs()

    def start(self) -> None:
        """Recover what a crash left, listen (non-blocking) and start the worker."""
        self._recover()
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, lambda e: 0x0000)]
        try:
            self._server = self.ae.start_server(self.address, block=False, evt_handlers=handlers)
        except OSError as exc:
            raise DicomNodeError(
                f"Cannot listen on {self.address[0]}:{self.address[1]} ({exc}); choose a free "
                "port with --port."
            ) from exc
        self._worker = threading.Thread(target=self._work, name="cad-node-worker", daemon=True)
        self._worker.start()
        logger.info("DICOM node %s listening on %s:%d", self.aet, *self.address)

    def stop(self) -> None:
        """Stop listening and let the worker finish the study it is on. Studies still in
        their quiet period stay in `incoming/` and are analysed after the next start."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self._worker is not None:
            self._worker.join(timeout=60)

    def pending(self) -> int:
        """Studies received but not yet analysed."""
        with self._lock:
            return len(self._last_seen) + len(self._ready)

    def awaiting_send(self) -> list[Delivery]:
        """Results not yet accepted by every destination."""
        return self.outbox.all()

    # --- recovery -------------------------------------------------------------------------

    def _recover(self) -> None:
        """Remove half-written objects and results; queue interrupted analyses again and
        restart the quiet period of studies still being received."""
        (self.incoming / PARTIAL).mkdir(parents=True, exist_ok=True)
        for path in (self.incoming / PARTIAL).iterdir():
            path.unlink(missing_ok=True)
        for path in (self.work_dir / "results").glob(f"*{PARTIAL}"):
            shutil.rmtree(path, ignore_errors=True)
        now = time.monotonic()
        interrupted = waiting = 0
        for folder in sorted(p for p in self.incoming.iterdir() if p.is_dir()):
            if folder.name == PARTIAL:
                continue
            if WORK in folder.name:
                self._ready.append(folder)
                interrupted += 1
            else:
                self._last_seen[folder.name] = now
                waiting += 1
        resend = len(self.outbox.all())
        if interrupted or waiting or resend:
            logger.warning(
                "start-up recovery: %d interrupted analysis(es) to redo, %d received "
                "study(ies) waiting, %d result set(s) to re-send",
                interrupted, waiting, resend,
            )  # fmt: skip

    # --- receiving ------------------------------------------------------------------------

    def _on_store(self, event) -> int:
        """Write the raw object to disk and answer at once; never raises (PITFALLS 8.2)."""
        if event.context.abstract_syntax not in ANALYSED_CLASSES:
            logger.info("ignored a %s object", event.context.abstract_syntax.name)
            return 0x0000
        partial = self.incoming / PARTIAL / f"{uuid.uuid4().hex}.dcm"
        try:
            with partial.open("wb") as fh:
                fh.write(b"\x00" * 128 + b"DICM")
                write_file_meta_info(fh, event.file_meta)
                fh.write(event.request.DataSet.getvalue())
        except OSError as exc:
            logger.error("cannot write a received object (%s)", exc.strerror or exc)
            partial.unlink(missing_ok=True)
            return STATUS_OUT_OF_RESOURCES
        try:
            study_uid = dcmread(
                partial, stop_before_pixels=True, specific_tags=["StudyInstanceUID"]
            ).get("StudyInstanceUID")
        except Exception as exc:  # a malformed object: refuse it, never echo its content
            logger.warning("received an object that cannot be parsed (%s); refused",
                           type(exc).__name__)  # fmt: skip
            study_uid = None
        if not study_uid:
            partial.unlink(missing_ok=True)
            logger.warning("received an object without a readable StudyInstanceUID; refused")
            return STATUS_CANNOT_UNDERSTAND
        key = study_key(str(study_uid))
        folder = self.incoming / key
        try:
            with self._lock:
                folder.mkdir(exist_ok=True)
                partial.replace(folder / partial.name)
                self._last_seen[key] = time.monotonic()
        except OSError as exc:
            logger.error("cannot file a received object (%s)", exc.strerror or exc)
            partial.unlink(missing_ok=True)
            return STATUS_OUT_OF_RESOURCES
        return 0x0000

    # --- analysing and sending --------------------------------------------------------------

    def _due(self) -> None:
        """Move studies whose quiet period is over to their own work folder."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, t in self._last_seen.items() if now - t >= self.quiet_s]:
                del self._last_seen[key]
                work = self.incoming / f"{key}{WORK}-{uuid.uuid4().hex[:8]}"
                (self.incoming / key).replace(work)  # a new name every time: never occupied
                self._ready.append(work)

    def _next(self) -> Path | None:
        with self._lock:
            return self._ready.popleft() if self._ready else None

    def _work(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._due()
                while not self._stop.is_set() and (folder := self._next()) is not None:
                    self._process(folder)
                for delivery in self.outbox.due():
                    self._deliver(delivery)
                self._write_status()
            except Exception as exc:  # the worker must outlive any failure
                logger.error("node worker: unexpected %s; continuing", describe_exception(exc))

    def _process(self, folder: Path) -> None:
        key = folder.name.split(WORK)[0]
        try:
            attempts = _count_attempt(folder)
            if attempts > MAX_ATTEMPTS:
                raise DicomNodeError(f"analysis interrupted {attempts - 1} times; given up")
            results = self.on_study(folder)
        except Exception as exc:  # one bad study must not stop the node
            reason = str(exc) if isinstance(exc, ThyrocadError) else describe_exception(exc)
            logger.error("study %s failed: %s", key, reason)
            self.failed.append(key)
            shutil.rmtree(folder, ignore_errors=True)
            return
        shutil.rmtree(folder, ignore_errors=True)
        targets = [t for t, on in (("pacs", self.pacs), ("stow", self.stow)) if on is not None]
        if results and targets:
            delivery = Delivery(key, [str(p) for p in results], targets)
            self.outbox.add(delivery)
            self._deliver(delivery)
        self.processed.append(key)
        logger.info("study %s analysed, %d results", key, len(results))

    def _deliver(self, delivery: Delivery) -> None:
        """Send to each pending destination; a refusal is recorded for a later retry."""
        paths = [Path(p) for p in delivery.files]
        for target in list(delivery.pending):
            try:
                if target == "pacs":
                    send_files(paths, self.pacs, self.aet)
                else:
                    stow_files(paths, self.stow)
            except Exception as exc:
                error = str(exc) if isinstance(exc, ThyrocadError) else describe_exception(exc)
                delay = self.outbox.failed(delivery, error)
                logger.warning(
                    "results of study %s not accepted by %s (attempt %d): %s; next try in %.0f s",
                    delivery.study, target, delivery.attempts, error, delay,
                )  # fmt: skip
                return
            self.outbox.sent(delivery, target)
            logger.info("results of study %s accepted by %s", delivery.study, target)

    def _write_status(self) -> None:
        with self._lock:
            waiting, ready = len(self._last_seen), len(self._ready)
        status = {
            "receiving": waiting,
            "to_analyse": ready,
            "awaiting_send": [d.to_status() for d in self.outbox.all()],
            "analysed_since_start": len(self.processed),
            "failed_since_start": len(self.failed),
        }
        text = json.dumps(status, indent=1)
        if text != self._status:
            write_text_atomic(self.work_dir / "status.json", text)
            self._status = text


def _count_attempt(folder: Path) -> int:
    """Count one more analysis of the study in `folder` (kept on disk across crashes)."""
    marker = folder / ".attempts"
    attempts = int(marker.read_text() or 0) + 1 if marker.is_file() else 1
    marker.write_text(str(attempts))
    return attempts


def analyse_received(service: DiagnosisService, folder: Path, results_root: Path) -> list[Path]:
    """Diagnose the study received into `folder`; the paths of its SR and SC files (written
    under `results_root/<id>/`, via `<id>.partial` so that a crash leaves no half set)."""
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    name = uuid.uuid4().hex
    partial = results_root / f"{name}{PARTIAL}"
    outcome = service.diagnose(paths, Outputs(dicom=partial))
    if not outcome.files:
        reason = "; ".join(outcome.diagnosis.notes) or "no DICOM results"
        raise DicomNodeError(f"no results to send: {reason}")
    final = results_root / name
    partial.replace(final)
    return [final / p.name for p in outcome.files.values()]
