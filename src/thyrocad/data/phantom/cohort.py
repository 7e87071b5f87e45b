"""Simulate and write a whole cohort: images, labels.csv, ground truth, cohort.json.

Patient `i` (PH{i+1:04d}) draws everything from `np.random.default_rng([seed, i])`, so a
patient's pixels do not depend on the cohort size, the worker count or the output format.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np

import thyrocad
from thyrocad.data.phantom.anatomy import sample_patient
from thyrocad.data.phantom.config import GENERATOR_VERSION, PhantomConfig
from thyrocad.data.phantom.geometry import BED_REGION_CENTER_Y_MM, LOBE_CENTER_Y_MM, Patient
from thyrocad.data.phantom.physics import expected_counts, focus_mask, poisson_counts, to_pixel
from thyrocad.data.phantom.portable import PortableRandom
from thyrocad.data.phantom.writer import AcquisitionInfo, patient_id, write_dicom, write_png
from thyrocad.errors import ThyrocadError
from thyrocad.files import thyrocad_home
from thyrocad.study import View

logger = logging.getLogger(__name__)

FORMATS = ("multiframe", "per-view", "png")
VIEWS = (View.ANTERIOR, View.POSTERIOR)
LABELS_FILE = "labels.csv"
MANIFEST_FILE = "cohort.json"
GROUND_TRUTH_DIR = "ground_truth"
IMAGES_DIR = "images"


@dataclass(frozen=True)
class SimulatedPatient:
    """One patient's sampled anatomy and Poisson count images (uint16)."""

    patient: Patient
    counts: dict[View, np.ndarray]

    @property
    def patient_id(self) -> str:
        return patient_id(self.patient.index + 1)


def residual_flags(cfg: PhantomConfig) -> np.ndarray:
    """Which patient indices are residual: a seeded random choice of `n_residual` of them."""
    rng = np.random.default_rng([cfg.seed, cfg.n_patients, cfg.n_residual, 1])
    flags = np.zeros(cfg.n_patients, bool)
    flags[rng.choice(cfg.n_patients, size=cfg.n_residual, replace=False)] = True
    return flags


def simulate_patient(cfg: PhantomConfig, index: int, residual: bool) -> SimulatedPatient:
    """Sample patient `index` and form its two views."""
    patient = sample_patient(cfg, index, residual)
    rng = PortableRandom([cfg.seed, index, 2])
    expected = expected_counts(cfg, patient, rng)
    counts = {view: poisson_counts(expected[view], rng) for view in VIEWS}
    return SimulatedPatient(patient, counts)


def _point(p: Patient, x_mm: float, y_mm: float) -> dict[str, dict[str, float]]:
    """A patient-frame point in both views, in pixels."""
    return {
        view.value: dict(zip(("row_px", "col_px"), to_pixel(p, x_mm, y_mm, view), strict=True))
        for view in VIEWS
    }


def pixel_digest(cfg: PhantomConfig, n_patients: int) -> str:
    """sha256 of the first `n_patients` patients' count images (anterior then posterior, uint16
    little-endian) as the cohort of `cfg` makes them: the same on every machine (`portable`)."""
    flags = residual_flags(cfg)
    digest = hashlib.sha256()
    for index in range(n_patients):
        sim = simulate_patient(cfg, index, bool(flags[index]))
        for view in VIEWS:
            digest.update(sim.counts[view].astype("<u2").tobytes())
    return digest.hexdigest()


