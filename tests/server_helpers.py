"""Helpers of the server, browser, DICOM-node and Orthanc tests (their bundle and phantom
studies are the session fixtures `server_bundle` / `server_files` of conftest.py).

`ServerProcess` runs `thyrocad serve BUNDLE` as a real Uvicorn subprocess on a free loopback
port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from thyrocad.server.auth import add_user
from thyrocad.server.store import Store

PASSWORD = "correct horse battery"
THYROCAD = Path(sys.executable).parent / "thyrocad"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_db(folder: Path, users: tuple[str, ...] = ("alice",)) -> Path:
    """A fresh database with `users`, each with password `PASSWORD`."""
    db = folder / "server" / "thyrocad.db"
    store = Store(db)
    for user in users:
        add_user(store, user, PASSWORD)
    return db


class ServerProcess:
    """`thyrocad serve BUNDLE` as a subprocess on a free port; `stop()` ends it by its PID."""

    def __init__(self, bundle: Path, db: Path, *args: str) -> None:
        self.bundle = bundle
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = db.parent / f"server-{self.port}.log"
        cmd = [str(THYROCAD), "serve", str(bundle), "--port", str(self.port)]
        cmd += ["--db", str(db), *args]
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
