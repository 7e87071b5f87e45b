"""A DICOM node for the PACS: C-STORE SCP that diagnoses each received study and sends back
the results (SR + Secondary Capture) by C-STORE.

Receiving follows PITFALLS 8.2: the C-STORE handler only writes the raw bytes (preamble, file
meta, dataset as received) to disk and answers 0x0000; a worker thread analyses a study once
no instance of it has arrived for `quiet_s` seconds. Sending follows 8.3/8.4: one association
per send, proposing exactly the SOP classes sent with their own and the uncompressed transfer
syntaxes. Calling AE titles are checked against an allow-list. Results can also (or instead)
go to a DICOMweb server by STOW-RS.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    EnhancedSRStorage,
    NuclearMedicineImageStorage,
    SecondaryCaptureImageStorage,
    Verification,
)

from thyrocad.errors import DicomNodeError

logger = logging.getLogger(__name__)

# Received and analysed.
ANALYSED_CLASSES = (NuclearMedicineImageStorage,)
# Accepted but not analysed, so that pushing a whole study (results included) never fails.
IGNORED_CLASSES = (SecondaryCaptureImageStorage, ComprehensiveSRStorage, EnhancedSRStorage)
SUCCESS_OR_WARNING = frozenset({0x0000, 0xB000, 0xB006, 0xB007})
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_OUT_OF_RESOURCES = 0xA700
PARTIAL = ".partial"


@dataclass(frozen=True)
class PacsTarget:
    """Where results go: a DICOM peer `aet` at `host:port`."""

    host: str
    port: int
    aet: str

    @classmethod
    def parse(cls, text: str) -> PacsTarget:
        """From 'HOST:PORT:AET'; DicomNodeError if malformed."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[0] or not parts[2]:
            raise DicomNodeError(
                f"PACS address {text!r} is not HOST:PORT:AET, e.g. pacs.example.org:104:PACS."
            )
        return cls(parts[0], int(parts[1]), check_aet(parts[2]))


def check_aet(aet: str) -> str:
    """`aet` if it is a valid AE title (1-16 printable characters, no backslash)."""
    if not 1 <= len(aet.strip()) <= 16 or "\\" in aet or not aet.isprintable():
        raise DicomNodeError(f"AE title {aet!r} must have 1-16 printable characters, no '\\'.")
    return aet.strip()


def send_files(
    paths: Sequence[Path], target: PacsTarget, calling_aet: str, timeout_s: float = 30.0
) -> None:
    """C-STORE `paths` to `target` over one association; DicomNodeError on any failure."""
    datasets = [dcmread(p) for p in paths]
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    for sop_class, syntaxes in _contexts(datasets).items():
        ae.add_requested_context(sop_class, syntaxes)
    assoc = ae.associate(target.host, target.port, ae_title=target.aet)
    if not assoc.is_established:
        raise DicomNodeError(
            f"{target.aet} at {target.host}:{target.port} refused or did not answer the "
            "association; check the address, the AE titles and that it knows this node."
        )
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code not in SUCCESS_OR_WARNING:
                shown = "no answer" if code is None else f"0x{code:04X}"
                raise DicomNodeError(
                    f"{target.aet} refused a {ds.SOPClassUID.name} object (status {shown})."
                )
    finally:
        assoc.release()
    logger.info("sent %d objects to %s", len(datasets), target.aet)


@dataclass(frozen=True)
class StowTarget:
    """A DICOMweb STOW-RS endpoint (the `.../studies` URL) and optional basic-auth credentials."""

    url: str
    user: str | None = None
    password: str | None = None


def stow_files(paths: Sequence[Path], target: StowTarget, timeout_s: float = 60.0) -> None:
    """POST `paths` (Part 10 files, preamble included) in one multipart/related STOW-RS request."""
    boundary = uuid.uuid4().hex
    parts = [
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + p.read_bytes()
        + b"\r\n"
        for p in paths
    ]
    request = urllib.request.Request(
        target.url,
        data=b"".join(parts) + f"--{boundary}--\r\n".encode(),
        method="POST",
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
    )
    if target.user is not None:
        credentials = f"{target.user}:{target.password or ''}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        raise DicomNodeError(f"STOW-RS to {target.url} failed: {exc}; check the URL.") from exc
    if status not in (200, 202):
        raise DicomNodeError(
            f"STOW-RS to {target.url} answered HTTP {status}; check the URL and credentials."
        )
    logger.info("stored %d objects by STOW-RS", len(paths))


def _contexts(datasets: Iterable) -> dict[str, list[str]]:
    """SOP class -> transfer syntaxes to propose: each object's own, then uncompressed."""
    contexts: dict[str, list[str]] = {}
    for ds in datasets:
        syntaxes = contexts.setdefault(ds.SOPClassUID, [])
        for ts in (ds.file_meta.TransferSyntaxUID, ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            if ts not in syntaxes:
                syntaxes.append(ts)
    return contexts


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
        self.processed: list[str] = []  # study keys, in order of completion
        self.failed: list[str] = []
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
