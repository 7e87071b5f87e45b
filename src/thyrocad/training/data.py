"""In-memory training data `(X, y, groups)`, class-balanced sampling and a patient-level holdout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from thyrocad.data.splits import stratified_splits
from thyrocad.errors import TrainingDataError


@dataclass(frozen=True)
class TrainData:
    """Images `x` (float32, N x 3 x H x W, already normalised), labels `y` (1 = residual) and
    `groups` (patient ID of each image; a patient never straddles a holdout split)."""

    x: torch.Tensor
    y: torch.Tensor
    groups: tuple[str, ...]

    @classmethod
    def build(cls, x, y: Sequence[int], groups: Sequence[str] | None = None) -> TrainData:
        """Validate and convert arrays or tensors; `TrainingDataError` says what is wrong."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x)
        x = x.float().contiguous()
        y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
        groups = (
            tuple(str(g) for g in groups)
            if groups is not None
            else tuple(str(i) for i in range(len(y)))
        )
        problems = []
        if x.ndim != 4 or x.shape[1] != 3:
            problems.append(f"images must be N x 3 x H x W, got shape {tuple(x.shape)}")
        if not (len(x) == len(y) == len(groups)):
            problems.append(f"{len(x)} images, {len(y)} labels, {len(groups)} groups differ")
        if len(y) and not bool(((y == 0) | (y == 1)).all()):
            problems.append("labels must be 0 (non-residual) or 1 (residual)")
        if x.numel() and not np.isfinite(x.detach().cpu().numpy()).all():  # numpy: faster
            problems.append("images contain NaN or infinite values")
        if problems:
            raise TrainingDataError("Unusable training data: " + "; ".join(problems) + ".")
        return cls(x, y, groups)

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self) -> list[int]:
        """Images per class [non-residual, residual]."""
        return torch.bincount(self.y, minlength=2).tolist()

    def subset(self, index: np.ndarray) -> TrainData:
        """The images at `index` (sorted integer positions)."""
        idx = torch.as_tensor(index, dtype=torch.int64)
        return TrainData(self.x[idx], self.y[idx], tuple(self.groups[i] for i in index.tolist()))


def require_both_classes(data: TrainData) -> None:
    """Training a 2-way classifier needs images of both classes."""
    counts = data.class_counts()
    if len(data) == 0 or min(counts) == 0:
        raise TrainingDataError(
            f"Training needs images of both classes; got {counts[1]} residual and {counts[0]} "
            "non-residual. Add images of the missing class to the cohort."
        )


def balanced_sampler(y: torch.Tensor, generator: torch.Generator) -> WeightedRandomSampler:
    """Inverse class-frequency weights, N draws with replacement per epoch (PITFALLS 5.1)."""
    counts = torch.bincount(y, minlength=2).double()
    weights = (1.0 / counts)[y]
    return WeightedRandomSampler(weights, num_samples=len(y), replacement=True, generator=generator)


def patient_holdout(data: TrainData, fraction: float, seed: int) -> tuple[TrainData, TrainData]:
    """Hold out `fraction` of the patients, stratified by label, as validation data."""
    patients = sorted(set(data.groups))
    label_of = {}
    for g, label in zip(data.groups, data.y.tolist(), strict=True):
        if label_of.setdefault(g, label) != label:
            raise TrainingDataError("a patient has images with different labels")
    try:
        split = stratified_splits(patients, [label_of[p] for p in patients], 1, fraction, seed)[0]
    except ValueError as exc:
        raise TrainingDataError(f"Cannot hold out validation patients: {exc}.") from exc
    held = set(split.test)
    in_val = np.array([g in held for g in data.groups])
    return data.subset(np.flatnonzero(~in_val)), data.subset(np.flatnonzero(in_val))
