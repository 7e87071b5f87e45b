"""The diagnosis service: read a study, diagnose it, write the outputs asked for.

`thyrocad predict`, the web app and the DICOM node all call `DiagnosisService.diagnose`:

    files of one study --read, merge (checked)--> StudySource (Study + sanitised references)
        --Predictor--> Analysis
        --> annotated Grad-CAM PNGs (`Outputs.heatmaps`), DICOM SR + Secondary Captures
            (`Outputs.dicom`), page figures, clickable views and a one-page report
            (`Outputs.figures`), the kept input for a re-run (`Outputs.keep_input`)

Each caller asks only for what it uses: the node for the DICOM objects it sends, the web app
for its figures, the DICOM objects and the kept input, `predict` for what its options name.
Grad-CAM runs only when an output needs it. `diagnose_source` diagnoses a kept source again,
e.g. with a thyroid bed set by a physician. Header values that break DICOM's rules never fail
a diagnosis: they are sanitised (`thyrocad.io.identity`) and noted; a source whose UIDs cannot
be referenced gets a note instead of DICOM results.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thyrocad.decision import describe_source
from thyrocad.diagnosis.dicom_sr import write_dicom_results
from thyrocad.diagnosis.explain import (
    ViewOverlay,
    overlay_network_input,
    overlay_original,
    save_png,
)
from thyrocad.diagnosis.figures import (
    annotated_view,
    bed_view,
    overlay_figure,
    report_figure,
    save_figure,
    views_figure,
    write_stages,
)
from thyrocad.diagnosis.predictor import Predictor
from thyrocad.diagnosis.reading import CALL_TEXT, band, band_text, caption, reading
from thyrocad.diagnosis.source import NO_DICOM_RESULTS, StudySource
from thyrocad.diagnosis.types import Analysis, Diagnosis, OperatingPoint
from thyrocad.errors import DicomResultError, OutsideDomainError
from thyrocad.intake import outside_domain
from thyrocad.study import Study, View

logger = logging.getLogger(__name__)

VERDICT_TEXT = {key: CALL_TEXT[key] for key in ("residual", "non_residual")}
IMAGENET = "ImageNet weights"
INITIAL_WEIGHTS = {
    "none": "a random initialisation",
    "file": f"{IMAGENET} (torchvision file)",
    "hub-cache": f"{IMAGENET} (torch hub cache)",
    "package": f"{IMAGENET} (installed package)",
    "imagenet": IMAGENET,
}
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
    folder per diagnosis, as the web app and the node keep them). `identity` puts the
    patient's name, ID, birth date, study date and accession on the report (else it says the
    identity is not stored)."""

    heatmaps: Path | None = None  # annotated Grad-CAM overlays, and on the network input
    dicom: Path | None = None  # DICOM SR + one Secondary Capture per view (DICOM input only)
    figures: Path | None = None  # views, stages, overlays, clickable views, report PNG + PDF
    keep_input: Path | None = None  # the views and reference headers, for a re-run
    stem: str = ""
    identity: bool = False

    @property
    def explain(self) -> bool:
        return any(d is not None for d in (self.heatmaps, self.dicom, self.figures))

    def name(self, suffix: str) -> str:
        return f"{self.stem}_{suffix}" if self.stem else suffix


