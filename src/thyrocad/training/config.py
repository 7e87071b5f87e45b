"""`TrainConfig`: every setting of a training run, saved as JSON next to its result."""

from __future__ import annotations

from dataclasses import dataclass

from thyrocad.configs import Config
from thyrocad.decision import THRESHOLD_RULES
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
    (stratified) for the validation curves. `threshold_rule`: 'youden' or 'sensitivity' (then
    `threshold_target` is the sensitivity to reach on training data).
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
    cache_features: bool = True  # 'head' mode only
    val_fraction: float = 0.0
    threshold_rule: str = "youden"
    threshold_target: float = 0.95
    allow_download: bool = False

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
            (
                self.threshold_rule in THRESHOLD_RULES,
                f"threshold_rule must be one of {THRESHOLD_RULES}, got {self.threshold_rule!r}",
            ),
        )
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ConfigError("invalid training settings: " + "; ".join(problems))

    def differences(self, other: TrainConfig) -> list[str]:
        """Settings that differ from `other` and would change the result."""
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(k for k in mine if k not in RESUME_FREE and mine[k] != theirs[k])
