"""The DICOM node over real associations: a pynetdicom modality sends a phantom study, the node
diagnoses it and C-STOREs the SR and SC to a pynetdicom storage SCP standing in for the PACS.
(tests/test_orthanc.py does the same against a real Orthanc.)"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    NuclearMedicineImageStorage,
    SecondaryCaptureImageStorage,
    Verification,
)

import dicom_factory as factory
from server_helpers import free_port
from thyrocad.errors import DicomNodeError
from thyrocad.node.scp import CadNode, analyse_received
from thyrocad.node.send import PacsTarget, send_files
from thyrocad.study import View

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
NODE_AET, PACS_AET, MODALITY_AET = "THYROCAD", "FAKEPACS", "MODALITY"


class FakePacs:
    """A real pynetdicom storage SCP that keeps what it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list = []
        self.calling: list[str] = []
        self.event = threading.Event()
        ae = AE(ae_title=PACS_AET)
        for sop in (ComprehensiveSRStorage, SecondaryCaptureImageStorage):
            ae.add_supported_context(sop, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        self.server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )

    def _store(self, event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        self.received.append(ds)
        self.calling.append(event.assoc.requestor.ae_title)
        self.event.set()
        return 0x0000

    def wait_for(self, n: int, timeout_s: float = 120.0) -> list:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.received


def settled(node: CadNode, timeout_s: float = 60.0) -> None:
    """Wait until the node has finished (sent, or failed) every study it received."""
    deadline = time.monotonic() + timeout_s
    while (node.pending() or not (node.processed or node.failed)) and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.fixture
def pacs():
    fake = FakePacs()
    yield fake
    fake.server.shutdown()


@pytest.fixture
def node(tmp_path, server_service, pacs):
    cad = CadNode(
        aet=NODE_AET,
        port=free_port(),
        work_dir=tmp_path,
        on_study=lambda folder: analyse_received(server_service, folder, tmp_path / "results"),
        pacs=PacsTarget("127.0.0.1", pacs.port, PACS_AET),
        allow=[MODALITY_AET],
        quiet_s=1.0,
    )
    cad.start()
    yield cad
    cad.stop()


def store_to(node: CadNode, paths: list[Path], calling: str = MODALITY_AET) -> list[int]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(NuclearMedicineImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", node.address[1], ae_title=NODE_AET)
    if not assoc.is_established:
        return []
    try:
        return [assoc.send_c_store(dcmread(p)).Status for p in paths]
    finally:
        assoc.release()


def test_round_trip_sends_sr_and_sc_into_the_same_study(node, pacs, server_files, server_service):
    source = server_files[0]
    assert store_to(node, [source]) == [0x0000]
    received = pacs.wait_for(3)
    assert len(received) == 3, f"failed studies: {node.failed}"
    settled(node)  # the node counts a study as done once its association is released
    classes = [ds.SOPClassUID for ds in received]
    assert sorted(classes) == sorted([ComprehensiveSRStorage] + [SecondaryCaptureImageStorage] * 2)
    src = dcmread(source)
    assert {ds.StudyInstanceUID for ds in received} == {src.StudyInstanceUID}
    assert {ds.PatientID for ds in received} == {src.PatientID}
    assert set(pacs.calling) == {NODE_AET}
    assert len(node.processed) == 1 and not node.failed and node.pending() == 0
    assert not any((node.incoming).glob("*.work"))  # received files removed after analysis
    (sr,) = [ds for ds in received if ds.SOPClassUID == ComprehensiveSRStorage]
    expected = server_service.diagnose([source]).diagnosis  # what the node's model says
    numbers = [
        float(item.MeasuredValueSequence[0].NumericValue)
        for item in _content_items(sr.ContentSequence)
        if item.ValueType == "NUM" and item.get("MeasuredValueSequence")
    ]
    assert any(abs(n - expected.probability) < 1e-4 for n in numbers), numbers


def _content_items(items) -> list:
    """Every content item of an SR tree, depth first."""
    found = []
    for item in items:
        found.append(item)
        found += _content_items(item.get("ContentSequence", []))
    return found


def test_per_view_files_are_merged_into_one_study(node, pacs, tmp_path, caplog, server_files):
    caplog.set_level(logging.DEBUG)
    study = dcmread(server_files[1])
    frames = study.pixel_array
    paths = []
    for i, view in enumerate((View.ANTERIOR, View.POSTERIOR)):
        ds = factory.nm_dataset(frames=[frames[i]], view_codes=[factory.view_code(view)])
        ds.StudyInstanceUID = study.StudyInstanceUID
        paths.append(factory.write_dicom(ds, tmp_path / f"view{i}.dcm"))
    assert store_to(node, paths) == [0x0000, 0x0000]
    received = pacs.wait_for(3)
    settled(node)
    assert len(received) == 3 and len(node.processed) == 1, f"failed: {node.failed}"
    assert {str(ds.PatientName) for ds in received} == {factory.SENTINEL_NAME}
    # Nothing of the patient's identity or the study UID reaches the logs, even at DEBUG.
    for secret in (factory.SENTINEL_NAME, factory.SENTINEL_ID, study.StudyInstanceUID):
        assert secret not in caplog.text


def test_unknown_calling_aet_is_rejected(node, pacs, server_files):
    assert store_to(node, [server_files[0]], calling="INTRUDER") == []
    time.sleep(1.5)
    assert pacs.received == [] and node.pending() == 0


def test_echo(node):
    ae = AE(ae_title=MODALITY_AET)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", node.address[1], ae_title=NODE_AET)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_bad_study_does_not_stop_the_node(node, pacs, tmp_path, server_files):
    ds = factory.nm_dataset(frames=[factory.counts_image(64, 400)], view_codes=[None])
    bad = factory.write_dicom(ds, tmp_path / "wholebody.dcm")  # not a planar neck view
    assert store_to(node, [bad]) == [0x0000]  # received fast; analysis fails later
    deadline = time.monotonic() + 30
    while not node.failed and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(node.failed) == 1
    assert store_to(node, [server_files[2]]) == [0x0000]
    assert len(pacs.wait_for(3)) == 3


def test_send_to_a_missing_peer_fails_clearly(server_files):
    with pytest.raises(DicomNodeError, match="refused or did not answer"):
        send_files([server_files[0]], PacsTarget("127.0.0.1", free_port(), "NOBODY"), "X", 5)


@pytest.mark.parametrize("text", ["host:104", "host:port:AET", ":104:AET", "h:104:" + "A" * 17])
def test_pacs_address_is_checked(text):
    with pytest.raises(DicomNodeError):
        PacsTarget.parse(text)
