"""On-the-fly augmentation of full-mode training batches: left-right flips and small shifts.

A neck scintigram's thyroid bed is left-right symmetric up to anatomy, and the crop is centred
on a located bed that may be off by a few millimetres, so a flipped or slightly shifted crop is
another plausible view of the same patient. Each training image is flipped with probability
one half and moved by a whole number of pixels in [-`shift_px`, `shift_px`] along each axis;
the pixels moved in from outside repeat the edge row or column (no black border that a real
crop never has). Every draw comes from the run's seeded generator, so a run is reproducible
and resumes exactly (the generator's state is in the checkpoint).
"""

from __future__ import annotations

import torch


def augment_batch(
    x: torch.Tensor, generator: torch.Generator, flip: bool, shift_px: int
) -> torch.Tensor:
    """A flipped and shifted copy of the N x C x H x W batch `x` (draws from `generator`);
    `x` itself, whatever its shape (e.g. cached features), when neither is asked for."""
    if not flip and shift_px <= 0:
        return x
    n, _, h, w = x.shape
    if flip:
        flipped = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flipped.to(x.device)[:, None, None, None], x.flip(-1), x)
    if shift_px > 0:
        dy, dx = torch.randint(-shift_px, shift_px + 1, (2, n), generator=generator)
        rows = (torch.arange(h)[None, :] - dy[:, None]).clamp(0, h - 1).to(x.device)
        cols = (torch.arange(w)[None, :] - dx[:, None]).clamp(0, w - 1).to(x.device)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = x[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    return x
