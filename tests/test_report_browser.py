"""The experiment report in a real browser (Debian's headless Chromium via Playwright) at a
1300 px wide window: nothing overflows sideways, the long tables start folded away. Screenshot
in tests/artifacts/browser/ (gitignored)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.report import ModelEntry, ReportContext, write_outputs
from thyrocad.experiment.runs import RunResult
from thyrocad.preprocess import preset

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts" / "browser"
# the demo's models and baselines, and a long name as a user's own weights might have
MODELS = ("resnet18", "squeezenet1_1", "shufflenet_v2_x1_0", "efficientnet_lite0",
          "uptake_ratio", "cho", "cho_true_bed", "my_resnet18_finetuned_on_site_a")  # fmt: skip


def _results() -> list[RunResult]:
    rng = np.random.default_rng(1)
    out = []
    for split in range(10):
        ids = [f"PH{split}{i:03d}" for i in range(111)]
        labels = np.array([1] * 86 + [0] * 25)
        for k, name in enumerate(MODELS):
            prob = np.clip(0.5 + (labels - 0.5) * (0.2 + 0.05 * k) + rng.normal(0, 0.2, 111), 0, 1)
            kind = "baseline" if name in ("uptake_ratio", "cho", "cho_true_bed") else "model"
            out.append(RunResult(
                model=name, kind=kind, split=split, patient_ids=ids, labels=labels.tolist(),
                probabilities=prob.tolist(),
                history={"train_loss": list(np.linspace(0.7, 0.2, 80)),
                         "train_acc": list(np.linspace(0.5, 0.9, 80))} if kind == "model" else {},
                info={"threshold": 0.5, "n_train_patients": 335, "operating_point": "argmax",
                      "threshold_rule": "argmax", "test_flags": {"grabcut_empty": 3}},
            ))  # fmt: skip
    return out


def test_demo_sized_report_fits_1300_px(tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip("Debian chromium is not installed (scripts/ci_services.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    results = _results()
    entries = [
        ModelEntry(n, r.kind, "scratch (random initialisation, seed 0), ImageNet weights "
                   "unavailable" if r.kind == "model" else "n/a (no network)", "head",
                   reason="No ImageNet weights for this model on this machine: "
                   + "/root/.cache/torch/hub/checkpoints/x.pth does not exist " * 3)
        for n, r in {r.model: r for r in results}.items()
    ]  # fmt: skip
    settings = {
        "experiment": ExperimentConfig(models=MODELS[:4]).to_dict(),
        "cohort": {"n_patients": 446, "n_residual": 346, "n_non_residual": 100},
        "preprocess": preset("default").to_dict(),
        "splits": [{"index": i, "seed": 0, "test": [f"PH{i}{j:03d}" for j in range(111)]}
                   for i in range(10)],
    }  # fmt: skip
    ctx = ReportContext(
        command="thyrocad experiment /a/very/long/path/to/the/cohort/folder " + "--flag v " * 40,
        settings=settings, settings_hash="abc", data_hash="d" * 64, versions={"torch": "2"},
        machine={"cpu_count": "2"}, backend="sequential", wall_times={"total": 1.0},
        created_utc="now",
    )  # fmt: skip
    write_outputs(tmp_path, results, entries, "resnet18", ctx)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto((tmp_path / "report.html").as_uri())
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1300, f"the report is {width} px wide"
            widest = page.evaluate(
                "Math.max(...[...document.querySelectorAll('table, img, pre')]"
                ".map(e => e.getBoundingClientRect().right))"
            )
            assert widest <= 1300
            folded = page.evaluate("[...document.querySelectorAll('details')].map(d => d.open)")
            assert folded and not any(folded)  # notes, per-split table, settings start folded
            assert "PH0001" not in page.content()  # no patient IDs
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "experiment-report-1300.png"), full_page=True)
        finally:
            browser.close()
