"""`thyrocad evaluate` end to end: a real bundle on another real labelled phantom cohort (DICOM),
through the real CLI; its numbers checked against independent computations."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from thyrocad.cli.main import app
from thyrocad.data.cohort import load_cohort
from thyrocad.diagnosis.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
proportion_confint = pytest.importorskip("statsmodels.stats.proportion").proportion_confint


@pytest.fixture(scope="module")
def evaluated(inference_bundle, server_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "eval"
    result = runner.invoke(
        app, ["evaluate", str(inference_bundle), str(server_cohort), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    # where the threshold was chosen, in words (train-youden would be called optimistic)
    assert "The operating point" in result.output
    return out, result.output


def test_predictions_are_the_predictors_own(evaluated, inference_bundle, server_cohort):
    out, _ = evaluated
    with open(out / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["patient_id", "label", "probability", "verdict", "flags"]
    cohort = load_cohort(server_cohort, read=False)
    predictor = Predictor.from_bundle(inference_bundle)
    assert [r["patient_id"] for r in rows] == cohort.patient_ids
    for row, patient in zip(rows, cohort.patients, strict=True):
        d = predictor.predict(patient.load_study())
        assert float(row["probability"]) == d.probability and row["verdict"] == d.verdict
        assert int(row["label"]) == patient.label


def test_metrics_match_independent_computations(evaluated, inference_bundle):
    out, output = evaluated
    m = json.loads((out / "metrics.json").read_text())
    with open(out / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    y = np.array([int(r["label"]) for r in rows])
    p = np.array([float(r["probability"]) for r in rows])
    t = json.loads((inference_bundle / "bundle.json").read_text())["threshold"]["value"]
    assert m["threshold"] == t
    called = p >= t
    tp, fn = int((called & (y == 1)).sum()), int((~called & (y == 1)).sum())
    tn, fp = int((~called & (y == 0)).sum()), int((called & (y == 0)).sum())
    assert m["counts"] == {"tp": tp, "fn": fn, "tn": tn, "fp": fp}
    for key, (k, n) in {
        "sen": (tp, tp + fn),
        "spe": (tn, tn + fp),
        "acc": (tp + tn, len(y)),
    }.items():
        assert (m[key]["successes"], m[key]["n"]) == (k, n)
        assert (m[key]["ci_low"], m[key]["ci_high"]) == pytest.approx(
            proportion_confint(k, n, method="wilson"), abs=1e-12
        )
    assert m["auc"]["value"] == pytest.approx(roc_auc_score(y, p))
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert {"intercept", "slope"} <= set(m["calibration"])
    assert m["bundle"]["model"] == "resnet18" and m["unscored_patients"] == 0
    assert "SEN" in output and "AUC" in output


def test_report_is_self_contained_without_patient_ids(evaluated, server_cohort):
    out, _ = evaluated
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # ROC, reliability, confusion matrix
    assert not re.search(r"(src|href)=['\"]https?:", page)
    for pid in load_cohort(server_cohort, read=False).patient_ids:
        assert pid not in page
    assert "Wilson 95 % CI" in page
    assert "The operating point" in page  # where the threshold was chosen


def test_evaluate_refuses_a_folder_of_other_files(inference_bundle, server_cohort, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    args = ["evaluate", str(inference_bundle), str(server_cohort), "--out", str(tmp_path)]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "metrics.json").exists()
