"""Scores of every patient of a cohort under a training-free observer, computed once per cohort
and code version (`baselines` kind of `thyrocad.cache`). Only a threshold is fitted per split."""

from __future__ import annotations

import functools

from thyrocad.cache import Store, make_key, source_digest
from thyrocad.data.cohort import load_cohort
from thyrocad.errors import ConfigError
from thyrocad.evaluation.baselines import uptake_ratio
from thyrocad.preprocess import landmarks

OBSERVERS = {"uptake_ratio": (uptake_ratio.UptakeRatioObserver, (uptake_ratio, landmarks))}


@functools.lru_cache(maxsize=2)
def cohort_scores(cohort_dir: str, name: str) -> tuple[dict[str, int], dict[str, float]]:
    """(label, score) of every patient of the cohort under observer `name`."""
    if name not in OBSERVERS:
        raise ConfigError(f"unknown baseline {name!r}; known: {', '.join(OBSERVERS)}")
    observer_class, modules = OBSERVERS[name]
    cohort = load_cohort(cohort_dir, read=False)
    labels = {p.patient_id: int(p.label) for p in cohort.patients}
    store = Store("baselines")
    key = make_key(name, cohort.data_hash(), source_digest(*modules))
    scores = store.get_json(key)
    if not isinstance(scores, dict) or set(scores) != set(labels):
        observer = observer_class()
        scores = {p.patient_id: float(observer.score([p.load_study()])[0]) for p in cohort.patients}
        store.put_json(key, scores)
    return labels, scores
