"""A DICOM node for the PACS: C-STORE SCP that diagnoses each received study and sends back
the results (SR + Secondary Capture) by C-STORE and/or STOW-RS (`thyrocad.node.send`).

Receiving follows PITFALLS 8.2: the C-STORE handler only writes the raw bytes (preamble, file
meta, dataset as received) to disk and answers 0x0000; a worker thread analyses a study once
no instance of it has arrived for `quiet_s` seconds, through the diagnosis service, asking it
only for the DICOM objects it sends. Calling AE titles are checked against an allow-list.
The node remembers the keys of its last `HISTORY` finished and failed studies only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
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
from thyrocad.errors import DicomNodeError
from thyrocad.node.send import PacsTarget, StowTarget, check_aet, send_files, stow_files

logger = logging.getLogger(__name__)

# Received and analysed.
ANALYSED_CLASSES = (NuclearMedicineImageStorage,)
# Accepted but not analysed, so that pushing a whole study (results included) never fails.
IGNORED_CLASSES = (SecondaryCaptureImageStorage, ComprehensiveSRStorage, EnhancedSRStorage)
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_OUT_OF_RESOURCES = 0xA700
PARTIAL = ".partial"
HISTORY = 1000  # finished and failed study keys remembered (for status and tests)


def study_key(study_uid: str) -> str:
    """A folder name for a study that reveals nothing of its UID in paths or logs."""
    return hashlib.sha256(study_uid.encode()).hexdigest()[:20]


class CadNode:
    """C-STORE SCP; calls `on_study(folder)` for each complete study, then sends what it returns.

    `on_study` gets the folder of received NM instances of one study and returns the paths of
    the result files (DICOM) to send to `pacs` (C-STORE) and/or `stow` (STOW-RS); the study
    folder is removed afterwards.
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
    ) -> None:
        self.aet = check_aet(aet)
        self.address = (host, port)
        self.incoming = Path(work_dir) / "incoming"
        self.on_study = on_study
        self.pacs = pacs
        self.stow = stow
        self.quiet_s = quiet_s
        self.processed: deque[str] = deque(maxlen=HISTORY)  # study keys, in order of completion
        self.failed: deque[str] = deque(maxlen=HISTORY)
        self._last_seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = None
        self._worker: threading.Thread | None = None
        self.ae = AE(ae_title=self.aet)
        if allow:
            self.ae.require_calling_aet = [check_aet(a) for a in allow]
        for sop_class in (*ANALYSED_CLASSES, *IGNORED_CLASSES):
            self.ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
        self.ae.add_supported_context(Verification)

    def start(self) -> None:
        """Listen (non-blocking) and start the analysis worker."""
        (self.incoming / PARTIAL).mkdir(parents=True, exist_ok=True)
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
        """Stop listening and let the worker finish the study it is on."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self._worker is not None:
            self._worker.join(timeout=60)

    def pending(self) -> int:
        """Studies received but not yet analysed."""
        with self._lock:
            return len(self._last_seen)

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
            study_uid = dcmread(
                partial, stop_before_pixels=True, specific_tags=["StudyInstanceUID"]
            ).get("StudyInstanceUID")
        except OSError:
            logger.exception("cannot write a received object")
            partial.unlink(missing_ok=True)
            return STATUS_OUT_OF_RESOURCES
        except (InvalidDicomError, ValueError, AttributeError):
            logger.warning("received an object that cannot be parsed; refused")
            partial.unlink(missing_ok=True)
            return STATUS_CANNOT_UNDERSTAND
        if not study_uid:
            partial.unlink(missing_ok=True)
            logger.warning("received an object without StudyInstanceUID; refused")
            return STATUS_CANNOT_UNDERSTAND
        key = study_key(str(study_uid))
        folder = self.incoming / key
        with self._lock:
            folder.mkdir(exist_ok=True)
            os.replace(partial, folder / partial.name)
            self._last_seen[key] = time.monotonic()
        return 0x0000

    # --- analysing ------------------------------------------------------------------------

    def _due(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            due = [k for k, t in self._last_seen.items() if now - t >= self.quiet_s]
            for key in due:
                del self._last_seen[key]
                os.replace(self.incoming / key, self.incoming / f"{key}.work")
        return due

    def _work(self) -> None:
        while not self._stop.wait(0.2):
            for key in self._due():
                self._process(key)

    def _process(self, key: str) -> None:
        folder = self.incoming / f"{key}.work"
        try:
            results = self.on_study(folder)
            if self.pacs is not None and results:
                send_files(results, self.pacs, self.aet)
            if self.stow is not None and results:
                stow_files(results, self.stow)
        except Exception:  # one bad study must not stop the node
            logger.exception("study %s failed", key)
            self.failed.append(key)
        else:
            self.processed.append(key)
            logger.info("study %s done, %d results", key, len(results))
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def analyse_received(service: DiagnosisService, folder: Path, results_root: Path) -> list[Path]:
    """Diagnose the study received into `folder`; the paths of its SR and SC files (written
    under `results_root`)."""
    paths = sorted(p for p in folder.iterdir() if p.is_file())
    out_dir = results_root / uuid.uuid4().hex
    outcome = service.diagnose(paths, Outputs(dicom=out_dir))
    return list(outcome.files.values())
