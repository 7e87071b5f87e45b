"""Shared helpers of the server, browser, DICOM-node and Orthanc tests.

A tiny but real model bundle (SqueezeNet 1.1 head trained for 3 epochs from a fixed random
initialisation on a 6-patient phantom cohort, preprocessed by the real pipeline) and a few
phantom studies are built once per test process. `ServerProcess` runs `thyrocad serve` as a
real Uvicorn subprocess on a free loopback port.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from thyrocad.phantom import PhantomConfig, generate_cohort
from thyrocad.phantom.cohort import residual_flags
from thyrocad.preprocess import Pipeline, preset
from thyrocad.reader import read_study
from thyrocad.server.auth import add_user
from thyrocad.server.store import Store
from thyrocad.training import TrainConfig, TrainData, train, write_bundle

PASSWORD = "correct horse battery"
THYROCAD = Path(sys.executable).parent / "thyrocad"
MODEL = "squeezenet1_1"
PHANTOM = PhantomConfig(n_patients=6, n_residual=3, seed=7)
_ROOT = Path(tempfile.mkdtemp(prefix="thyrocad-server-tests-"))


@functools.cache
def phantom_files() -> tuple[Path, ...]:
    """DICOM files (multiframe, anterior + posterior) of a 6-patient phantom cohort, 3 residual."""
    out = _ROOT / "phantom"
    generate_cohort(out, PHANTOM, workers=1)
    return tuple(sorted((out / "images").glob("*.dcm")))


@functools.cache
def png_file() -> Path:
    """One view of the phantom cohort exported as PNG."""
    out = _ROOT / "phantom-png"
    generate_cohort(out, PhantomConfig(n_patients=2, n_residual=1, seed=8), fmt="png", workers=1)
    return sorted((out / "images").rglob("*.png"))[0]


@functools.cache
def bundle_dir() -> Path:
    """A real bundle: 3 head-mode epochs on the phantom cohort's preprocessed views."""
    from thyrocad.models import architecture

    spec = architecture(MODEL).spec
    pipeline = Pipeline(preset("default").with_normalisation(spec.mean, spec.std))
    x, y, groups = [], [], []
    residual = residual_flags(PHANTOM)
    for index, path in enumerate(phantom_files()):
        study = read_study(path)
        label = int(residual[index])
        for _, result in pipeline.run_study(study):
            x.append(result.network_input)
            y.append(label)
            groups.append(path.stem)
    config = TrainConfig(
        model=MODEL, weights="none", mode="head", epochs=3, lr=1e-3, batch_size=4, device="cpu"
    )
    result = train(TrainData.build(np.stack(x), y, groups), config)
    out = _ROOT / "bundle"
    write_bundle(out, result, preprocess_config=pipeline.config.to_dict(), data_hash="tests")
    return out


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
    """`thyrocad serve` as a subprocess on a free port; `stop()` ends it by its PID."""

    def __init__(self, db: Path, *args: str) -> None:
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = db.parent / f"server-{self.port}.log"
        cmd = [str(THYROCAD), "serve", str(bundle_dir()), "--port", str(self.port)]
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


def cleanup() -> None:
    """Remove the shared build folder (bundle, phantom files)."""
    shutil.rmtree(_ROOT, ignore_errors=True)
