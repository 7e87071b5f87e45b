"""Aggregation, statistics and the report, from synthetic run results with known structure.

Three "models" score the same test patients of 4 splits: `good` separates the classes well,
`weak` barely, `same` is a copy of `good`. The tests check the outputs against direct
computations with scikit-learn / numpy and the statistics module.
"""

import csv
import json
import math
import re

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from thyrocad.evaluation.stats import delong_paired_test
from thyrocad.experiment.report import (
    OUTPUT_FILES,
    ModelEntry,
    ReportContext,
    aggregate,
    write_outputs,
)
from thyrocad.experiment.report.aggregate import METRICS, table_markdown
from thyrocad.experiment.runs import RunResult

N_SPLITS = 4


def _results() -> list[RunResult]:
    rng = np.random.default_rng(42)
    out = []
    for split in range(N_SPLITS):
        ids = [f"S{split}P{i:02d}" for i in range(30)]
        labels = np.array([1] * 22 + [0] * 8)
        good = np.clip(0.5 + (labels - 0.5) * 0.6 + rng.normal(0, 0.2, 30), 0, 1)
        weak = np.clip(0.5 + (labels - 0.5) * 0.1 + rng.normal(0, 0.2, 30), 0, 1)
        for name, prob in (("good", good), ("weak", weak), ("same", good)):
            out.append(
                RunResult(
                    model=name,
                    kind="model",
                    split=split,
                    patient_ids=ids,
                    labels=labels.tolist(),
                    probabilities=prob.tolist(),
                    history={"train_loss": list(np.linspace(0.7, 0.2, 5) + split * 0.01)},
                    info={"threshold": 0.5, "n_train_patients": 90},
                    wall_s=1.0,
                )
            )
    return out


ENTRIES = [
    ModelEntry("good", "model", "ImageNet (package)", "head"),
    ModelEntry("weak", "model", "scratch (random initialisation)", "head"),
    ModelEntry("same", "model", "ImageNet (package)", "head"),
    ModelEntry("missing", "model", "ImageNet", "head", "unavailable", "no weights file X"),
]


def test_table_means_match_direct_computation():
    results = _results()
    agg = aggregate(results, ENTRIES, reference="good")
    rows = {(r["model"], r["metric"]): r for r in agg.table}
    aucs = [roc_auc_score(r.labels, r.probabilities) for r in results if r.model == "weak"]
    assert rows[("weak", "auc")]["mean"] == pytest.approx(np.mean(aucs))
    assert rows[("weak", "auc")]["sd"] == pytest.approx(np.std(aucs, ddof=1))
    accs = [
        np.mean((np.array(r.probabilities) >= 0.5) == np.array(r.labels))
        for r in results
        if r.model == "good"
    ]
    assert rows[("good", "acc")]["mean"] == pytest.approx(np.mean(accs))
    # an unavailable model keeps its rows, with no numbers
    assert math.isnan(rows[("missing", "auc")]["mean"])
    assert len(agg.table) == len(ENTRIES) * len(METRICS)


def test_statistics_against_reference():
    results = _results()
    agg = aggregate(results, ENTRIES, reference="good")
    stats = agg.stats
    # Mann-Whitney: an identical model gives p = 1, a much weaker one a small p
    assert stats["mann_whitney"]["auc"]["same"]["p_value"] == pytest.approx(1.0)
    assert stats["mann_whitney"]["auc"]["weak"]["p_value"] < 0.05
    assert stats["mann_whitney"]["auc"]["weak"]["method"] in ("exact", "asymptotic")
    assert "good" not in stats["mann_whitney"]["auc"]
    # per-split paired DeLong equals a direct call on that split's patients
    split0 = {r.model: r for r in results if r.split == 0}
    direct = delong_paired_test(
        split0["weak"].labels, split0["weak"].probabilities, split0["good"].probabilities
    )
    entry = stats["per_split"]["0"]["weak"]
    assert entry["delong_vs_reference"]["z"] == pytest.approx(direct.statistic)
    assert entry["delong_vs_reference"]["p"] == pytest.approx(direct.p_value)
    assert entry["auc"]["ci_low"] <= entry["auc"]["auc"] <= entry["auc"]["ci_high"]
    # identical scores: zero variance of the difference, reported not crashed
    assert stats["per_split"]["0"]["same"]["delong_vs_reference"]["p"] == pytest.approx(1.0)
    summary = stats["summary"]["weak"]
    assert summary["n_splits"] == N_SPLITS
    ci = summary["auc_mean_corrected_ci"]
    assert ci["ci_low"] < ci["mean"] < ci["ci_high"]
    assert summary["splits_delong_p_below_0_05"] >= 1
    assert "shared" in stats["summary_rule"] or "share" in stats["summary_rule"]


