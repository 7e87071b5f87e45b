"""What the `hot_nodes` anatomy setting costs the uptake-ratio observer at the true thyroid bed,
against the same patients without their nodes' activity.

Each patient is simulated three times with the same seed: under `default`, under `hot_nodes`,
and under `hot_nodes` with every node's uptake set to 1e-9 % (the same random draws, so the
same remnant foci, framing, node positions and acquisition; only the nodes' counts go). The
observer's ROI is centred on the true bed of each anterior view, so the locator plays no part.
Prints the AUCs over all patients, the paired DeLong difference (with nodes minus without),
where the loss lies (each class split by whether the patient has a node) and how much the
residual patients' ratio falls; writes benchmarks/results/hot_nodes_counterfactual.json.

    python benchmarks/hot_nodes_counterfactual.py --patients 320 --residual 200 --seed 1
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np

from thyrocad.data.phantom import PhantomConfig, simulate_patient
from thyrocad.data.phantom.cohort import ground_truth, residual_flags
from thyrocad.data.phantom.variation import ANATOMY_SETTINGS
from thyrocad.evaluation.baselines.uptake_ratio import uptake_ratio
from thyrocad.evaluation.stats import delong_paired_test, roc_auc
from thyrocad.provenance import library_versions, machine_description
from thyrocad.study import View

RESULTS = Path(__file__).parent / "results" / "hot_nodes_counterfactual.json"
SILENT_NODES = replace(ANATOMY_SETTINGS["hot_nodes"], node_pct=(1e-9, 1e-9))
RUNS = ("default", "hot_nodes", "hot_nodes, nodes silent")


def _true_bed_ratio(cfg: PhantomConfig, index: int, residual: bool) -> tuple[float, bool]:
    """Anterior uptake ratio at the true bed, and whether the patient has a node."""
    sim = simulate_patient(cfg, index, residual)
    truth = ground_truth(cfg, sim)
    bed = truth["thyroid_bed_center"]["anterior"]
    mm = truth["pixel_mm"]
    ratio = uptake_ratio(sim.counts[View.ANTERIOR], (mm, mm), (bed["row_px"], bed["col_px"]))
    return ratio, "node" in truth["confounders"]


def measure_patient(args: tuple[int, int, int, int, bool]) -> dict:
    """The patient's three true-bed ratios (module doc)."""
    patients, residuals, seed, index, residual = args
    out = {"residual": residual}
    for run in RUNS:
        anatomy = run.split(",")[0]
        cfg = PhantomConfig(n_patients=patients, n_residual=residuals, seed=seed, anatomy=anatomy)
        with mock.patch.dict(ANATOMY_SETTINGS, {"hot_nodes": SILENT_NODES} if "," in run else {}):
            out[run], node = _true_bed_ratio(cfg, index, residual)
        if anatomy == "hot_nodes":
            out["node"] = node
    return out


def breakdown(labels: np.ndarray, node: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC of each class's patients with / without a node against all of the other class."""
    out = {}
    for cls, name in ((1, "residual"), (0, "non-residual")):
        for has, tag in ((True, "with"), (False, "without")):
            keep = (labels != cls) | (node == has)
            out[f"{name} {tag} a node"] = roc_auc(labels[keep], scores[keep])
    return out


def summarise(rows: list[dict]) -> dict:
    """AUCs over all patients, the paired difference, the breakdown and the ratio's fall."""
    labels = np.array([int(r["residual"]) for r in rows])
    node = np.array([r["node"] for r in rows])
    scores = {run: np.array([r[run] for r in rows]) for run in RUNS}
    test = delong_paired_test(labels, scores["hot_nodes"], scores[RUNS[2]])
    fall = 1.0 - scores["hot_nodes"] / scores[RUNS[2]]
    fall = fall[(labels == 1) & node]
    return {
        "with_a_node": int(node.sum()),
        "auc_true_bed": {run: roc_auc(labels, s) for run, s in scores.items()},
        "with_minus_without": {
            "delta": test.delta,
            "ci": [test.ci_low, test.ci_high],
            "p": test.p_value,
        },
        "breakdown": {run: breakdown(labels, node, scores[run]) for run in RUNS[1:]},
        "residual_ratio_fall": {
            "median": float(np.median(fall)),
            "p10_p90": [float(np.percentile(fall, q)) for q in (10, 90)],
        },
    }


def report(s: dict) -> None:
    """The summary as markdown tables."""
    print("| run | AUC at the true bed, all patients |\n|---|---|")
    for run in RUNS:
        print(f"| {run} | {s['auc_true_bed'][run]:.3f} |")
    d = s["with_minus_without"]
    print(
        f"\nwith nodes - without: {d['delta']:+.3f} (95 % CI {d['ci'][0]:+.3f}, "
        f"{d['ci'][1]:+.3f}), paired DeLong p = {d['p']:.3g}"
    )
    parts = s["breakdown"]
    print("\n| AUC against all of the other class | " + " | ".join(RUNS[1:]) + " |\n|---|---|---|")
    for key in parts[RUNS[1]]:
        print(f"| {key} | " + " | ".join(f"{parts[run][key]:.3f}" for run in RUNS[1:]) + " |")
    f = s["residual_ratio_fall"]
    print(
        f"\nresidual patients with a node: their ratio falls by a median {100 * f['median']:.0f} % "
        f"(10th / 90th percentile of the fall {100 * f['p10_p90'][0]:.0f} / "
        f"{100 * f['p10_p90'][1]:.0f} %)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=320)
    parser.add_argument("--residual", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cfg = PhantomConfig(n_patients=args.patients, n_residual=args.residual, seed=args.seed)
    flags = residual_flags(cfg)
    tasks = [(args.patients, args.residual, args.seed, i, bool(f)) for i, f in enumerate(flags)]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        summary = summarise(list(pool.map(measure_patient, tasks, chunksize=8)))
    seconds = time.perf_counter() - start
    print(
        f"{args.patients} patients ({args.residual} residual), seed {args.seed}; "
        f"{summary['with_a_node']} with a node under hot_nodes"
    )
    report(summary)
    print(f"\n{seconds:.0f} s on {machine_description()}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    extra = {"seconds": seconds, "versions": library_versions(), "machine": machine_description()}
    RESULTS.write_text(json.dumps({"args": vars(args), **summary, **extra}, indent=2))


if __name__ == "__main__":
    main()
