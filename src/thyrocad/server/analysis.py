"""Glue between an upload (or a study received by the DICOM node) and the model: diagnosis,
figures for the page (views, preprocessing stages, Grad-CAM), report PNG/PDF and DICOM SR/SC.

The work is done by `thyrocad.inference` (prediction), `thyrocad.explain` (Grad-CAM) and
`thyrocad.dicom_results` (SR + SC); this module only arranges their outputs into files of one
result folder and a JSON summary.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.image import imread
from pydicom import dcmread

from thyrocad.dicom_results import SR_SUFFIX, ViewOverlay, write_dicom_results
from thyrocad.errors import InputError
from thyrocad.explain import overlay_original
from thyrocad.preprocess.strip import render_strip
from thyrocad.reader import read_study
from thyrocad.study import Study

logger = logging.getLogger(__name__)

VERDICT_TEXT = {
    "residual": "Residual thyroid tissue suspected",
    "non_residual": "No residual thyroid tissue suspected",
}
INITIAL_WEIGHTS = {"none": "a random initialisation", "imagenet": "ImageNet weights"}
LIMITS_SYNTHETIC = (
    "Research software, not a medical device: every result needs a physician's reading.",
    "Trained on synthetic phantom scintigrams, not on patients; its numbers say nothing about "
    "real-world accuracy until you train and validate it on your own cases.",
    "For planar anterior/posterior I-131 neck views after thyroidectomy only.",
    "The operating point was chosen on the training data.",
    "Grad-CAM shows where the network looked, not where tissue is.",
)


@dataclass(frozen=True)
class Outcome:
    """What one diagnosis produced: the JSON result (with `files`, names in its folder)."""

    verdict: str
    probability: float
    result: dict[str, Any]


def patient_identity(path: Path) -> dict[str, str]:
    """Patient name and ID from a DICOM header (only used when the server stores them)."""
    ds = dcmread(path, stop_before_pixels=True, specific_tags=["PatientName", "PatientID"])
    return {"name": str(ds.get("PatientName", "")), "id": str(ds.get("PatientID", ""))}


def read_received(folder: Path) -> tuple[Study, list[Path]]:
    """One `Study` from the DICOM files of one study (several single-view files are merged)."""
    paths = sorted(p for p in folder.iterdir() if p.is_file())
    if not paths:
        raise InputError(f"{folder} holds no received images.")
    studies = [read_study(p) for p in paths]
    if len(studies) == 1:
        return studies[0], paths
    views = [v for s in studies for v in s.views]
    if len(set(views)) != len(views):
        raise InputError(
            f"The study has {len(views)} views ({', '.join(views)}) in {len(paths)} files; "
            "send one file per view, each view once."
        )
    first = studies[0]
    merged = Study(
        images=tuple(im for s in studies for im in s.images),
        pixel_spacing_mm=first.pixel_spacing_mm,
        frame_duration_ms=first.frame_duration_ms,
        source=str(folder),
        spacing_note=first.spacing_note,
        metadata=first.metadata,
    )
    return merged, paths


class Analyzer:
    """A loaded model bundle that turns a study into a diagnosis and its result files."""

    def __init__(self, predictor: Any, bundle_dir: Path) -> None:
        self.predictor = predictor
        self.bundle_dir = Path(bundle_dir)
        self.manifest: dict[str, Any] = predictor.info.manifest
        self.model_version = f"{predictor.info.model_name}-{predictor.info.weights_sha256[:12]}"
        self.model_card = model_card(self.manifest, self.model_version)

    @classmethod
    def from_bundle(cls, bundle_dir: Path) -> Analyzer:
        """Load the bundle (BundleError if it is unusable)."""
        from thyrocad.inference import Predictor

        return cls(Predictor.from_bundle(bundle_dir), bundle_dir)

    def analyse(self, path: Path, kind: str, out_dir: Path) -> Outcome:
        """Diagnose the file at `path` (sniffed `kind`) and write result files into `out_dir`."""
        study = read_study(path)
        return self.analyse_study(study, [path] if kind == "DICOM" else [], out_dir)

    def dicom_results(self, folder: Path, results_root: Path) -> list[Path]:
        """Diagnose a study received by the DICOM node; the paths of its SR and SC files."""
        study, paths = read_received(folder)
        out_dir = results_root / uuid.uuid4().hex
        analysis = self.analyse_study(study, paths, out_dir)
        files = analysis.result["files"]
        return [out_dir / name for key, name in files.items() if key == "sr" or key[:3] == "sc_"]

    def analyse_study(self, study: Study, sources: list[Path], out_dir: Path) -> Outcome:
        """Predict, explain and write the result files; `sources` are the DICOM inputs, if any."""
        out_dir.mkdir(parents=True, exist_ok=True)
        analysis = self.predictor.analyse(study, explain=True)
        summary = diagnosis_summary(analysis.diagnosis)
        overlays = view_overlays(analysis, study.pixel_spacing_mm)
        files = {
            "views": _save_figure(views_figure(study), out_dir / "views.png"),
            "stages": self._write_stages(analysis, out_dir / "stages.png"),
            "overlay": _save_figure(overlay_figure(overlays), out_dir / "overlay.png"),
        }
        report = report_figure(study, summary, self.model_version, out_dir / "overlay.png")
        files["report_png"] = _save_figure(report, out_dir / "report.png")
        files["report_pdf"] = _save_figure(report, out_dir / "report.pdf")
        if sources:
            files.update(write_dicom(sources[0], analysis.diagnosis, overlays, out_dir))
        result = {**summary, "files": files}
        return Outcome(summary["verdict"], summary["probability"], result)

    def _write_stages(self, analysis: Any, path: Path) -> str:
        output = self.predictor.pipeline.config.output
        strips = [render_strip(p.result, output) for p in analysis.views]
        if not cv2.imwrite(str(path), cv2.vconcat(strips)):
            raise OSError(f"cannot write {path}")
        return path.name


def view_overlays(analysis: Any, spacing_mm: tuple[float, float] | None) -> list[ViewOverlay]:
    """The Grad-CAM overlay of every classified view on its original counts."""
    used = [p for p in analysis.views if p.usable]
    return [
        ViewOverlay(hm.view, overlay_original(p.result.stages["original"], hm), spacing_mm)
        for p, hm in zip(used, analysis.heatmaps, strict=True)
    ]


def write_dicom(
    source: Path, diagnosis: Any, overlays: list[ViewOverlay], out_dir: Path
) -> dict[str, str]:
    """The SR and one SC per view, named `thyrocad_sr.dcm`, `thyrocad_sc_<view>.dcm`."""
    files = {}
    for path in write_dicom_results(source, diagnosis, overlays, out_dir):
        name = path.name.removeprefix(f"{source.stem}_")
        path.rename(out_dir / name)
        is_sr = path.name.endswith(SR_SUFFIX)
        files["sr" if is_sr else "sc_" + name.removesuffix(".dcm").split("_")[-1]] = name
    return files


def diagnosis_summary(diagnosis: Any) -> dict[str, Any]:
    """The JSON the store and the API keep of a `Diagnosis`."""
    data = diagnosis.to_dict()
    data.pop("source", None)  # a server-side temp path: meaningless to the client
    return {
        **data,
        "verdict_text": VERDICT_TEXT.get(data["verdict"], data["verdict"]),
    }


def model_card(manifest: dict[str, Any], version: str) -> dict[str, Any]:
    """What a physician should know about the model, from its bundle manifest."""
    counts = manifest.get("train_class_counts", {})
    threshold = manifest.get("threshold", {})
    data = manifest.get("training_data") or {}
    synthetic = data.get("synthetic", True)
    initial = (manifest.get("initial_weights") or {}).get("kind", "unknown")
    trained_on = (
        f"{counts.get('residual', '?')} residual and {counts.get('non_residual', '?')} "
        f"non-residual training images ({'synthetic phantom' if synthetic else 'own data'}; "
        f"data hash {str(manifest.get('data_hash'))[:16]}); mode {manifest.get('mode')}, "
        f"{manifest.get('epochs_completed')} epochs, started from "
        f"{INITIAL_WEIGHTS.get(initial, initial)}"
    )
    validation = manifest.get("validation")
    limits = list(LIMITS_SYNTHETIC) if synthetic else [LIMITS_SYNTHETIC[0], *LIMITS_SYNTHETIC[2:]]
    return {
        "model": manifest["model"]["name"],
        "version": version,
        "created_utc": manifest.get("created_utc"),
        "trained_on": trained_on,
        "operating_point": (
            f"threshold {threshold.get('value', float('nan')):.3f} ({threshold.get('rule')}); "
            f"on training data sensitivity {threshold.get('train_sensitivity', float('nan')):.3f}, "
            f"specificity {threshold.get('train_specificity', float('nan')):.3f}"
        ),
        "validation": validation or "no held-out validation numbers recorded in the bundle",
        "limits": limits,
        "synthetic": synthetic,
    }


# --- figures ----------------------------------------------------------------------------------


def views_figure(study: Study) -> Figure:
    """The original views of `study`, side by side, in counts."""
    fig = Figure(figsize=(4 * len(study.images), 4.2))
    axes = fig.subplots(1, len(study.images))
    for ax, image in zip(np.atleast_1d(axes), study.images, strict=True):
        shown = ax.imshow(image.counts, cmap="gray_r")
        ax.set_title(f"{image.view.value} ({image.counts.shape[1]}x{image.counts.shape[0]})")
        ax.axis("off")
        fig.colorbar(shown, ax=ax, fraction=0.046, label="counts")
    fig.tight_layout()
    return fig


def report_figure(study: Study, summary: dict[str, Any], version: str, overlay: Path) -> Figure:
    """One page: verdict, probability, operating point, views and the Grad-CAM overlay."""
    fig = Figure(figsize=(8.27, 11.69))  # A4 portrait
    threshold = summary["operating_point"]["threshold"]
    lines = [
        summary["verdict_text"],
        f"P(residual) = {summary['probability']:.3f} (threshold {threshold:.3f})",
        f"model {version}",
        "Research software, not a medical device. Read with the images.",
    ]
    fig.text(0.05, 0.95, "\n".join(lines), va="top", fontsize=12, family="monospace")
    for i, image in enumerate(study.images[:2]):
        ax = fig.add_axes((0.05 + 0.47 * i, 0.5, 0.43, 0.33))
        ax.imshow(image.counts, cmap="gray_r")
        ax.set_title(image.view.value)
        ax.axis("off")
    if overlay.is_file():
        ax = fig.add_axes((0.05, 0.05, 0.9, 0.4))
        ax.imshow(imread(overlay))
        ax.axis("off")
    return fig


def overlay_figure(overlays: list[ViewOverlay]) -> Figure:
    """The overlays side by side, titled by view."""
    fig = Figure(figsize=(4 * len(overlays), 4.3))
    for ax, item in zip(np.atleast_1d(fig.subplots(1, len(overlays))), overlays, strict=True):
        ax.imshow(item.rgb)
        ax.set_title(f"{item.view.value}: Grad-CAM (residual)")
        ax.axis("off")
    fig.tight_layout()
    return fig


def _save_figure(fig: Figure, path: Path) -> str:
    fig.savefig(path, dpi=100)
    return path.name