def test_table_markdown_layout_states_init_mode_and_unavailable_reason():
    agg = aggregate(_results(), ENTRIES, reference="good")
    md = table_markdown(agg)
    lines = md.splitlines()
    assert lines[0] == "| metric | good | weak | same |"  # p-values in a table of their own
    assert "missing" not in lines[0]
    p_header = lines.index("| metric | weak | same |")
    assert "Mann–Whitney" in lines[p_header - 2]
    assert lines[p_header + 2 + 6] == "| AUC | 0.027 | 1.000 |"
    assert "Caveat: Mann–Whitney on 4 split(s)" in md
    assert "of n = 22 (" in md and "of n = 8 (" in md  # SEN/SPE with the patients they rest on
    assert re.search(r"\| AUC \| 0\.\d{3} \(0\.\d{3}\)", md)
    assert "| missing | model | ImageNet | head | unavailable |" in md
    assert "- missing: no weights file X" in md
    assert "scratch (random initialisation)" in md


def test_write_outputs_writes_every_file_and_a_self_contained_report(tmp_path):
    from thyrocad.experiment.config import ExperimentConfig
    from thyrocad.preprocess import preset

    results = _results()
    settings = {
        "experiment": ExperimentConfig(n_splits=N_SPLITS, epochs=7).to_dict(),
        "cohort": {"n_patients": 120, "n_residual": 88, "n_non_residual": 32},
        "preprocess": preset("default").to_dict(),
        "splits": [
            {"index": i, "seed": 0, "test": next(r.patient_ids for r in results if r.split == i)}
            for i in range(N_SPLITS)
        ],
    }
    ctx = ReportContext(
        command="thyrocad experiment cohort --out res",
        settings=settings,
        settings_hash="abc",
        data_hash="deadbeef",
        versions={"torch": "x"},
        machine={"cpu_count": "2"},
        backend="sequential",
        wall_times={"total": 1.0},
        created_utc="now",
    )
    write_outputs(tmp_path, results, ENTRIES, "good", ctx)
    for name in OUTPUT_FILES:
        assert (tmp_path / name).is_file(), name
    with open(tmp_path / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["model", "split", "patient_id", "label", "probability"]
    assert len(rows) == sum(len(r.patient_ids) for r in results)
    by_key = {(r["model"], r["split"], r["patient_id"]): float(r["probability"]) for r in rows}
    first = results[0]
    assert by_key[(first.model, "0", first.patient_ids[3])] == first.probabilities[3]
    with open(tmp_path / "table.csv") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["model", "metric", "mean", "sd"]
    stats = json.loads((tmp_path / "stats.json").read_text())  # strict JSON (no NaN)
    assert stats["reference"] == "good"
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert not re.search(r"(src|href)=['\"]https?:", page)
    for text in ("thyrocad experiment cohort --out res", "deadbeef", "no weights file X"):
        assert text in page
    assert not any(pid in page for r in results for pid in r.patient_ids)
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
    # no patient ID in the shareable report (splits.json keeps them); split sizes instead
    assert not re.search(r"S\dP\d\d", page)
    assert "&quot;n_test&quot;: 30" in page
    methods = (tmp_path / "methods.md").read_text()
    for text in (
        "120 patients (88 with and 32 without",
        "tested on 30 (22 residual, 8 non-res",
        "trained on 90 patients",
        "7 epochs",
        "torch x",
        "Wilson",
    ):
        assert text in methods, text
    assert methods.split("\n", 2)[2].strip() in page.replace("&#x27;", "'")


def test_p_values_read_the_same_everywhere():
    from thyrocad.experiment.report.aggregate import p_text

    assert p_text({"p_value": 0.0004}) == "<0.001"
    assert p_text({"p_value": 0.0123}) == "0.012"
    assert p_text({"error": "undefined"}) == p_text(None) == "n/a"
