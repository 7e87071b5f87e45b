"""The classical observers of an experiment: per-patient features of every patient of a cohort,
computed once per cohort and code version (`baselines` kind of `thyrocad.cache`), and what is
fitted per split.

- `uptake_ratio`: one feature, the ratio itself; nothing is fitted but the threshold.
- `peak`: one feature, the matched peak detector's score; nothing is fitted but the threshold.
- `cho`: the channelized Hotelling observer's channel vector at the located bed; its template
  is fitted on each split's training patients.
- `cho_true_bed`: the same observer at the true bed from a phantom's ground truth (what the
  locator costs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from thyrocad.cache import Store, make_key, source_digest
from thyrocad.data.cohort import Patient, load_cohort
from thyrocad.errors import ConfigError
from thyrocad.evaluation.baselines import cho, peak, uptake_ratio
from thyrocad.preprocess import background
from thyrocad.preprocess.cache import LOCATOR_MODULES as LOCATOR


def _uptake(_: str, patient: Patient) -> list[float]:
    return [float(uptake_ratio.UptakeRatioObserver().score([patient.load_study()])[0])]


def _peak(_: str, patient: Patient) -> list[float]:
    return [peak.study_score(patient.load_study())]


def _cho(_: str, patient: Patient) -> list[float]:
    return cho.patient_channels(patient.load_study())


def _cho_true_bed(cohort_dir: str, patient: Patient) -> list[float]:
    return cho.patient_channels(patient.load_study(), cho.true_beds(cohort_dir, patient.patient_id))


OBSERVERS = {
    "uptake_ratio": (_uptake, (uptake_ratio, *LOCATOR)),
    "peak": (_peak, (peak, background, *LOCATOR)),
    "cho": (_cho, (cho, *LOCATOR)),
    "cho_true_bed": (_cho_true_bed, (cho,)),
}
TRAINING_FREE = ("uptake_ratio", "peak")  # their one feature is their decision variable


@functools.lru_cache(maxsize=4)
def cohort_features(cohort_dir: str, name: str) -> tuple[dict[str, int], dict[str, list[float]]]:
    """(label, feature vector) of every patient of the cohort under observer `name`."""
    if name not in OBSERVERS:
        raise ConfigError(f"unknown baseline {name!r}; known: {', '.join(OBSERVERS)}")
    features_of, modules = OBSERVERS[name]
    cohort = load_cohort(cohort_dir, read=False)
    labels = {p.patient_id: int(p.label) for p in cohort.patients}
    store = Store("baselines")
    key = make_key(name, "features", cohort.data_hash(), source_digest(*modules))
    features = store.get_json(key)
    if not isinstance(features, dict) or set(features) != set(labels):
        features = {p.patient_id: features_of(cohort_dir, p) for p in cohort.patients}
        store.put_json(key, features)
    return labels, features


def cohort_scores(cohort_dir: str, name: str) -> tuple[dict[str, int], dict[str, float]]:
    """(label, score) of every patient under a training-free observer (`TRAINING_FREE`)."""
    labels, features = cohort_features(cohort_dir, name)
    return labels, {p: float(v[0]) for p, v in features.items()}


def fit_observer(
    name: str, features: Sequence[Sequence[float]], labels: Sequence[int]
) -> Callable[[Sequence[Sequence[float]]], np.ndarray]:
    """The decision-variable function of observer `name` fitted on training patients."""
    if name in TRAINING_FREE:
        return lambda x: np.asarray(x, dtype=np.float64)[:, 0]
    template = cho.hotelling_template(np.asarray(features), np.asarray(labels))
    return lambda x: np.asarray(x, dtype=np.float64) @ template
