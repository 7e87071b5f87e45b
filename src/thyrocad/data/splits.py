"""Patient-level stratified random splits, as in the paper (10 groupings, 3:1, class counts fixed).

On the paper's 446 patients (346 residual, 100 non-residual) with `test_fraction=0.25` each split
has 335 training patients (260/75) and 111 test patients (86/25): the test count of each class is
`floor(n_class * test_fraction)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thyrocad.errors import ConfigError


@dataclass(frozen=True)
class Split:
    """One training/test partition of patient IDs (sorted lists)."""

    index: int
    seed: int
    train: tuple[str, ...]
    test: tuple[str, ...]


def stratified_splits(
    patient_ids: Sequence[str],
    labels: Sequence[int],
    n_splits: int = 10,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> list[Split]:
    """`n_splits` independent stratified random splits of patients.

    Split `i` draws with `numpy.random.default_rng([seed, i])`, so a split does not depend on
    how many others are drawn. Raises `ConfigError` (a ValueError) when the settings cannot
    give every class a test and a training patient.
    """
    ids = np.asarray(patient_ids, dtype=object)
    y = np.asarray(labels)
    if len(ids) != len(y):
        raise ValueError("patient_ids and labels differ in length")
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("patient IDs must be unique (one label per patient)")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"--test-fraction must lie between 0 and 1, got {test_fraction:g}")
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise ValueError("stratified splits need patients of at least two classes")
    order = np.argsort(ids.astype(str), kind="stable")
    ids, y = ids[order], y[order]
    splits = []
    for i in range(n_splits):
        rng = np.random.default_rng([seed, i])
        test_idx = []
        for c in classes:
            members = np.flatnonzero(y == c)
            n_test = math.floor(len(members) * test_fraction)
            if n_test < 1 or n_test >= len(members):
                raise ConfigError(
                    f"class {c!r} has {len(members)} patient(s): too few for a test fraction "
                    f"of {test_fraction:g} (each class needs a test and a training patient); "
                    "use a larger cohort or another --test-fraction"
                )
            test_idx.extend(rng.choice(members, size=n_test, replace=False).tolist())
        test_mask = np.zeros(len(ids), dtype=bool)
        test_mask[test_idx] = True
        splits.append(
            Split(
                index=i,
                seed=seed,
                train=tuple(sorted(ids[~test_mask].astype(str))),
                test=tuple(sorted(ids[test_mask].astype(str))),
            )
        )
    return splits
