"""`PipelineConfig`: every setting of the preprocessing pipeline, JSON round-trippable and hashed.

Each step has its own section with an `enabled` switch, so ablations are one field away.
Named presets: `paper` (Guo et al. 2021 as published), `default` (the measured better choice,
see docs/preprocessing.md), `grabcut_bed` (GrabCut seeded with the bed as foreground) and
`recommended` (the recommended recipe's: a small native-resolution crop, docs/experiment.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from thyrocad.configs import Config
from thyrocad.errors import ConfigError
from thyrocad.preprocess.landmarks import CONFIDENT

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CropConfig(Config):
    """Step 1: crop a box around the thyroid bed.

    The box is `width_mm` x `height_mm`, centred on the bed found by
    `thyrocad.preprocess.landmarks.locate_thyroid_bed` (or on `center_rc`, a manual (row, col)
    override in original pixels). A located bed with a confidence below `min_bed_confidence`
    (or none) gets a box `uncertain_scale` times larger. Without a bed, the centre falls back
    to the middle of the neck, else to `fallback_center_frac` of the image height/width.
    Without pixel spacing (PNG/JPG exports) the box is sized with the scale the locator
    estimated from the neck width; failing that, it is `fallback_box_px` (rows, cols) when
    set, else still `width_mm` x `height_mm` at the spacing the locator assumes: a field
    `ASSUMED_FIELD_MM` (563 mm) across the image width.
    """

    enabled: bool = True
    width_mm: float = 120.0
    height_mm: float = 120.0
    center_rc: tuple[float, float] | None = None
    use_landmarks: bool = True
    fallback_center_frac: tuple[float, float] = (0.5, 0.5)
    fallback_box_px: tuple[int, int] | None = None  # None: scaled with the image width
    min_bed_confidence: float = CONFIDENT
    uncertain_scale: float = 1.5


@dataclass(frozen=True)
class WindowConfig(Config):
    """Step 2: counts to 8 bits: clip at a level, transform, scale to 0..255.

    The clip level is referenced to the crop itself (`reference="percentile"`: its
    `clip_percentile`, the paper's) or to the local background (`"background"`: `clip_ratio`
    times the median of the counts, smoothed by `BACKGROUND_SIGMA_MM`, in a ring `ring_mm`
    around the bed, measured on the whole view before cropping,
    `thyrocad.preprocess.background`). The background reference keeps a focus's contrast to
    the neck's soft tissue, which a per-crop percentile scales away.
    """

    clip_percentile: float = 99.5
    reference: str = "percentile"  # "percentile" | "background"
    clip_ratio: float = 32.0  # "background": clip at this multiple of the ring's median
    ring_mm: tuple[float, float] = (35.0, 60.0)  # "background": inner and outer radius
    # "linear" | "sqrt" | "log" | "anscombe" (2 sqrt(counts + 3/8) of the clipped counts,
    # scaled to 0..255: the Poisson variance-stabilising transform, which depends on the counts
    # themselves, not only on their ratio to the clip level)
    transform: str = "sqrt"


@dataclass(frozen=True)
class EqualizeConfig(Config):
    """Step 3: histogram equalization: `cv2.equalizeHist` ("global", the paper's) or CLAHE."""

    enabled: bool = True
    method: str = "global"  # "global" | "clahe"
    clahe_clip_limit: float = 2.0
    clahe_tile_grid: tuple[int, int] = (4, 4)


@dataclass(frozen=True)
class GrabCutConfig(Config):
    """Step 4: OpenCV GrabCut, rectangle inset `margin_frac` from the crop edges.

    `init="rect"` is the paper's GC_INIT_WITH_RECT. `init="bed"` also marks an ellipse of
    `bed_fg_mm` (width, height) around the bed centre as sure foreground, so GrabCut cannot cut
    thyroid-bed pixels away. A foreground below `min_fg_fraction` of the crop keeps the crop
    unsegmented (flagged).
    """

    enabled: bool = True
    init: str = "rect"  # "rect" | "bed"
    margin_frac: float = 0.1
    iterations: int = 5
    seed: int = 0
    min_fg_fraction: float = 0.02
    bed_fg_mm: tuple[float, float] = (60.0, 70.0)


@dataclass(frozen=True)
class OutputConfig(Config):
    """Step 5: resize to `size` (rows, cols), replicate to 3 channels, normalise by mean/std."""

    size: tuple[int, int] = (224, 224)
    interpolation: str = "linear"  # "linear" | "cubic" | "area" | "nearest"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass(frozen=True)
class PipelineConfig(Config):
    """All preprocessing settings. `config_hash()` changes with any field."""

    crop: CropConfig = field(default_factory=CropConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    equalize: EqualizeConfig = field(default_factory=EqualizeConfig)
    grabcut: GrabCutConfig = field(default_factory=GrabCutConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    name: str = "custom"

    def __post_init__(self) -> None:
        _validate(self)

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of every field except `name` (a label, not a setting)."""
        data = self.to_dict()
        data.pop("name")
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def with_normalisation(
        self, mean: tuple[float, float, float], std: tuple[float, float, float]
    ) -> PipelineConfig:
        """A copy with the backbone's input mean/std (e.g. 0.5/0.5 for EfficientNet-Lite0)."""
        output = dataclasses.replace(self.output, mean=tuple(mean), std=tuple(std))
        return dataclasses.replace(self, output=output)


def _validate(cfg: PipelineConfig) -> None:
    checks = [
        (cfg.crop.width_mm > 0 and cfg.crop.height_mm > 0, "crop width_mm/height_mm must be > 0"),
        (
            cfg.crop.fallback_box_px is None or min(cfg.crop.fallback_box_px) >= 8,
            "crop fallback_box_px must be null or >= 8 pixels",
        ),
        (0 <= cfg.crop.min_bed_confidence <= 1, "crop min_bed_confidence must be in [0, 1]"),
        (cfg.crop.uncertain_scale >= 1, "crop uncertain_scale must be >= 1"),
        (0 < cfg.window.clip_percentile <= 100, "window clip_percentile must be in (0, 100]"),
        (
            cfg.window.reference in ("percentile", "background"),
            "window reference: percentile|background",
        ),
        (cfg.window.clip_ratio > 1, "window clip_ratio must be > 1"),
        (
            len(cfg.window.ring_mm) == 2 and 0 <= cfg.window.ring_mm[0] < cfg.window.ring_mm[1],
            "window ring_mm must be (inner, outer) with 0 <= inner < outer",
        ),
        (
            cfg.window.transform in ("linear", "sqrt", "log", "anscombe"),
            "window transform: linear|sqrt|log|anscombe",
        ),
        (cfg.equalize.method in ("global", "clahe"), "equalize method: global|clahe"),
        (cfg.grabcut.init in ("rect", "bed"), "grabcut init: rect|bed"),
        (0 <= cfg.grabcut.margin_frac < 0.5, "grabcut margin_frac must be in [0, 0.5)"),
        (cfg.grabcut.iterations >= 1, "grabcut iterations must be >= 1"),
        (0 <= cfg.grabcut.min_fg_fraction < 1, "grabcut min_fg_fraction must be in [0, 1)"),
        (min(cfg.output.size) >= 8, "output size must be >= 8 pixels"),
        (
            cfg.output.interpolation in ("linear", "cubic", "area", "nearest"),
            "output interpolation: linear|cubic|area|nearest",
        ),
        (len(cfg.output.mean) == 3 and len(cfg.output.std) == 3, "mean/std need 3 values"),
        (min(cfg.output.std) > 0, "output std must be > 0"),
    ]
    bad = [msg for ok, msg in checks if not ok]
    if bad:
        raise ConfigError("invalid preprocessing settings: " + "; ".join(bad))


def paper_config() -> PipelineConfig:
    """Guo et al. 2021 as published: equalizeHist, then GrabCut from a rectangle only."""
    return PipelineConfig(name="paper")


def default_config() -> PipelineConfig:
    """The project default: the paper's steps without GrabCut, which cuts remnant tissue away
    on the phantom (docs/preprocessing.md has the measurements)."""
    return PipelineConfig(grabcut=GrabCutConfig(enabled=False), name="default")


RECOMMENDED_CROP_MM = 60.0
RECOMMENDED_SIZE = (32, 32)


def recommended_config() -> PipelineConfig:
    """The recommended recipe's preprocessing (docs/experiment.md *Ablation*): a 60 mm crop at
    about its native resolution (27 pixels of 2.2 mm, resized to 32 x 32), counts clipped at
    32 times the neck's background around the bed and log-transformed (the contrast of a
    focus to the tissue around it, which the peak detector measures), no histogram
    equalization, no GrabCut."""
    return PipelineConfig(
        crop=CropConfig(width_mm=RECOMMENDED_CROP_MM, height_mm=RECOMMENDED_CROP_MM),
        window=WindowConfig(reference="background", transform="log"),
        equalize=EqualizeConfig(enabled=False),
        grabcut=GrabCutConfig(enabled=False),
        output=OutputConfig(size=RECOMMENDED_SIZE),
        name="recommended",
    )


def grabcut_bed_config() -> PipelineConfig:
    """GrabCut kept, but started with the thyroid-bed ellipse as sure foreground."""
    return PipelineConfig(grabcut=GrabCutConfig(init="bed"), name="grabcut_bed")


PRESETS = {
    "paper": paper_config,
    "default": default_config,
    "grabcut_bed": grabcut_bed_config,
    "recommended": recommended_config,
}


def preset(name: str) -> PipelineConfig:
    """The named preset config; ConfigError lists the names when `name` is unknown."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown preprocessing preset {name!r}; choose one of {', '.join(sorted(PRESETS))}"
        ) from None
