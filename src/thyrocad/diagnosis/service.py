"""The diagnosis service: read a study, diagnose it, write the outputs asked for.

`thyrocad predict`, the web app and the DICOM node all call `DiagnosisService.diagnose`:

    files of one study --read, merge (checked)--> Study --Predictor--> Analysis
        --> Grad-CAM PNGs (`Outputs.heatmaps`), DICOM SR + Secondary Captures (`Outputs.dicom`),
            page figures and a one-page report (`Outputs.figures`)

Each caller asks only for what it uses: the node for the DICOM objects it sends, the web app
for its figures and the DICOM objects, `predict` for what its options name. Grad-CAM runs only
when an output needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thyrocad.diagnosis.dicom_sr import ViewOverlay, write_dicom_results
from thyrocad.diagnosis.explain import overlay_network_input, overlay_original, save_png
from thyrocad.diagnosis.figures import (
    overlay_figure,
    report_figure,
    save_figure,
    views_figure,
    write_stages,
)
from thyrocad.diagnosis.predictor import Predictor
from thyrocad.diagnosis.types import Analysis, Diagnosis
from thyrocad.errors import InputError, OutsideDomainError
from thyrocad.intake import load_study, outside_domain
from thyrocad.io.read import merge_studies
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
    "The operating point was chosen on the training data.",  # replaced per bundle, see below
    "Grad-CAM shows where the network looked, not where tissue is.",
)
NO_DICOM_NOTE = "PNG/JPEG input: no DICOM output written"


@dataclass(frozen=True)
class Outputs:
    """What to write besides the diagnosis, each into its own folder (None: not written).

    `stem` prefixes every file name (`<stem>_...`); empty gives fixed names (one result
    folder per diagnosis, as the web app and the node keep them)."""

    heatmaps: Path | None = None  # Grad-CAM overlays on the view and on the network input
    dicom: Path | None = None  # DICOM SR + one Secondary Capture per view (DICOM input only)
    figures: Path | None = None  # views, preprocessing stages, overlays, report PNG + PDF
    stem: str = ""

    @property
    def explain(self) -> bool:
        return any(d is not None for d in (self.heatmaps, self.dicom, self.figures))

    def name(self, suffix: str) -> str:
        return f"{self.stem}_{suffix}" if self.stem else suffix


@dataclass
class Outcome:
    """One diagnosis and the files written for it (key -> path)."""

    study: Study
    analysis: Analysis
    diagnosis: Diagnosis
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The JSON the web app and API keep: the diagnosis, its verdict text, file names."""
        return {
            **diagnosis_summary(self.diagnosis),
            "files": {key: path.name for key, path in self.files.items()},
        }


class DiagnosisService:
    """A loaded model bundle that turns the files of one study into a diagnosis and files."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        info = predictor.info
        self.model_version = f"{info.model_name}-{info.weights_sha256[:12]}"
        self.model_card = model_card(info.manifest, self.model_version)

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, **predictor_options: Any) -> DiagnosisService:
        """Load the bundle (`BundleError` if it is unusable)."""
        return cls(Predictor.from_bundle(bundle_dir, **predictor_options))

    def diagnose(
        self,
        paths: Sequence[Path],
        outputs: Outputs = Outputs(),
        beds: Mapping[str, tuple[float, float]] | None = None,
        strict: bool = False,
    ) -> Outcome:
        """Read the files of one study (one file, or one file per view), diagnose it and
        write `outputs`. `beds` maps a view name (or `thyrocad.intake.ALL_VIEWS`) to a
        thyroid-bed centre (original pixels) set by a person, used instead of the locator.
        `strict` refuses a study outside the validated domain (`OutsideDomainError`)."""
        study, sources = read_files(paths)
        if strict:
            refuse_outside_domain(study)
        analysis = self.predictor.analyse(study, explain=outputs.explain, beds=beds)
        outcome = Outcome(study, analysis, analysis.diagnosis)
        overlays = view_overlays(analysis, study.pixel_spacing_mm) if outputs.explain else []
        if outputs.heatmaps is not None:
            outcome.files.update(write_heatmaps(analysis, overlays, outputs))
        if outputs.dicom is not None and sources:
            written = write_dicom_results(
                sources[0], analysis.diagnosis, overlays, outputs.dicom, outputs.stem
            )
            outcome.files.update(written)
        elif outputs.dicom is not None:
            outcome.diagnosis = outcome.diagnosis.with_note(NO_DICOM_NOTE)
        if outputs.figures is not None:
            outcome.files.update(self._write_figures(outcome, overlays, outputs))
        return outcome

    def _write_figures(
        self, outcome: Outcome, overlays: list[ViewOverlay], outputs: Outputs
    ) -> dict[str, Path]:
        folder = outputs.figures
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "views": save_figure(views_figure(outcome.study), folder / outputs.name("views.png")),
            "stages": write_stages(
                outcome.analysis,
                self.predictor.pipeline.config.output,
                folder / outputs.name("stages.png"),
            ),
            "overlay": save_figure(overlay_figure(overlays), folder / outputs.name("overlay.png")),
        }
        summary = diagnosis_summary(outcome.diagnosis)
        report = report_figure(outcome.study, summary, self.model_version, files["overlay"])
        files["report_png"] = save_figure(report, folder / outputs.name("report.png"))
        files["report_pdf"] = save_figure(report, folder / outputs.name("report.pdf"))
        return files


def read_files(paths: Sequence[Path]) -> tuple[Study, list[Path]]:
    """One `Study` from the files of one study (`thyrocad.intake.load_study`: neck fields of
    whole-body sweeps, input-domain flags), and those of them that are DICOM (the references
    of DICOM results). Several files are merged with `merge_studies`' checks."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no files given for the study")
    studies = [load_study(p) for p in paths]
    sources = [p for p, s in zip(paths, studies, strict=True) if _is_dicom(s)]
    return merge_studies(studies), sources


