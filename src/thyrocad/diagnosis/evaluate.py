"""Scoring a model bundle on a labelled cohort: `thyrocad evaluate BUNDLE COHORT --out DIR`.

    bundle + labelled cohort --Predictor (the one decision rule)--> one diagnosis per patient
        --> predictions.csv, metrics.json (thyrocad.evaluation.validation), report.html

Every patient is diagnosed exactly as `predict` diagnoses a study, at the bundle's threshold. A
patient without a usable view is listed in predictions.csv with no probability and left out
of the metrics (counted). report.html holds no patient IDs.
"""

from __future__ import annotations

import base64
import csv
import html
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thyrocad.data.cohort import load_cohort
from thyrocad.decision import describe_source
from thyrocad.diagnosis.predictor import Predictor
from thyrocad.errors import NoUsableViewError
from thyrocad.evaluation.figures import confusion_png, reliability_png, roc_png
from thyrocad.evaluation.validation import labelled_metrics
from thyrocad.files import claim_output_dir, strict_json, write_text_atomic

logger = logging.getLogger(__name__)

KIND = "evaluate"
COLUMNS = ("patient_id", "label", "probability", "verdict", "flags")
NO_USABLE_VIEW = "no_usable_view"


@dataclass
class Evaluation:
    """What `evaluate_bundle` wrote and computed."""

    out_dir: Path
    metrics: dict[str, Any]


def evaluate_bundle(
    bundle_dir: str | Path, cohort_dir: str | Path, out: str | Path, *, force: bool = False
) -> Evaluation:
    """Apply the bundle to every patient of the labelled cohort and write the outputs."""
    folder = claim_output_dir(out, KIND, force=force)
    predictor = Predictor.from_bundle(bundle_dir)
    cohort = load_cohort(cohort_dir, require_both_classes=False)
    rows = [_diagnose(predictor, patient) for patient in cohort.patients]
    scored = [r for r in rows if r["probability"] != ""]
    threshold = predictor.operating_point.threshold
    labels = [r["label"] for r in scored]
    prob = [r["probability"] for r in scored]
    metrics = labelled_metrics(labels, prob, threshold) if scored else {"n_patients": 0}
    metrics.update(
        unscored_patients=len(rows) - len(scored),
        bundle=_bundle_summary(predictor),
        cohort={"data_hash": cohort.data_hash(), "n_patients": len(rows)},
    )
    band = predictor.operating_point.indeterminate
    if band:
        metrics["indeterminate_patients"] = sum(band[0] <= p <= band[1] for p in prob)
    _write_predictions(folder / "predictions.csv", rows)
    write_text_atomic(folder / "metrics.json", strict_json(metrics))
    write_text_atomic(folder / "report.html", _report(metrics, labels, prob))
    logger.info("evaluated %d patients (%d unscored)", len(rows), len(rows) - len(scored))
    return Evaluation(folder, metrics)


def _diagnose(predictor: Predictor, patient) -> dict[str, Any]:
    row = {"patient_id": patient.patient_id, "label": int(patient.label)}
    study, beds = patient.load_study_with_beds()  # beds set in labels.csv, as in training
    try:
        d = predictor.predict(study, beds=beds)
    except NoUsableViewError:
        return {**row, "probability": "", "verdict": "", "flags": NO_USABLE_VIEW}
    return {**row, "probability": d.probability, "verdict": d.verdict, "flags": ";".join(d.flags)}


def _bundle_summary(predictor: Predictor) -> dict[str, Any]:
    """What the bundle was trained on and how its threshold was chosen (no patient IDs)."""
    m = predictor.info.manifest
    return {
        "path": str(predictor.info.path),
        "model": predictor.info.model_name,
        "weights_sha256": predictor.info.weights_sha256,
        "mode": m.get("mode"),
        "epochs": m.get("epochs_completed"),
        "trained_on": m.get("cohort"),
        "train_class_counts": m.get("train_class_counts"),
        "train_data_hash": m.get("data_hash"),
        "threshold": m.get("threshold"),
        "view_fusion": predictor.info.fusion,
    }


def _write_predictions(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            p = r["probability"]
            writer.writerow({**r, "probability": repr(float(p)) if p != "" else ""})


# --- report.html -----------------------------------------------------------------------------

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0;font-size:14px}"
    "th,td{border:1px solid #bbb;padding:4px 8px;text-align:right;overflow-wrap:anywhere}"
    "th:first-child,td:first-child{text-align:left}img{max-width:100%}"
    ".figs{display:flex;flex-wrap:wrap;gap:1em}.note{color:#555;font-size:13px}"
    "pre{background:#f5f5f5;padding:8px;font-size:12px;white-space:pre-wrap}"
)
_LABELS = {"acc": "ACC", "sen": "SEN", "spe": "SPE", "ppv": "PPV", "npv": "NPV"}


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f} %"


def _num(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{alt}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _report(m: dict[str, Any], labels: list[int], prob: list[float]) -> str:
    esc = html.escape
    b = m["bundle"]
    rows = "".join(
        f"<tr><td>{name}</td><td>{_pct(m[k]['value'])}</td><td>{m[k]['successes']} / "
        f"{m[k]['n']}</td><td>{_pct(m[k]['ci_low'])} – {_pct(m[k]['ci_high'])}</td></tr>"
        for k, name in _LABELS.items()
        if k in m
    )
    auc = m.get("auc", {})
    cal = m.get("calibration", {})
    figures = ""
    if len(set(labels)) == 2:
        c = m["counts"]
        figures = "".join(
            _img(png, alt)
            for png, alt in (
                (roc_png(labels, prob, m["threshold"], auc["value"]), "ROC curve"),
                (reliability_png(labels, prob), "reliability diagram"),
                (confusion_png(c["tp"], c["fn"], c["fp"], c["tn"]), "confusion matrix"),
            )
        )
    t = b.get("threshold") or {}
    return "\n".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>thyrocad evaluation</title><style>{_STYLE}</style></head><body>",
            f"<h1>Evaluation of {esc(str(b['model']))} on a labelled cohort</h1>",
            f"<p>{m.get('n_patients', 0)} patients scored ({m.get('n_residual', 0)} residual, "
            f"{m.get('n_non_residual', 0)} non-residual); {m['unscored_patients']} without a "
            f"usable view left out. Threshold {_num(m.get('threshold'), 4)} "
            f"({esc(str(t.get('rule')))}). {esc(describe_source(t.get('source', 'training')))}"
            "</p>",
            "<table><thead><tr><th>metric</th><th>value</th><th>counts</th>"
            f"<th>Wilson 95 % CI</th></tr></thead><tbody>{rows}",
            f"<tr><td>AUC</td><td>{_num(auc.get('value'))}</td><td></td><td>"
            f"{_num(auc.get('ci_low'))} – {_num(auc.get('ci_high'))} (DeLong)</td></tr>",
            f"<tr><td>Brier score</td><td>{_num(m.get('brier'))}</td><td></td><td></td></tr>",
            f"<tr><td>calibration intercept / slope</td><td>{_num(cal.get('intercept'))} / "
            f"{_num(cal.get('slope'))}</td><td></td><td>0 / 1 = well calibrated</td></tr>",
            "</tbody></table>",
            f"<div class='figs'>{figures}</div>",
            "<h2>What the bundle was trained on</h2>",
            f"<pre>{esc(strict_json(b))}</pre>",
            "<p class='note'>Research software, not a medical device. Per-patient results are "
            "in predictions.csv beside this page.</p></body></html>",
        ]
    )
