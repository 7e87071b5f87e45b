"""Shared, cached fixtures for the inference / explain / DICOM-results / export tests.

A small phantom cohort (4 patients, 2 residual, two-view NM DICOM files) and model bundles
trained on it for real (head mode, 2 epochs, random backbone weights: no download needed).
Each is built once per test process into a temporary folder removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from thyrocad.cohort import load_cohort
from thyrocad.phantom import PhantomConfig, generate_cohort
from thyrocad.preprocess import preset
from thyrocad.training import TrainConfig, train, write_bundle
from thyrocad.training.cohort_data import cohort_train_data, pipeline_for

N_PATIENTS, N_RESIDUAL, SEED = 4, 2, 11


@functools.cache
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="thyrocad-inference-tests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def phantom_cohort() -> Path:
    """A 4-patient two-view phantom cohort (DICOM multi-frame, ground truth included)."""
    out = workdir() / "cohort"
    config = PhantomConfig(n_patients=N_PATIENTS, n_residual=N_RESIDUAL, seed=SEED)
    generate_cohort(out, config, workers=1)
    return out


def phantom_files() -> list[Path]:
    return sorted((phantom_cohort() / "images").glob("*.dcm"))


def phantom_labels() -> dict[str, int]:
    """File stem -> label (1 = residual)."""
    lines = (phantom_cohort() / "labels.csv").read_text().splitlines()[1:]
    return {Path(r.split(",")[0]).stem: int(r.split(",")[1] == "residual") for r in lines}


@functools.cache
def bundle(model: str = "resnet18") -> Path:
    """A real bundle of `model` trained (head mode, 2 epochs) on the phantom cohort's views."""
    pipeline = pipeline_for(model, preset("default"))
    data = cohort_train_data(load_cohort(phantom_cohort(), read=False), pipeline)
    settings = TrainConfig(
        model=model, weights="none", mode="head", epochs=2, batch_size=4, device="cpu", lr=1e-3
    )
    out = workdir() / f"bundle-{model}"
    write_bundle(out, train(data, settings), pipeline.config.to_dict(), "phantom-test")
    return out


def copy_bundle(model: str, dest: Path) -> Path:
    """A private copy of a cached bundle that a test may damage."""
    return Path(shutil.copytree(bundle(model), dest))
