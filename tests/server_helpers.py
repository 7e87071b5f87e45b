"""Helpers of the server, browser, DICOM-node and Orthanc tests (their bundle and phantom
studies are the session fixtures `server_bundle` / `server_files` of conftest.py).

`ServerProcess` runs `thyrocad serve BUNDLE` as a real Uvicorn subprocess on a free loopback
port; `listen_process` runs `thyrocad listen`; `FakePacs` is a pynetdicom storage SCP standing
in for the PACS; `store_to_port` C-STOREs files as a modality would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    NuclearMedicineImageStorage,
    SecondaryCaptureImageStorage,
    Verification,
)

from thyrocad.server.auth import add_user
from thyrocad.server.store import Store

PASSWORD = "correct horse battery"
NODE_AET, PACS_AET, MODALITY_AET = "THYROCAD", "FAKEPACS", "MODALITY"
THYROCAD = Path(sys.executable).parent / "thyrocad"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_db(folder: Path, users: tuple[str, ...] = ("alice",), **roles: str) -> Path:
    """A fresh database with `users` (physicians unless `roles` names another role for one),
    each with password `PASSWORD`."""
    db = folder / "server" / "thyrocad.db"
    store = Store(db)
    for user in users:
        add_user(store, user, PASSWORD, roles.get(user, "physician"))
    return db


class ServerProcess:
    """`thyrocad serve BUNDLE` as a subprocess on a free port; `stop()` ends it by its PID."""

    def __init__(
        self, bundle: Path, db: Path, *args: str, log_level: str = "info", log: Path | None = None
    ) -> None:
        self.bundle = bundle
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or db.parent / f"server-{self.port}.log"
        cmd = [str(THYROCAD), "--log-level", log_level, "serve", str(bundle)]
        cmd += ["--port", str(self.port), "--db", str(db), *args]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_healthy()

    def _wait_healthy(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not healthy in {timeout_s} s: {self.log.read_text()[-3000:]}")

    def token(self, user: str = "alice") -> str:
        """A bearer token for `user`."""
        r = httpx.post(f"{self.url}/api/v1/token", json={"username": user, "password": PASSWORD})
        r.raise_for_status()
        return r.json()["access_token"]

    def client(self, user: str = "alice", timeout: float = 120.0) -> httpx.Client:
        """An httpx client authenticated as `user` with a bearer token."""
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def kill(self) -> None:
        """kill -9 the server, as a crash or a power loss would end it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """Terminate the server (SIGTERM to its PID) and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def tmp_uploads(db: Path) -> list[Path]:
    """Upload temp files left in the server's data folder (should always be none)."""
    folder = db.parent / "tmp"
    return sorted(folder.iterdir()) if folder.is_dir() else []


class FakePacs:
    """A real pynetdicom storage SCP that keeps what it receives."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
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


def listen_process(
    bundle: Path, work_dir: Path, port: int, pacs_port: int, log: Path, *global_args: str
):
    """`thyrocad [global_args] listen` as a subprocess, ready once it answers a C-ECHO."""
    cmd = [
        str(THYROCAD), *global_args, "listen", str(bundle), "--aet", NODE_AET, "--port", str(port),
        "--pacs", f"127.0.0.1:{pacs_port}:{PACS_AET}", "--quiet-s", "0.5",
        "--work-dir", str(work_dir),
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        ae = AE(ae_title=MODALITY_AET)
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", port, ae_title=NODE_AET)
        if assoc.is_established:
            assoc.release()
            return proc
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"thyrocad listen did not start: {log.read_text()[-3000:]}")


def store_to_port(
    port: int, paths: list[Path], calling: str = MODALITY_AET, raw: bool = False
) -> list[int]:
    """C-STORE `paths` as NM images over one association: their statuses ([] if the node
    refused the association). `raw` sends the files' bytes undecoded, malformed or not."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(NuclearMedicineImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title=NODE_AET)
    if not assoc.is_established:
        return []
    before = pynetdicom_config.STORE_SEND_CHUNKED_DATASET
    pynetdicom_config.STORE_SEND_CHUNKED_DATASET = raw
    try:
        return [assoc.send_c_store(p if raw else dcmread(p)).Status for p in paths]
    finally:
        pynetdicom_config.STORE_SEND_CHUNKED_DATASET = before
        assoc.release()
