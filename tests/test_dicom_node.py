"""The DICOM node over real associations: a pynetdicom modality sends a phantom study, the node
diagnoses it and C-STOREs the SR and SC to a pynetdicom storage SCP standing in for the PACS.
Recovery: kill -9 during an analysis and a restart (a real `thyrocad listen` process),
results re-sent until the PACS takes them, studies kept over a shutdown; AE titles checked;
malformed objects refused without a traceback. (tests/test_orthanc.py does the same against a
real Orthanc.)"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections import deque
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pynetdicom import AE
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    SecondaryCaptureImageStorage,
    Verification,
)

import dicom_factory as factory
from server_helpers import (
    MODALITY_AET,
    NODE_AET,
    PACS_AET,
    FakePacs,
    free_port,
    listen_process,
    store_to_port,
)
from thyrocad.errors import DicomNodeError
from thyrocad.node.scp import CadNode, analyse_received
from thyrocad.node.send import PacsTarget, send_files
from thyrocad.study import View

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


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
    return store_to_port(node.address[1], paths, calling)


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
    assert not any((node.incoming).glob("*.work*"))  # received files removed after analysis
    assert node.awaiting_send() == []
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


def test_called_aet_is_checked(node):
    ae = AE(ae_title=MODALITY_AET)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", node.address[1], ae_title="SOMEONEELSE")
    assert not assoc.is_established


def test_malformed_object_is_refused_without_a_traceback(node, pacs, tmp_path, server_files,
                                                         caplog):  # fmt: skip
    """A sequence of undefined length without its delimiter used to make the node answer
    0xA700 (out of resources) and log a traceback; it is 0xC000 (cannot understand)."""
    caplog.set_level(logging.INFO)
    ds = factory.nm_dataset()
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = "1.2.3", "1.2.3.4"
    ds.ReferencedStudySequence = DicomSequence([item])
    data = factory.dicom_bytes(ds)
    at = data.index(b"\x08\x00\x10\x11SQ\x00\x00") + 8  # its length: undefined, no delimiter
    bad = tmp_path / "bad-sequence.dcm"
    bad.write_bytes(data[:at] + b"\xff\xff\xff\xff" + data[at + 4 :])
    assert store_to_port(node.address[1], [bad], raw=True) == [0xC000]
    assert "Traceback" not in caplog.text and factory.SENTINEL_NAME not in caplog.text
    assert store_to(node, [server_files[0]]) == [0x0000]  # the node carries on
    assert len(pacs.wait_for(3)) == 3


def test_a_failing_study_never_ends_the_worker(tmp_path, server_service, pacs, server_files):
    calls = []

    def flaky(folder: Path) -> list[Path]:
        calls.append(folder.name)
        if len(calls) == 1:
            raise RuntimeError("a bug in the analysis")  # not a ThyrocadError
        return analyse_received(server_service, folder, tmp_path / "results")

    cad = CadNode(aet=NODE_AET, port=free_port(), work_dir=tmp_path, on_study=flaky,
                  pacs=PacsTarget("127.0.0.1", pacs.port, PACS_AET), quiet_s=0.5)  # fmt: skip
    cad.start()
    try:
        assert store_to(cad, [server_files[0]]) == [0x0000]
        deadline = time.monotonic() + 30
        while not cad.failed and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store_to(cad, [server_files[1]]) == [0x0000]
        assert len(pacs.wait_for(3)) == 3
    finally:
        cad.stop()
    assert len(cad.failed) == 1 and len(cad.processed) == 1


def test_results_are_resent_until_the_pacs_takes_them(tmp_path, server_service, server_files):
    """The PACS is down when the results are ready: they wait in the outbox (visible in
    status.json), survive a restart of the node, and go out once the PACS is back."""
    pacs_port = free_port()

    def make_node(quiet_s: float = 0.5) -> CadNode:
        return CadNode(
            aet=NODE_AET, port=node_port, work_dir=tmp_path,
            on_study=lambda f: analyse_received(server_service, f, tmp_path / "results"),
            pacs=PacsTarget("127.0.0.1", pacs_port, PACS_AET), quiet_s=quiet_s, retry_s=1.0,
        )  # fmt: skip

    node_port = free_port()
    cad = make_node()
    cad.start()
    try:
        assert store_to(cad, [server_files[0]]) == [0x0000]
        deadline = time.monotonic() + 60
        while not (waiting := cad.awaiting_send()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(waiting) == 1 and waiting[0].pending == ["pacs"]
        time.sleep(2.5)  # a retry or two, each refused
    finally:
        cad.stop()
    (entry,) = json.loads((tmp_path / "status.json").read_text())["awaiting_send"]
    assert entry["attempts"] >= 2 and "refused or did not answer" in entry["last_error"]
    pacs = FakePacs(pacs_port)
    cad = make_node()
    cad.start()  # a new process would do the same: the outbox is on disk
    try:
        received = pacs.wait_for(3, timeout_s=30)
    finally:
        cad.stop()
        pacs.server.shutdown()
    assert len(received) == 3 and cad.awaiting_send() == []
    assert json.loads((tmp_path / "status.json").read_text())["awaiting_send"] == []


def test_studies_in_their_quiet_period_survive_a_shutdown(tmp_path, server_service, pacs,
                                                          server_files):  # fmt: skip
    def make_node(quiet_s: float) -> CadNode:
        return CadNode(
            aet=NODE_AET, port=free_port(), work_dir=tmp_path,
            on_study=lambda f: analyse_received(server_service, f, tmp_path / "results"),
            pacs=PacsTarget("127.0.0.1", pacs.port, PACS_AET), quiet_s=quiet_s,
        )  # fmt: skip

    first = make_node(quiet_s=60)
    first.start()
    assert store_to(first, [server_files[0]]) == [0x0000]
    first.stop()  # long before the quiet period ends
    assert pacs.received == [] and first.processed == deque()
    second = make_node(quiet_s=0.5)
    second.start()
    try:
        assert len(pacs.wait_for(3, timeout_s=60)) == 3
    finally:
        second.stop()


def test_kill_9_during_an_analysis_then_restart(tmp_path, server_bundle, pacs, server_files):
    """Killed while analysing, the node used to leave `incoming/<key>.work/` behind; after a
    restart, the same study sent again killed its worker (`OSError [Errno 39] Directory not
    empty`) while C-ECHO and C-STORE still answered success: nothing was analysed again. Now
    the interrupted analysis is redone and every later study is analysed."""
    work, log, port = tmp_path / "node", tmp_path / "listen.log", free_port()
    proc = listen_process(server_bundle, work, port, pacs.port, log)
    sender = threading.Thread(target=store_to_port, args=(port, [server_files[0]]))
    sender.start()
    deadline = time.monotonic() + 60
    while not list((work / "incoming").glob("*.work*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sender.join()
    assert list((work / "incoming").glob("*.work*")), "the analysis was not caught running"
    assert pacs.received == []
    proc = listen_process(server_bundle, work, port, pacs.port, log)
    try:
        assert store_to_port(port, [server_files[0]]) == [0x0000]  # the same study again
        assert store_to_port(port, [server_files[1]]) == [0x0000]  # and a new one
        received = pacs.wait_for(9, timeout_s=120)  # the interrupted analysis, then both
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert len(received) == 9, text[-3000:]
    assert "recovery: 1 interrupted analysis" in text and "Errno" not in text
    assert not list((work / "incoming").glob("*.work*"))
