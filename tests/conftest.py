"""Suite-wide fixtures.

- thyrocad's caches ($THYROCAD_HOME) go to a temporary folder, never ~/.cache.
- A local Ray instance (`ray_local`), started once per session by the first test that asks.
- Phantom cohorts and model bundles, built once per test session (lazily, by whichever test asks
  first) into pytest's temporary folders. Bundles are made by
  `thyrocad.training.workflow.train_bundle`, the workflow behind `thyrocad train`, with tiny
  settings: head mode, random backbone weights (no download), lr 1e-3, batch 4, 2-3 epochs.
  Session fixtures are read-only for tests; a test that damages a bundle copies it first
  (`bundle_copy`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from fixture_settings import (
    INFERENCE_EPOCHS,
    INFERENCE_MODEL,
    INFERENCE_PHANTOM,
    SERVER_EPOCHS,
    SERVER_MODEL,
    SERVER_PHANTOM,
    tiny_train_config,
)
from thyrocad.data.phantom import PhantomConfig, generate_cohort
from thyrocad.diagnosis.service import DiagnosisService
from thyrocad.training.workflow import train_bundle


@pytest.fixture(scope="session", autouse=True)
def thyrocad_home(tmp_path_factory) -> Iterator[Path]:
    """$THYROCAD_HOME for the whole session: a fresh temporary folder."""
    before = os.environ.get("THYROCAD_HOME")
    home = tmp_path_factory.mktemp("thyrocad-home")
    os.environ["THYROCAD_HOME"] = str(home)
    yield home
    if before is None:
        os.environ.pop("THYROCAD_HOME", None)
    else:
        os.environ["THYROCAD_HOME"] = before


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op torch thread: much faster on a loaded shared machine; child processes use
    it too. Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _phantom(folder: Path, config: PhantomConfig, fmt: str = "multiframe") -> Path:
    generate_cohort(folder, config, fmt=fmt, workers=1)
    return folder


def _bundle(cohort: Path, out: Path, model: str, epochs: int) -> Path:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # faster on a few loaded cores; the asking test's count comes back
    try:
        return train_bundle(cohort, tiny_train_config(model, epochs), out).path
    finally:
        torch.set_num_threads(before)


# --- inference tests ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def inference_cohort(tmp_path_factory, thyrocad_home) -> Path:
    """A 4-patient two-view phantom cohort (DICOM multi-frame, labels.csv, ground truth)."""
    return _phantom(tmp_path_factory.mktemp("inference") / "cohort", INFERENCE_PHANTOM)


@pytest.fixture(scope="session")
def inference_files(inference_cohort) -> tuple[Path, ...]:
    """The cohort's DICOM files, one per patient (anterior + posterior frames), sorted."""
    return tuple(sorted((inference_cohort / "images").glob("*.dcm")))


@pytest.fixture(scope="session")
def inference_bundle(tmp_path_factory, inference_cohort) -> Path:
    """A real ResNet-18 bundle trained on `inference_cohort` by `train_bundle`."""
    out = tmp_path_factory.mktemp("inference-bundle") / "bundle"
    return _bundle(inference_cohort, out, INFERENCE_MODEL, INFERENCE_EPOCHS)


@pytest.fixture
def bundle_copy(inference_bundle, tmp_path) -> Callable[[str], Path]:
    """`bundle_copy(name)`: a private copy of `inference_bundle` under tmp_path, to damage."""

    def copy(name: str = "bundle") -> Path:
        return Path(shutil.copytree(inference_bundle, tmp_path / name))

    return copy


# --- server, DICOM node, Orthanc, browser tests ---------------------------------------------------


@pytest.fixture(scope="session")
def server_cohort(tmp_path_factory, thyrocad_home) -> Path:
    """A 6-patient phantom cohort, 3 residual (DICOM multi-frame, anterior + posterior)."""
    return _phantom(tmp_path_factory.mktemp("server") / "cohort", SERVER_PHANTOM)


@pytest.fixture(scope="session")
def server_files(server_cohort) -> tuple[Path, ...]:
    """The DICOM files of `server_cohort`, sorted."""
    return tuple(sorted((server_cohort / "images").glob("*.dcm")))


@pytest.fixture(scope="session")
def server_bundle(tmp_path_factory, server_cohort) -> Path:
    """A real SqueezeNet 1.1 bundle: 3 head-mode epochs on `server_cohort` by `train_bundle`."""
    out = tmp_path_factory.mktemp("server-bundle") / "bundle"
    return _bundle(server_cohort, out, SERVER_MODEL, SERVER_EPOCHS)


@pytest.fixture(scope="session")
def server_service(server_bundle) -> DiagnosisService:
    """The diagnosis service of `server_bundle`, loaded once."""
    return DiagnosisService.from_bundle(server_bundle)


@pytest.fixture(scope="session")
def png_file(tmp_path_factory, thyrocad_home) -> Path:
    """One view of a 2-patient phantom cohort exported as PNG."""
    config = PhantomConfig(n_patients=2, n_residual=1, seed=8)
    folder = _phantom(tmp_path_factory.mktemp("png") / "cohort", config, fmt="png")
    return sorted((folder / "images").rglob("*.png"))[0]


# --- distributed execution ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_local() -> Iterator[str]:
    """A local 2-CPU Ray instance for the session (one start for every module that asks; reused
    if something else started one). Its workers import the test modules (runs defined in tests
    are unpickled there) as well as what this process imports."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        paths = [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}},
        )
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()
