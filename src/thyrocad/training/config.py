"""`TrainConfig`: every setting of a training run, saved as JSON next to its result."""

from __future__ import annotations

from dataclasses import dataclass

from thyrocad.configs import Config
from thyrocad.decision import DEFAULT_INNER_FOLDS, OperatingRule, parse_operating_point
from thyrocad.errors import ConfigError

MODES = ("head", "full", "last")
DEVICES = ("auto", "cpu", "cuda")
# Settings that may change between a checkpoint and its resumption without changing the result
# beyond floating-point tolerance.
RESUME_FREE = frozenset({"device", "cache_features"})


@dataclass(frozen=True)
class TrainConfig(Config):
    """Defaults are the paper's: Adam lr 1e-5, weight decay 1e-5, 80 epochs, balanced sampling.

    `mode`: 'head' trains only the new classifier on a frozen backbone (the paper's text),
    'last' also the last stage, 'full' every layer. `weights`: 'imagenet', 'none' (random, on
    purpose) or a path to a state_dict file. `val_fraction` > 0 holds out that share of patients
    (stratified) for the validation curves. `flip` and `shift_px` ('full' mode only) augment
    each training batch (`thyrocad.training.augment`). `operating_point`: how the bundle's
    threshold is chosen (`thyrocad.decision.parse_operating_point`); 'auto' is 'oof-youden' in
    'head' mode (out-of-fold predictions of `inner_folds` extra cheap head trainings) and
    'argmax' otherwise (an out-of-fold rule there costs `inner_folds` extra full trainings).
    """

    model: str = "resnet18"
    weights: str = "imagenet"
    mode: str = "head"
    epochs: int = 80
    lr: float = 1e-5
    weight_decay: float = 1e-5
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    deterministic: bool = True
    bf16: bool = False  # CUDA only
    channels_last: bool = False  # CUDA only
    cache_features: bool = True  # "head" and "last" modes: outputs of the frozen part once
    val_fraction: float = 0.0
    operating_point: str = "auto"
    inner_folds: int = DEFAULT_INNER_FOLDS
    allow_download: bool = False
    # on-the-fly augmentation of every training batch ('full' mode: thyrocad.training.augment)
    flip: bool = False
    shift_px: int = 0

    def __post_init__(self) -> None:
        checks = (
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.device in DEVICES, f"device must be one of {DEVICES}, got {self.device!r}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (
                0.0 <= self.val_fraction < 1.0,
                f"val_fraction must lie in [0, 1), got {self.val_fraction}",
            ),
            (self.inner_folds >= 2, f"inner_folds must be >= 2, got {self.inner_folds}"),
            (self.shift_px >= 0, f"shift_px must be >= 0, got {self.shift_px}"),
            (
                self.mode == "full" or not (self.flip or self.shift_px),
                "flip and shift_px augment the images, which needs mode 'full' (the other "
                "modes reuse the frozen part's outputs of the unaugmented images)",
            ),
        )
        problems = [message for ok, message in checks if not ok]
        if self.operating_point != "auto":
            parse_operating_point(self.operating_point)  # a ConfigError naming the choices
        if problems:
            raise ConfigError("invalid training settings: " + "; ".join(problems))

    def operating_rule(self) -> OperatingRule:
        """The operating point, 'auto' resolved by the mode."""
        if self.operating_point == "auto":
            return parse_operating_point("oof-youden" if self.mode == "head" else "argmax")
        return parse_operating_point(self.operating_point)

    def differences(self, other: TrainConfig) -> list[str]:
        """Settings that differ from `other` and would change the result."""
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(k for k in mine if k not in RESUME_FREE and mine[k] != theirs[k])
