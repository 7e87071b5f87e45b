"""A bundle's `thyrocad evaluate` predictions beside a training-free observer on the same patients.

Reads the `predictions.csv` that `thyrocad evaluate BUNDLE COHORT --out OUT` wrote and the
observer's scores of every patient of COHORT (`--baselines OBSERVER`'s cached features; the
peak detector unless `--observer uptake_ratio`), and prints both AUCs with DeLong 95 % CIs and
the paired DeLong test of their difference (`thyrocad.evaluation.stats`). A training-free
observer fits nothing but a threshold, so its AUC on all patients needs no split.

Usage: python benchmarks/evaluate_vs_peak.py COHORT OUT/predictions.csv [--observer NAME]
"""

from __future__ import annotations

import argparse
import csv

from thyrocad.evaluation.baselines.scores import TRAINING_FREE, cohort_features
from thyrocad.evaluation.stats import delong_auc, delong_paired_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort")
    parser.add_argument("predictions")
    parser.add_argument("--observer", choices=TRAINING_FREE, default="peak")
    args = parser.parse_args()
    with open(args.predictions, newline="") as fh:
        rows = list(csv.DictReader(fh))
    _, features = cohort_features(args.cohort, args.observer)
    y = [int(r["label"]) for r in rows]
    cnn = [float(r["probability"]) for r in rows]
    observer = [features[r["patient_id"]][0] for r in rows]
    a, b = delong_auc(y, cnn), delong_auc(y, observer)
    t = delong_paired_test(y, cnn, observer)
    print(
        f"n={len(y)} bundle AUC {a.auc:.3f} ({a.ci_low:.3f}-{a.ci_high:.3f}); "
        f"{args.observer} AUC {b.auc:.3f} ({b.ci_low:.3f}-{b.ci_high:.3f}); paired DeLong delta "
        f"{t.delta:+.3f} ({t.ci_low:+.3f} to {t.ci_high:+.3f}), p {t.p_value:.3g}"
    )


if __name__ == "__main__":
    main()
