"""Per-epoch training history (the paper's Fig. 9) and its plot."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from matplotlib.figure import Figure


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: losses and accuracies (val_* None without validation data), the realised
    class counts [non-residual, residual] drawn by the balanced sampler, and wall seconds."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    sampled_counts: tuple[int, int]
    seconds: float

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EpochRecord:
        """Inverse of `to_dict`."""
        return cls(**{**data, "sampled_counts": tuple(data["sampled_counts"])})


def plot_history(history: list[EpochRecord], path: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train and (when present) validation, as a PNG (matplotlib's
    object API: no pyplot, no backend switch)."""
    epochs = [r.epoch for r in history]
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        ax.plot(epochs, [getattr(r, f"train_{metric}") for r in history], label="train")
        val = [getattr(r, f"val_{metric}") for r in history]
        if any(v is not None for v in val):
            ax.plot(epochs, val, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    return path
