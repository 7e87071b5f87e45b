"""Sending results out of the node: C-STORE to a PACS (PITFALLS 8.3/8.4: one association per
send, proposing exactly the SOP classes sent with their own and the uncompressed transfer
syntaxes) and STOW-RS to a DICOMweb server."""

from __future__ import annotations

import base64
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from thyrocad.errors import DicomNodeError

logger = logging.getLogger(__name__)

SUCCESS_OR_WARNING = frozenset({0x0000, 0xB000, 0xB006, 0xB007})


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
