"""The paper's preprocessing: thyroid-bed crop, 8-bit window, equalization, GrabCut, resize.

>>> from thyrocad.preprocess import Pipeline, preset
>>> result = Pipeline(preset("paper")).run(counts, spacing_mm=(2.2, 2.2))
"""

from thyrocad.preprocess.cache import PreprocessCache, cache_key, default_cache_dir
from thyrocad.preprocess.config import PRESETS, PipelineConfig, preset
from thyrocad.preprocess.pipeline import STAGES, Pipeline, PreprocessOutput, PreprocessResult
from thyrocad.preprocess.steps import CropBox, Flag, uncrop

__all__ = [
    "PRESETS",
    "STAGES",
    "CropBox",
    "Flag",
    "Pipeline",
    "PipelineConfig",
    "PreprocessCache",
    "PreprocessOutput",
    "PreprocessResult",
    "cache_key",
    "default_cache_dir",
    "preset",
    "uncrop",
]