@dataclass
class Outcome:
    """One diagnosis and the files written for it (key -> path)."""

    source: StudySource
    analysis: Analysis
    diagnosis: Diagnosis
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def study(self) -> Study:
        return self.source.study

    def summary(self) -> dict[str, Any]:
        """The JSON the web app and API keep: the diagnosis, its call, file names."""
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
        self.model_card = model_card(info.manifest, self.model_version, predictor.operating_point)
        logger.info("model %s loaded: %s", self.model_version, self.model_card["trained_on"])

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, **predictor_options: Any) -> DiagnosisService:
        """Load the bundle (`BundleError` if it is unusable)."""
        return cls(Predictor.from_bundle(bundle_dir, **predictor_options))

    def diagnose(
        self,
        paths: Sequence[Path],
        outputs: Outputs = Outputs(),
        beds: Mapping[str, tuple[float, float]] | None = None,
        views: Sequence[View | None] | None = None,
        strict: bool = False,
    ) -> Outcome:
        """Read the files of one study (one file, or one file per view; `views[i]` names the
        view of a file that states none; `thyrocad.intake.load_study`: neck fields of
        whole-body sweeps, input-domain flags), diagnose it and write `outputs`. `beds` maps a
        view name (or `thyrocad.intake.ALL_VIEWS`) to a thyroid-bed centre (the file's
        pixels) set by a person, used instead of the locator. `strict` refuses a study outside
        the validated domain (`OutsideDomainError`)."""
        source = StudySource.read(paths, views)
        if strict:
            refuse_outside_domain(source.study)
        return self.diagnose_source(source, outputs, beds)

    def diagnose_source(
        self,
        source: StudySource,
        outputs: Outputs = Outputs(),
        beds: Mapping[str, tuple[float, float]] | None = None,
    ) -> Outcome:
        """Diagnose a study already read (or kept, `StudySource.load`) and write `outputs`."""
        outcome = self.decide(source, beds)
        if outputs.keep_input is not None:
            source.save(outputs.keep_input)
        return self.render(outcome, outputs)

    def decide(
        self, source: StudySource, beds: Mapping[str, tuple[float, float]] | None = None
    ) -> Outcome:
        """The diagnosis alone (verdict, probabilities, flags, notes): no Grad-CAM, no files;
        `render` writes them later (the web app answers with this first)."""
        analysis = self.predictor.analyse(source.study, beds=beds)
        diagnosis = analysis.diagnosis
        for note in source.notes:
            diagnosis = diagnosis.with_note(note)
        return Outcome(source, analysis, diagnosis)

    def render(self, outcome: Outcome, outputs: Outputs) -> Outcome:
        """Write the heatmaps, DICOM results and figures `outputs` asks for (running Grad-CAM
        first if they need it and it has not run); `outcome.files` gains them."""
        if outputs.explain and not outcome.analysis.heatmaps:
            outcome.analysis = self.predictor.explain(outcome.analysis)
        analysis = outcome.analysis
        overlays = view_overlays(analysis) if outputs.explain else []
        if outputs.heatmaps is not None:
            outcome.files.update(write_heatmaps(analysis, outcome.diagnosis, overlays, outputs))
        if outputs.dicom is not None:
            self._write_dicom(outcome, overlays, outputs)
        if outputs.figures is not None:
            outcome.files.update(self._write_figures(outcome, overlays, outputs))
        return outcome

    def _write_dicom(self, outcome: Outcome, overlays: list[ViewOverlay], outputs: Outputs) -> None:
        references = outcome.source.references
        if not references:  # DICOM input whose UIDs cannot be referenced is noted already
            if not outcome.source.dicom:
                outcome.diagnosis = outcome.diagnosis.with_note(NO_DICOM_NOTE)
            return
        try:
            written = write_dicom_results(
                references[0], outcome.diagnosis, overlays, outputs.dicom, outputs.stem
            )
        except DicomResultError as exc:  # a diagnosis without DICOM results, said so
            logger.warning("no DICOM results: %s", exc)
            outcome.diagnosis = outcome.diagnosis.with_note(NO_DICOM_RESULTS.format(reason=exc))
            return
        outcome.files.update(written)

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
        for prepared in outcome.analysis.views:
            name = outputs.name(f"bed_{prepared.view.value}.png")
            files[f"bed_{prepared.view.value}"] = save_png(folder / name, bed_view(prepared))
        summary = diagnosis_summary(outcome.diagnosis)
        identity = outcome.source.identity if outputs.identity else None
        report = report_figure(
            outcome.study, summary, self.model_version, files["overlay"], identity
        )
        files["report_png"] = save_figure(report, folder / outputs.name("report.png"))
        files["report_pdf"] = save_figure(report, folder / outputs.name("report.pdf"))
        return files


def refuse_outside_domain(study: Study) -> None:
    """`OutsideDomainError` naming the flags that put `study` outside the validated domain."""
    outside = list(dict.fromkeys(f for im in study.images for f in outside_domain(im.flags)))
    if outside:
        raise OutsideDomainError(
            f"{study.source or 'the study'}: outside what thyrocad was validated on "
            f"({'; '.join(outside)}); --strict refuses it (docs/inputs.md)"
        )


def view_overlays(analysis: Analysis) -> list[ViewOverlay]:
    """The Grad-CAM overlay of every classified view on its original counts."""
    return [
        ViewOverlay(hm.view, overlay_original(p.result.stages["original"], hm))
        for p, hm in zip(analysis.used_views, analysis.heatmaps, strict=True)
    ]


def write_heatmaps(
    analysis: Analysis, diagnosis: Diagnosis, overlays: list[ViewOverlay], outputs: Outputs
) -> dict[str, Path]:
    """Per used view: the annotated overlay on the original view (view, R/L, call, colour
    bar, "not for diagnostic use") and the overlay on the network input."""
    files = {}
    used = analysis.used_views
    text = caption(diagnosis)
    for prepared, hm, item in zip(used, analysis.heatmaps, overlays, strict=True):
        tag = outputs.name(hm.view.value) if len(used) > 1 else outputs.stem or hm.view.value
        files[f"gradcam_{hm.view.value}"] = save_png(
            outputs.heatmaps / f"{tag}_gradcam.png", annotated_view(item, text)
        )
        files[f"gradcam_input_{hm.view.value}"] = save_png(
            outputs.heatmaps / f"{tag}_gradcam_input.png",
            overlay_network_input(prepared.result, hm),
        )
    return files


def diagnosis_summary(diagnosis: Diagnosis) -> dict[str, Any]:
    """The JSON form of a `Diagnosis` without its server-side source path, with verdict text,
    the call a physician reads (`reading`: indeterminate inside the band) and the spread of
    the used views' probabilities."""
    data = diagnosis.to_dict()
    data.pop("source", None)
    used = [v.probability for v in diagnosis.views if v.used and v.probability is not None]
    return {
        **data,
        "verdict_text": VERDICT_TEXT.get(data["verdict"], data["verdict"]),
        "reading": reading(diagnosis).to_dict(),
        "view_spread": max(used) - min(used) if len(used) > 1 else None,
    }


def model_card(manifest: dict[str, Any], version: str, op: OperatingPoint) -> dict[str, Any]:
    """What a physician should know about the model, from its bundle manifest and the
    operating point in use."""
    limits_band, band_source = band(op)
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
        "indeterminate_band": band_text({"band": limits_band, "band_source": band_source}),
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
    return describe_source(threshold.get("source", "training"))


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