def refuse_outside_domain(study: Study) -> None:
    """`OutsideDomainError` naming the flags that put `study` outside the validated domain."""
    outside = list(dict.fromkeys(f for im in study.images for f in outside_domain(im.flags)))
    if outside:
        raise OutsideDomainError(
            f"{study.source or 'the study'}: outside what thyrocad was validated on "
            f"({'; '.join(outside)}); --strict refuses it (docs/inputs.md)"
        )


def _is_dicom(study: Study) -> bool:
    return study.metadata.get("source_format") == "DICOM"


def view_overlays(analysis: Analysis, spacing_mm: tuple[float, float] | None) -> list[ViewOverlay]:
    """The Grad-CAM overlay of every classified view on its original counts."""
    return [
        ViewOverlay(hm.view, overlay_original(p.result.stages["original"], hm), spacing_mm)
        for p, hm in zip(analysis.used_views, analysis.heatmaps, strict=True)
    ]


def write_heatmaps(
    analysis: Analysis, overlays: list[ViewOverlay], outputs: Outputs
) -> dict[str, Path]:
    """Per used view: the overlay on the original view and on the network input."""
    files = {}
    used = analysis.used_views
    for prepared, hm, item in zip(used, analysis.heatmaps, overlays, strict=True):
        tag = outputs.name(hm.view.value) if len(used) > 1 else outputs.stem or hm.view.value
        files[f"gradcam_{hm.view.value}"] = save_png(
            outputs.heatmaps / f"{tag}_gradcam.png", item.rgb
        )
        files[f"gradcam_input_{hm.view.value}"] = save_png(
            outputs.heatmaps / f"{tag}_gradcam_input.png",
            overlay_network_input(prepared.result, hm),
        )
    return files


def diagnosis_summary(diagnosis: Diagnosis) -> dict[str, Any]:
    """The JSON form of a `Diagnosis` without its server-side source path, with verdict text."""
    data = diagnosis.to_dict()
    data.pop("source", None)
    return {**data, "verdict_text": VERDICT_TEXT.get(data["verdict"], data["verdict"])}


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
    limits = list(LIMITS_SYNTHETIC) if synthetic else [LIMITS_SYNTHETIC[0], *LIMITS_SYNTHETIC[2:]]
    limits = [_operating_limit(threshold) if s == LIMITS_SYNTHETIC[3] else s for s in limits]
    return {
        "model": manifest["model"]["name"],
        "version": version,
        "created_utc": manifest.get("created_utc"),
        "trained_on": trained_on,
        "operating_point": _operating_text(threshold),
        "validation": manifest.get("validation")
        or "no held-out validation numbers recorded in the bundle",
        "limits": limits,
        "synthetic": synthetic,
    }


def _operating_text(threshold: dict[str, Any]) -> str:
    text = (
        f"threshold {threshold.get('value', float('nan')):.3f} ({threshold.get('rule')}); "
        f"on training data sensitivity {_num(threshold.get('train_sensitivity'))}, "
        f"specificity {_num(threshold.get('train_specificity'))}"
    )
    if threshold.get("k"):
        text += (
            f"; out of fold ({threshold['k']} folds) sensitivity "
            f"{_num(threshold.get('oof_sensitivity'))}, specificity "
            f"{_num(threshold.get('oof_specificity'))}"
        )
    return text


def _operating_limit(threshold: dict[str, Any]) -> str:
    """What the operating point rests on, for the model card's limits."""
    source = threshold.get("source", "training")
    if source == "out_of_fold":
        return "The operating point was chosen on out-of-fold predictions of the training data."
    if source == "argmax":
        return "The operating point is the network's argmax (p >= 0.5), not tuned on any data."
    return "The operating point was chosen on the training data (optimistic)."


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
