"""The web app survives what a department's server meets: kill -9 in the middle of an analysis
(a real `thyrocad serve` process killed and restarted on the same data) and a full disk (the
data folder on a small tmpfs, mounted for the test; it needs root and skips without)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from server_helpers import ServerProcess, new_db, tmp_uploads
from thyrocad.server.reports import FAILED
from thyrocad.server.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def wait_for(predicate, timeout_s: float, step_s: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return False


def result_folders(db: Path) -> set[str]:
    folder = db.parent / "results"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_kill_9_during_an_analysis_leaves_nothing_after_restart(tmp_path, server_bundle,
                                                                 server_files):  # fmt: skip
    """Killed mid-analysis, the server used to keep the uploaded file (patient data) in tmp/
    and an empty result folder, although the docs promise neither is kept. At the next start
    both are removed; the records and the next uploads are unaffected. The kill can also
    land after the second diagnosis was stored but before its upload left tmp/: then that
    record stands with its result folder, its report marked failed ("re-run"), and only the
    upload is removed."""
    db = new_db(tmp_path)
    server = ServerProcess(server_bundle, db, log=tmp_path / "server.log")
    token = server.token()
    done = server.client().post(
        "/api/v1/diagnoses", files={"file": ("a.dcm", server_files[0].read_bytes())}
    )
    assert done.status_code == 201
    kept = done.json()["id"]

    def upload() -> None:
        with contextlib.suppress(httpx.TransportError):  # the server dies under it
            httpx.post(f"{server.url}/api/v1/diagnoses", timeout=120,
                       headers={"Authorization": f"Bearer {token}"},
                       files={"file": ("b.dcm", server_files[1].read_bytes())})  # fmt: skip

    sender = threading.Thread(target=upload)
    sender.start()
    assert wait_for(lambda: tmp_uploads(db), 60), "the upload never reached tmp/"
    wait_for(lambda: result_folders(db) - {kept}, 5)  # results being written, if we catch it
    server.kill()
    sender.join()
    assert tmp_uploads(db), "the analysis finished before the kill"
    server = ServerProcess(server_bundle, db, log=tmp_path / "server.log")
    try:
        assert tmp_uploads(db) == []
        store = Store(db)
        ids = store.diagnosis_ids()
        assert result_folders(db) == ids and kept in ids and len(ids) <= 2
        for stored in ids - {kept}:  # recorded just before the kill
            assert store.diagnosis(stored).result["report"] == FAILED
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
        with server.client() as api:
            again = api.post(
                "/api/v1/diagnoses", files={"file": ("b.dcm", server_files[1].read_bytes())}
            )
        assert again.status_code == 201
    finally:
        server.stop()
    assert "start-up recovery: removed 1 orphan upload(s)" in (tmp_path / "server.log").read_text()


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs mounted at tmp_path/disk for the test (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave_bytes: int) -> Path:
    """A file that leaves about `leave_bytes` free on `folder`'s file system."""
    filler = folder / "filler.bin"
    size = shutil.disk_usage(folder).free - leave_bytes
    with filler.open("ab") as fh:
        fh.write(b"\0" * max(size, 0))
    return filler


def test_full_disk_is_a_clear_507_and_health_says_so(small_disk, tmp_path, server_bundle,
                                                     server_files):  # fmt: skip
    """A full disk used to give bare 500s with 'OSError [Errno 28]' tracebacks, partial
    result folders, and a /health that still said "ok". Room for the verdict but not for the
    report: the verdict is kept and the report says the disk is full."""
    db = new_db(small_disk)
    server = ServerProcess(server_bundle, db, "--min-free-mb", "1", "--max-upload-mb", "2",
                           log=tmp_path / "server.log")  # fmt: skip
    try:
        api = server.client()
        study = server_files[0].read_bytes()
        filler = fill(small_disk, leave_bytes=2 << 20)  # room for the upload, not the results
        r = api.post(
            "/api/v1/diagnoses", files={"file": ("a.dcm", study)}, params={"wait_report": "true"}
        )
        assert r.status_code == 201, r.text
        result = r.json()["result"]
        assert result["report"] == "failed" and result["files"] == {}
        assert any("could not be made (the disk is full)" in n for n in result["notes"])
        assert "Errno" not in r.text and "Traceback" not in r.text
        assert tmp_uploads(db) == [] and result_folders(db) == {r.json()["id"]}
        filler.unlink()
        filler = fill(small_disk, leave_bytes=512 << 10)  # below the 1 MiB reserve
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        assert "disk almost full" in health.json()["problems"][0]
        refused = api.post("/api/v1/diagnoses", files={"file": ("a.dcm", study)})
        assert refused.status_code == 507 and tmp_uploads(db) == []
        filler.unlink()
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
        assert api.post("/api/v1/diagnoses", files={"file": ("a.dcm", study)}).status_code == 201
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log and "failed: the disk is full" in log
    assert os.stat(db.parent / "results").st_mode & 0o777 == 0o700
