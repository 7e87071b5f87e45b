"""A frozen copy of a network for fast inference on CPU: BatchNorm folded, channels-last.

Folding each BatchNorm (eval mode, running statistics) into the convolution before it and
storing activations channels-last lets oneDNN pick its fastest convolution kernels: 1.14-1.63x
faster at batch 1 on the project's 2-core CPU (`benchmarks/bench_models.py`). Outputs equal the
original's to float32 rounding (relative difference ~1e-6, tested for every registered model).
Networks that torch.fx cannot trace (timm's EfficientNet) are only made channels-last.

`fold_grey_input` goes further for thyrocad's inputs, whose three channels are one grey image
normalised by a per-channel mean/std: the first convolution is rewritten to read channel 0
alone, exactly (three times fewer multiply-adds in that layer, one third of the input read).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn
from torch.fx.experimental.optimization import fuse
from torch.fx.proxy import TraceError

logger = logging.getLogger(__name__)


def inference_copy(module: nn.Module) -> nn.Module:
    """An eval-mode, gradient-free copy of `module` with Conv+BatchNorm folded where the graph
    can be traced, its weights in channels-last memory. The original is left untouched."""
    frozen = copy.deepcopy(module).eval()
    for param in frozen.parameters():
        param.requires_grad_(False)
    try:
        frozen = fuse(frozen, inplace=True)
    except (TraceError, TypeError, NotImplementedError) as exc:  # not traceable: no folding
        logger.debug("no BatchNorm folding for %s (%s)", type(module).__name__, exc)
    return frozen.to(memory_format=torch.channels_last)


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """A 4-D batch in channels-last memory, the layout `inference_copy` networks prefer."""
    return images.contiguous(memory_format=torch.channels_last)


def class_probabilities(model: nn.Module, network_inputs: np.ndarray) -> np.ndarray:
    """Softmax class probabilities (N x 2, float64) of a batch, under `torch.inference_mode()`
    (channels-last input: the faster layout on CPU)."""
    x = channels_last(torch.from_numpy(np.ascontiguousarray(network_inputs, dtype=np.float32)))
    with torch.inference_mode():
        return torch.softmax(model(x), dim=1).numpy().astype(np.float64)


def grey_inference_copy(
    model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], size: tuple[int, int]
) -> nn.Module:
    """`inference_copy` with the input convolution folded to one grey channel
    (`fold_grey_input`) where it can be; where not, the reason is logged."""
    fast = inference_copy(model)
    try:
        fold_grey_input(fast, mean, std, size)
    except ValueError as exc:
        logger.info("%s: input convolution not folded (%s)", type(model).__name__, exc)
    return fast


class GreyInputConv(nn.Module):
    """A first convolution over three channels `x_c = a_c * x_0 + d_c` (one grey image `g`
    normalised per channel: `x_c = (g - mean_c) / std_c`, so `a_c = std_0 / std_c`,
    `d_c = (mean_0 - mean_c) / std_c`) computed from channel 0 alone.

    By linearity, conv(x) = conv'(x_0) + conv(d), with conv' the one-channel convolution of
    weights sum_c a_c W_c and conv(d) the original convolution (bias included) of the constant
    image d, zero-padded as the real input is; it depends only on the input size, so it is
    computed once (`offset`, for `size`). Exact up to float rounding, borders included."""

    def __init__(
        self,
        conv: nn.Conv2d,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        size: tuple[int, int],
    ) -> None:
        super().__init__()
        if conv.in_channels != 3 or conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError("only a plain 3-channel first convolution with zero padding folds")
        m = torch.tensor(mean, dtype=torch.float64)
        s = torch.tensor(std, dtype=torch.float64)
        scale, shift = s[0] / s, (m[0] - m) / s
        weight = conv.weight.detach().double()
        with torch.no_grad():
            constant = shift.view(1, 3, 1, 1).expand(1, 3, *size).to(conv.weight.dtype)
            offset = conv(constant.contiguous())
        self.conv = copy.deepcopy(conv)  # keeps the class (e.g. timm's "same" padding)
        self.conv.in_channels = 1
        self.conv.weight = nn.Parameter(
            (weight * scale.view(1, 3, 1, 1)).sum(1, keepdim=True).to(conv.weight.dtype),
            requires_grad=False,
        )
        self.conv.bias = None
        self.register_buffer("offset", offset.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x[:, :1]) + self.offset


def fold_grey_input(
    model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], size: tuple[int, int]
) -> nn.Module:
    """`model` (changed in place and returned) with the convolution that reads its input
    replaced by a `GreyInputConv`, for inputs of `size` (rows, cols) normalised by `mean`/`std`.
    The same N x 3 x H x W input goes in. `ValueError` when no plain convolution reads the
    input or the folded network disagrees with the original on a random grey input."""
    probe = _grey_probe(mean, std, size)
    name = _input_conv(model, probe)
    with torch.inference_mode():
        before = model(probe)
    parent, _, attr = name.rpartition(".")
    holder = model.get_submodule(parent) if parent else model
    setattr(holder, attr, GreyInputConv(model.get_submodule(name), mean, std, size))
    with torch.inference_mode():
        after = model(probe)
    error = float((after - before).abs().max() / before.abs().max().clamp_min(1e-12))
    if error > FOLD_TOLERANCE:
        raise ValueError(f"the folded first convolution differs by {error:.1e} (relative)")
    logger.debug("%s: input convolution %s folded to one channel", type(model).__name__, name)
    return model


FOLD_TOLERANCE = 1e-4  # max abs difference of outputs, relative to their largest magnitude


def _grey_probe(mean, std, size: tuple[int, int]) -> torch.Tensor:
    """Two random grey images normalised per channel, as the pipeline's network input."""
    grey = torch.rand(2, 1, *size, generator=torch.Generator().manual_seed(0))
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (grey - m) / s


def _input_conv(model: nn.Module, probe: torch.Tensor) -> str:
    """The name of the `nn.Conv2d` that reads the model's input tensor itself."""
    names = {id(m): n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    found: list[str] = []

    def hook(module: nn.Module, args: tuple) -> None:
        if args and args[0] is probe and id(module) in names:
            found.append(names[id(module)])

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if id(m) in names]
    try:
        with torch.inference_mode():
            model(probe)
    finally:
        for handle in handles:
            handle.remove()
    if len(found) != 1:
        raise ValueError(f"{len(found)} convolutions read the input directly (one is needed)")
    return found[0]
