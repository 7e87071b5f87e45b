"""Round trip with a real PACS: Debian's Orthanc, started here on unusual loopback ports with its
own config (authentication on, remote access off, the CAD node registered as modality 'cad').

A phantom study goes into Orthanc by REST, Orthanc pushes it by C-STORE to the node (a real
`thyrocad listen` process), which diagnoses it and C-STOREs the SR and SCs back; they must
appear in the same Orthanc study with the diagnosis the model gives for that file.
scripts/ci_services.sh installs Orthanc in CI.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage

from server_helpers import THYROCAD, free_port
from thyrocad.errors import DicomNodeError
from thyrocad.node.scp import CadNode, analyse_received
from thyrocad.node.send import StowTarget, stow_files

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
PACS_AET, NODE_AET = "ORTHANCTEST", "THYROCAD"
AUTH = ("tester", "orthanc-test-password")


class Orthanc:
    """Orthanc as a child process, configured by one JSON file; stopped by its PID."""

    def __init__(self, folder: Path, node_port: int) -> None:
        self.http_port, self.dicom_port, self.node_port = free_port(), free_port(), node_port
        config = {
            "Name": "thyrocad-test",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {AUTH[0]: AUTH[1]},
            "DicomAet": PACS_AET,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True,
            "DicomCheckModalityHost": True,
            "DicomModalities": {"cad": {"AET": NODE_AET, "Host": "127.0.0.1", "Port": node_port}},
            "Plugins": [str(DICOMWEB)] if DICOMWEB.is_file() else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        path = folder / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc = subprocess.Popen(
            [str(ORTHANC), "--no-jobs", f"--logfile={folder / 'orthanc.log'}", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = httpx.Client(base_url=self.url, auth=AUTH, timeout=60)
        self._wait(folder)

    def _wait(self, folder: Path, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if self.client.get("/system").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        log = folder / "orthanc.log"
        raise RuntimeError(
            f"Orthanc did not start: {log.read_text()[-2000:] if log.exists() else ''}"
        )

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def content_items(items) -> list:
    """Every content item of an SR tree, depth first."""
    found = []
    for item in items:
        found.append(item)
        found += content_items(item.get("ContentSequence", []))
    return found


@pytest.fixture
def orthanc(tmp_path):
    if not ORTHANC.is_file():
        pytest.skip("Orthanc is not installed (scripts/ci_services.sh installs it)")
    server = Orthanc(tmp_path, node_port=free_port())
    yield server
    server.stop()


@pytest.fixture
def node(orthanc, tmp_path, server_bundle):
    """`thyrocad listen` as a subprocess, ready once Orthanc's C-ECHO to it succeeds."""
    log = tmp_path / "listen.log"
    cmd = [
        str(THYROCAD), "listen", str(server_bundle), "--aet", NODE_AET,
        "--port", str(orthanc.node_port), "--pacs", f"127.0.0.1:{orthanc.dicom_port}:{PACS_AET}",
        "--allow", PACS_AET, "--quiet-s", "1", "--work-dir", str(tmp_path / "node"),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while orthanc.client.post("/modalities/cad/echo", content="{}").status_code != 200:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    yield log
    proc.terminate()
    proc.wait(timeout=30)


def push_and_collect(orthanc: Orthanc, source: Path, expect: int, log) -> list:
    """Upload `source` by REST, push its study to the node, wait for `expect` instances."""
    posted = orthanc.client.post("/instances", content=source.read_bytes())
    assert posted.status_code == 200, posted.text
    study_id = posted.json()["ParentStudy"]
    pushed = orthanc.client.post("/modalities/cad/store", content=study_id)
    assert pushed.status_code == 200, pushed.text
    deadline = time.monotonic() + 120
    instances = []
    while time.monotonic() < deadline and len(instances) < expect:
        time.sleep(0.5)
        instances = orthanc.client.get(f"/studies/{study_id}/instances").json()
    assert len(instances) == expect, log()
    return [dcmread(io.BytesIO(orthanc.client.get(f"/instances/{i['ID']}/file").content))
            for i in instances]  # fmt: skip


def test_orthanc_round_trip(orthanc, node, server_files, server_service):
    assert httpx.get(f"{orthanc.url}/system").status_code == 401  # authentication is on
    source = server_files[0]
    files = push_and_collect(orthanc, source, 4, lambda: node.read_text()[-3000:])  # NM+SR+2 SC
    src = dcmread(source)
    assert {ds.StudyInstanceUID for ds in files} == {src.StudyInstanceUID}
    assert {ds.PatientID for ds in files} == {src.PatientID}
    (sr,) = [ds for ds in files if ds.SOPClassUID == ComprehensiveSRStorage]
    scs = [ds for ds in files if ds.SOPClassUID == SecondaryCaptureImageStorage]
    assert len(scs) == 2

    expected = server_service.diagnose([source]).diagnosis
    numbers = [
        float(item.MeasuredValueSequence[0].NumericValue)
        for item in content_items(sr.ContentSequence)
        if item.ValueType == "NUM" and item.get("MeasuredValueSequence")
    ]
    assert any(abs(n - expected.probability) < 1e-3 for n in numbers), numbers
    for sc in scs:  # RGB of the view, annotated: larger than the view, burned-in text
        rows, cols = src.pixel_array.shape[1:]
        assert sc.pixel_array.shape[0] > rows and sc.pixel_array.shape[1] > cols
        assert sc.pixel_array.shape[2] == 3 and sc.BurnedInAnnotation == "YES"
    assert "failed" not in node.read_text()


def test_results_by_stow_rs(orthanc, tmp_path, server_files, server_service):
    if not DICOMWEB.is_file():
        pytest.skip("orthanc-dicomweb is not installed (scripts/ci_services.sh installs it)")
    results = tmp_path / "stow-results"
    cad = CadNode(
        aet=NODE_AET,
        port=orthanc.node_port,
        work_dir=tmp_path / "stow-node",
        on_study=lambda folder: analyse_received(server_service, folder, results),
        pacs=None,
        stow=StowTarget(f"{orthanc.url}/dicom-web/studies", *AUTH),
        allow=[PACS_AET],
        quiet_s=1.0,
    )
    cad.start()
    try:
        files = push_and_collect(orthanc, server_files[1], 4, lambda: str(cad.failed))
    finally:
        cad.stop()
    classes = sorted(ds.SOPClassUID for ds in files)
    assert classes.count(SecondaryCaptureImageStorage) == 2
    assert classes.count(ComprehensiveSRStorage) == 1
    assert list(cad.failed) == [] and len(cad.processed) == 1
    bad = StowTarget(f"{orthanc.url}/dicom-web/studies", "tester", "wrong")
    with pytest.raises(DicomNodeError, match="HTTP 401"):
        stow_files(sorted(results.rglob("*.dcm"))[:1], bad)
