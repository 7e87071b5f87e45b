"""A bundle's `thyrocad evaluate` predictions beside the peak detector on the same patients.

Reads the `predictions.csv` that `thyrocad evaluate BUNDLE COHORT --out OUT` wrote and the
peak detector's scores of every patient of COHORT (`--baselines peak`'s cached features), and
prints both AUCs with DeLong 95 % CIs and the paired DeLong test of their difference
(`thyrocad.evaluation.stats`). The peak detector fits nothing but a threshold, so its AUC on
all patients needs no split.

Usage: python benchmarks/evaluate_vs_peak.py COHORT OUT/predictions.csv
"""

from __future__ import annotations

import csv
import sys

from thyrocad.evaluation.baselines.scores import cohort_features
from thyrocad.evaluation.stats import delong_auc, delong_paired_test


def main() -> None:
    cohort, predictions = sys.argv[1], sys.argv[2]
    with open(predictions, newline="") as fh:
        rows = list(csv.DictReader(fh))
    _, features = cohort_features(cohort, "peak")
    y = [int(r["label"]) for r in rows]
    cnn = [float(r["probability"]) for r in rows]
    peak = [features[r["patient_id"]][0] for r in rows]
    a, b, t = delong_auc(y, cnn), delong_auc(y, peak), delong_paired_test(y, cnn, peak)
    print(
        f"n={len(y)} bundle AUC {a.auc:.3f} ({a.ci_low:.3f}-{a.ci_high:.3f}); "
        f"peak AUC {b.auc:.3f} ({b.ci_low:.3f}-{b.ci_high:.3f}); paired DeLong delta "
        f"{t.delta:+.3f} ({t.ci_low:+.3f} to {t.ci_high:+.3f}), p {t.p_value:.3g}"
    )


if __name__ == "__main__":
    main()
