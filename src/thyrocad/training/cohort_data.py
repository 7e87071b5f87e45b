"""Adapter from a labelled cohort and the preprocessing pipeline to in-memory `TrainData`."""

from __future__ import annotations

import logging

import numpy as np

from thyrocad.cohort import Cohort
from thyrocad.models import architecture
from thyrocad.preprocess import Pipeline, PipelineConfig, PreprocessCache
from thyrocad.training.data import TrainData

logger = logging.getLogger(__name__)


def pipeline_for(model_name: str, config: PipelineConfig) -> Pipeline:
    """`config` with the input normalisation that `model_name`'s weights expect (PITFALLS 4.5)."""
    spec = architecture(model_name).spec
    return Pipeline(config.with_normalisation(spec.mean, spec.std))


def cohort_train_data(
    cohort: Cohort, pipeline: Pipeline, cache: PreprocessCache | None = None
) -> TrainData:
    """Every view of every patient, preprocessed (through `cache` when given).

    Each view is one training image labelled with its patient's label; `groups` holds the
    patient ID, so a patient-level holdout keeps both views on one side.
    """
    x, y, groups = [], [], []
    for patient in cohort.patients:
        study = patient.load_study()
        for image in study.images:
            if cache is not None:
                out = cache.get_or_compute(pipeline, image.counts, study.pixel_spacing_mm)
            else:
                out = pipeline.run(image.counts, study.pixel_spacing_mm).output
            x.append(out.network_input)
            y.append(patient.label)
            groups.append(patient.patient_id)
    logger.info("preprocessed %d views of %d patients", len(x), len(cohort.patients))
    return TrainData.build(np.stack(x), y, groups)
