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
from sklearn.model_selection import StratifiedKFold

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


def stratified_folds(labels: Sequence[int], k: int, seed: int) -> list[np.ndarray]:
    """Held-out index sets of an inner stratified `k`-fold over patients (`labels` in patient
    order), shuffled with `seed`. `k` is lowered to the smaller class's size when that class
    has fewer patients (every fold then still holds each class); fewer than 2 patients of a
    class is a `ConfigError`."""
    y = np.asarray(labels)
    smallest = min(int(np.sum(y == c)) for c in np.unique(y)) if y.size else 0
    if np.unique(y).size < 2 or smallest < 2:
        raise ConfigError(
            "out-of-fold thresholds need at least 2 training patients of each class; "
            "use --operating-point argmax for so small a cohort"
        )
    k = min(k, smallest)
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed % 2**32)
    return [held for _, held in folds.split(np.zeros(y.size), y)]


def per_class_test_counts(
    labels: Sequence[int], test_fraction: float
) -> dict[int, tuple[int, int]]:
    """class -> (patients of that class, of them in each split's test part)."""
    y = np.asarray(labels)
    return {
        int(c): (int(np.sum(y == c)), math.floor(int(np.sum(y == c)) * test_fraction))
        for c in np.unique(y)
    }


def distinct_splits(labels: Sequence[int], test_fraction: float) -> int:
    """How many different stratified splits exist: the product over classes of
    C(patients of the class, its test count)."""
    return math.prod(
        math.comb(n, t) for n, t in per_class_test_counts(labels, test_fraction).values()
    )