def ground_truth(cfg: PhantomConfig, sim: SimulatedPatient) -> dict:
    """JSON-ready truth: foci per view (px and mm), bed centre, landmarks, acquisition,
    confounders."""
    p = sim.patient
    mm = p.camera.pixel_mm
    foci = []
    for source in (s for s in p.sources if s.kind == "remnant"):
        focus = dict(p.foci[source.focus_id])
        for view, at in _point(p, source.x_mm, source.y_mm).items():
            focus[view] = {**at, "row_mm": at["row_px"] * mm, "col_mm": at["col_px"] * mm}
        foci.append(focus)
    body = p.body
    landmarks = {
        "chin": _point(p, 0.0, body.chin_y_mm),
        "submandibular": _point(p, 0.0, body.submandibular_y_mm),
        "hyoid": _point(p, 0.0, body.hyoid_y_mm),
        "cricoid": _point(p, 0.0, 0.0),
        "thyroid_lobes": _point(p, 0.0, LOBE_CENTER_Y_MM),
        "notch": _point(p, 0.0, body.notch_y_mm),
    }
    return {
        "patient_id": sim.patient_id,
        "label": "residual" if p.residual else "non_residual",
        "pixel_mm": mm,
        "matrix": p.camera.matrix,
        "anatomy": p.anatomy,
        "thyroid_bed_center": _point(p, 0.0, BED_REGION_CENTER_Y_MM),
        "landmarks": landmarks,
        "foci": foci,
        "confounders": list(p.confounders),
        "acquisition": vars(p.acquisition),
        "camera": vars(p.camera),
        "pose": vars(p.pose),
        "body": vars(body),
        "other_sources": [
            {"kind": s.kind, "activity_mbq": s.activity_mbq, "depth_cm": s.depth_cm}
            for s in p.sources
            if s.kind in ("node", "contamination", "oesophageal_retention", "stomach")
        ],
    }


def _params_row(cfg: PhantomConfig, sim: SimulatedPatient) -> dict[str, str]:
    p, acq = sim.patient, sim.patient.acquisition
    return {
        "n_foci": str(len(p.foci)),
        "remnant_uptake_pct_24h": f"{sum(f['uptake_pct_24h'] for f in p.foci):.5f}",
        "administered_mbq": f"{acq.administered_mbq:.0f}",
        "hours_post_dose": f"{acq.hours_post_dose:.0f}",
        "frame_duration_s": f"{acq.frame_duration_s:.0f}",
        "neck_thickness_cm": f"{p.body.neck_thickness_cm:.2f}",
        "star_angle_deg": f"{acq.star_angle_deg:.0f}",
        "confounders": ";".join(p.confounders),
        "total_counts_anterior": str(int(sim.counts[View.ANTERIOR].sum())),
        "total_counts_posterior": str(int(sim.counts[View.POSTERIOR].sum())),
    }


def write_patient(
    out_dir: Path, cfg: PhantomConfig, index: int, residual: bool, fmt: str
) -> list[dict[str, str]]:
    """Simulate one patient, write its image file(s) and ground truth; return its CSV rows."""
    sim = simulate_patient(cfg, index, residual)
    pid = sim.patient_id
    acq = sim.patient.acquisition
    info = AcquisitionInfo(
        index + 1,
        cfg.seed,
        sim.patient.camera.pixel_mm,
        acq.frame_duration_s,
        acq.administered_mbq,
        acq.hours_post_dose,
        cfg.energy_window_kev,
    )
    images = out_dir / IMAGES_DIR
    files: list[tuple[str, str]] = []  # (relative path, view column)
    if fmt == "multiframe":
        write_dicom(images / f"{pid}.dcm", [sim.counts[v] for v in VIEWS], list(VIEWS), info)
        files.append((f"{IMAGES_DIR}/{pid}.dcm", ""))
    else:
        for view in VIEWS:
            name = f"{pid}_{view.value}.{'png' if fmt == 'png' else 'dcm'}"
            if fmt == "png":
                write_png(images / name, sim.counts[view], cfg.png_window_percentile)
            else:
                write_dicom(images / name, [sim.counts[view]], [view], info)
            files.append((f"{IMAGES_DIR}/{name}", view.value))
    gt_dir = out_dir / GROUND_TRUTH_DIR
    gt_dir.mkdir(parents=True, exist_ok=True)
    (gt_dir / f"{pid}.json").write_text(json.dumps(ground_truth(cfg, sim), indent=1))
    masks = {view.value: focus_mask(cfg, sim.patient, view) for view in VIEWS}
    np.savez_compressed(gt_dir / f"{pid}_masks.npz", **masks)
    label = "residual" if residual else "non_residual"
    params = _params_row(cfg, sim)
    return [
        {"path": path, "label": label, "patient_id": pid, "view": view, **params}
        for path, view in files
    ]


