"""The experiment's preprocessed cohort: one 8-bit network image per view, loaded once per process.

The compact copy (`inputs` kind of `thyrocad.cache`, 8-bit images, ~45 MB for 892 views) is
keyed by the cohort data hash, the pipeline config hash, the OpenCV version and the
preprocessing code digest, so a worker process loads it in a fraction of a second. Each
backbone's float input is made from it with that backbone's mean/std (`network_inputs`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from thyrocad.cache import Store, make_key
from thyrocad.data.cohort import Cohort, load_cohort
from thyrocad.decision import view_usable
from thyrocad.models import architecture
from thyrocad.preprocess import Pipeline, PipelineConfig, PreprocessCache
from thyrocad.preprocess.cache import code_digest
from thyrocad.preprocess.config import OutputConfig
from thyrocad.preprocess.steps import to_network_input

logger = logging.getLogger(__name__)

KIND = "inputs"


@dataclass(frozen=True)
class CohortInputs:
    """The preprocessed cohort, in patient order; `images8[v]` is view `v`'s resized,
    segmented 8-bit image and `flags[v]` its preprocessing flags."""

    patient_ids: tuple[str, ...]
    labels: np.ndarray  # (P,) 1 = residual
    view_patient: np.ndarray  # (V,) index into patient_ids
    views: tuple[str, ...]  # (V,) View values
    images8: np.ndarray  # (V, H, W) uint8
    flags: tuple[tuple[str, ...], ...]  # (V,) preprocessing flags

    @property
    def usable(self) -> np.ndarray:
        """(V,) bool: the views `thyrocad.decision` classifies (no blank or flat crop)."""
        return np.array([view_usable(f) for f in self.flags], dtype=bool)

    def rows_of(self, patient_ids: Sequence[str]) -> np.ndarray:
        """View rows of the given patients, in view order."""
        index = {p: i for i, p in enumerate(self.patient_ids)}
        wanted = np.zeros(len(self.patient_ids), dtype=bool)
        wanted[[index[p] for p in patient_ids]] = True
        return np.flatnonzero(wanted[self.view_patient])

    def network_inputs(
        self, rows: np.ndarray, mean: Sequence[float], std: Sequence[float]
    ) -> np.ndarray:
        """float32 (n, 3, H, W) inputs of `rows` normalised with a backbone's mean/std."""
        h, w = self.images8.shape[1:]
        cfg = OutputConfig(size=(h, w), mean=tuple(mean), std=tuple(std))
        return np.stack([to_network_input(self.images8[r], cfg) for r in rows])


def image8_from_input(network_input: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Invert the pipeline's last step: the 8-bit image behind channel 0 of a network input."""
    unit = network_input[0].astype(np.float64) * std + mean
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=2)
def load_inputs(cohort_dir: str, pipeline_json: str) -> CohortInputs:
    """The preprocessed cohort, from its compact disk copy or built (and stored) on a miss."""
    cohort = load_cohort(cohort_dir, read=False)
    config = PipelineConfig.from_json(pipeline_json)
    store = Store(KIND)
    key = make_key(cohort.data_hash(), config.config_hash(), cv2.__version__, code_digest())
    stored = store.get_arrays(key)
    if stored is not None:
        try:
            return _from_arrays(stored)
        except (KeyError, ValueError) as exc:
            logger.warning("unreadable inputs cache entry (%s); rebuilding", exc)
    inputs = _build(cohort, config)
    store.put_arrays(key, **_to_arrays(inputs))
    return inputs


@functools.lru_cache(maxsize=1)
def model_inputs(cohort_dir: str, pipeline_json: str, model: str) -> np.ndarray:
    """float32 (V, 3, H, W) inputs of every view for `model` (its mean/std), once per process;
    runs are grouped by model, so one array is kept at a time."""
    data = load_inputs(cohort_dir, pipeline_json)
    spec = architecture(model).spec
    return data.network_inputs(np.arange(len(data.views)), spec.mean, spec.std)


def _build(cohort: Cohort, config: PipelineConfig) -> CohortInputs:
    """Every view through the pipeline (itself disk-cached per view), kept as 8-bit images."""
    pipeline, cache = Pipeline(config), PreprocessCache()
    mean, std = config.output.mean[0], config.output.std[0]
    view_patient, views, images, flags = [], [], [], []
    for i, patient in enumerate(cohort.patients):
        study, beds = patient.load_study_with_beds()
        for image in study.images:
            out = cache.get_or_compute(
                pipeline, image.counts, study.pixel_spacing_mm, beds.get(image.view.value)
            )
            view_patient.append(i)
            views.append(image.view.value)
            images.append(image8_from_input(out.network_input, mean, std))
            flags.append(tuple(out.flags))
    logger.info("preprocessed %d views of %d patients", len(views), len(cohort.patients))
    return CohortInputs(
        patient_ids=tuple(cohort.patient_ids),
        labels=cohort.labels,
        view_patient=np.asarray(view_patient),
        views=tuple(views),
        images8=np.stack(images),
        flags=tuple(flags),
    )


def _to_arrays(inputs: CohortInputs) -> dict[str, np.ndarray]:
    return {
        "patient_ids": np.array(inputs.patient_ids),
        "labels": inputs.labels,
        "view_patient": inputs.view_patient,
        "views": np.array(inputs.views),
        "images8": inputs.images8,
        "flags": np.array(json.dumps(inputs.flags)),
    }


def _from_arrays(data: dict[str, np.ndarray]) -> CohortInputs:
    return CohortInputs(
        patient_ids=tuple(data["patient_ids"].tolist()),
        labels=data["labels"],
        view_patient=data["view_patient"],
        views=tuple(data["views"].tolist()),
        images8=data["images8"],
        flags=tuple(tuple(f) for f in json.loads(str(data["flags"]))),
    )