def _write_chunk(args: tuple[str, PhantomConfig, list[int], list[bool], str]) -> list[dict]:
    out_dir, cfg, indices, flags, fmt = args
    rows = []
    for index, residual in zip(indices, flags, strict=True):
        rows += write_patient(Path(out_dir), cfg, index, residual, fmt)
    return rows


def generate_cohort(
    out_dir: str | Path,
    config: PhantomConfig | None = None,
    *,
    fmt: str = "multiframe",
    workers: int | None = None,
) -> dict:
    """Write the cohort of `config` into `out_dir`; return a summary dict.

    `workers=None` uses every CPU; 1 runs in this process. Existing files in `out_dir` with
    the same names are overwritten.
    """
    cfg = config or PhantomConfig()
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    flags = residual_flags(cfg)
    workers = max(1, min(workers or os.cpu_count() or 1, cfg.n_patients))
    start = time.perf_counter()
    chunks = [list(range(cfg.n_patients))[k :: workers * 4] for k in range(workers * 4)]
    tasks = [(str(out), cfg, c, [bool(flags[i]) for i in c], fmt) for c in chunks if c]
    if workers == 1:
        results = [_write_chunk(t) for t in tasks]
    else:
        with ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
            results = list(pool.map(_write_chunk, tasks))
    rows = sorted((r for chunk in results for r in chunk), key=lambda r: r["path"])
    _write_labels(out / LABELS_FILE, rows)
    summary = {
        "generator": "thyrocad.data.phantom",
        "generator_version": GENERATOR_VERSION,
        "thyrocad_version": thyrocad.__version__,
        "config_hash": cfg.config_hash(),
        "format": fmt,
        "n_patients": cfg.n_patients,
        "n_residual": int(flags.sum()),
        "n_files": len(rows),
        "seed": cfg.seed,
        "config": cfg.to_dict(),
    }
    (out / MANIFEST_FILE).write_text(json.dumps(summary, indent=1))
    summary["seconds"] = time.perf_counter() - start
    summary["workers"] = workers
    logger.info(
        "wrote %d patients (%d files) in %.1f s with %d workers",
        cfg.n_patients,
        len(rows),
        summary["seconds"],
        workers,
    )
    return summary


def _pool_context():
    """Fork where available (cheap start; the workers use only numpy/scipy/pydicom, no
    OpenCV or torch thread pools), else spawn."""
    return get_context("fork" if "fork" in get_all_start_methods() else "spawn")


def _write_labels(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def default_cohort_dir(config: PhantomConfig | None = None, fmt: str = "multiframe") -> Path:
    """Cache folder of a cohort: `$THYROCAD_HOME/cohorts/<config-hash>[-<format>]`."""
    cfg = config or PhantomConfig()
    suffix = "" if fmt == "multiframe" else f"-{fmt}"
    return thyrocad_home() / "cohorts" / f"{cfg.config_hash()}{suffix}"


def ensure_default_cohort(
    config: PhantomConfig | None = None, *, fmt: str = "multiframe", workers: int | None = None
) -> Path:
    """The cached cohort folder, generating it first if absent (atomically: temp dir + rename)."""
    target = default_cohort_dir(config, fmt)
    if (target / MANIFEST_FILE).is_file():
        return target
    if target.exists():
        raise ThyrocadError(
            f"{target} exists but holds no {MANIFEST_FILE}: it is not a finished cohort. "
            "Remove that folder and run again."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        generate_cohort(tmp, config, fmt=fmt, workers=workers)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / MANIFEST_FILE).is_file():  # not a concurrent winner: real error
                raise
            logger.info("another process generated the cohort first; using it")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
