"""The fit loop: Adam, cross-entropy, class-balanced sampling, per-epoch checkpoints, resume.

Frozen parts of the model (everything but the head in 'head' mode, everything but the last
stage and head in 'last' mode) are in eval mode: BatchNorm uses its running statistics and
backbone dropout is off, so the frozen part is a fixed function of the image and its output
is computed once per image (`FeatureCache`): the backbone features in 'head' mode, the
activations entering the last stage in 'last' mode. Those modes do not augment the images, so
every epoch would feed the frozen part the same inputs: the cache changes no result. 'full'
mode may augment each batch (`TrainConfig.flip`, `shift_px`: `thyrocad.training.augment`),
drawing from the run's seeded generator. Dropout inside the
trainable part (SqueezeNet's classifier, EfficientNet-Lite0's pre-classifier dropout) stays
active during training in every mode and draws from the seeded global torch generator, the
same way whether the frozen part's outputs are cached or recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from thyrocad.errors import CheckpointError
from thyrocad.models import (
    FeatureSplit,
    channels_last,
    create_model,
    inference_copy,
    model_info,
    split_last,
    split_model,
    state_fingerprint,
)
from thyrocad.training.augment import augment_batch
from thyrocad.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from thyrocad.training.config import TrainConfig
from thyrocad.training.data import TrainData, balanced_sampler, require_both_classes
from thyrocad.training.feature_cache import FeatureCache, backbone_key
from thyrocad.training.history import EpochRecord
from thyrocad.training.runtime import (
    autocast,
    determinism,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
    torch_threads,
)

logger = logging.getLogger(__name__)

CACHED_MODES = ("head", "last")  # modes with a frozen part whose outputs `FeatureCache` keeps


@dataclass
class TrainResult:
    """A trained model, its history and its probabilities on its own training images (a
    decision threshold is chosen from them by `thyrocad.training.workflow`)."""

    model: nn.Module
    config: TrainConfig
    history: list[EpochRecord]
    train_prob: np.ndarray  # P(residual) of each training image, eval mode
    backbone_fingerprint: str
    class_counts: list[int]  # training images [non-residual, residual]


@dataclass
class _Run:
    """Everything one run needs between epochs."""

    config: TrainConfig
    device: torch.device
    model: nn.Module
    split: FeatureSplit  # the mode's cut (`frozen_cut`)
    prefixes: tuple[str, ...]
    cached: bool
    fingerprint: str
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    frozen_backbone: nn.Module | None = None  # no cache: the frozen part's outputs every step


def frozen_cut(model: nn.Module, mode: str) -> FeatureSplit:
    """The model cut where `mode` stops training: `backbone` is frozen (all of the feature
    extractor in 'head' mode, everything before the last stage in 'last' mode), `head` learns."""
    return split_last(model) if mode == "last" else split_model(model)


def frozen_key(config: TrainConfig, fingerprint: str, device: torch.device) -> str:
    """The `FeatureCache` folder of the frozen part's outputs in `config.mode`."""
    key = backbone_key(config.model, fingerprint, device, config.bf16)
    return f"prefix-{key}" if config.mode == "last" else key


def frozen_outputs(
    model: nn.Module,
    config: TrainConfig,
    fingerprint: str,
    images: torch.Tensor,
    cache: FeatureCache,
    device: torch.device,
) -> torch.Tensor:
    """Outputs of the frozen part of `model` in `config.mode` ('head' or 'last') for every
    image, through `cache` (float32, on CPU)."""
    cut = frozen_cut(model, config.mode)
    key = frozen_key(config, fingerprint, device)
    return cache.features(
        cut.backbone.to(device), images, key, device, config.batch_size, config.bf16
    )


def trainable_prefixes(model: nn.Module, mode: str) -> tuple[str, ...]:
    """State_dict prefixes of what `mode` trains ('' = everything)."""
    spec = model_info(model).spec
    if mode == "full":
        return ("",)
    if mode == "last":
        return (*(f"{name}." for name in spec.last_stage), spec.head_prefix)
    return (spec.head_prefix,)


def set_train_modes(model: nn.Module, split: FeatureSplit, mode: str) -> None:
    """Trainable parts in train mode with gradients; frozen parts in eval mode without."""
    prefixes = trainable_prefixes(model, mode)
    model.eval()
    split.head.train()
    for name, module in model.named_modules():
        if any(f"{name}.".startswith(p) for p in prefixes):
            module.train()
    for name, param in model.named_parameters():
        param.requires_grad_(any(name.startswith(p) for p in prefixes))


def trainable_state(model: nn.Module, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The state_dict entries (parameters and buffers) under `prefixes`."""
    return {k: v for k, v in model.state_dict().items() if any(k.startswith(p) for p in prefixes)}


def data_sha256(data: TrainData) -> str:
    """Identity of a training set (images, labels, groups): resume refuses other data."""
    digest = hashlib.sha256(data.x.numpy().tobytes())
    digest.update(data.y.numpy().tobytes())
    digest.update("\n".join(data.groups).encode())
    return digest.hexdigest()


def train(
    data: TrainData,
    config: TrainConfig,
    run_dir: Path | None = None,
    resume: bool = False,
    val: TrainData | None = None,
    cache: FeatureCache | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train `config.model` on `data`; checkpoint every epoch under `run_dir` when given.

    With `resume=True` and a checkpoint in `run_dir`, training continues after its last
    completed epoch and ends with the same weights as an uninterrupted run.
    """
    require_both_classes(data)
    device = resolve_device(config.device)
    with determinism(config.deterministic, device):
        run = _setup(config, device)
        inputs = _inputs(run, data, cache)
        val_inputs = _inputs(run, val, cache) if val is not None and len(val) else None
        history, start = [], 0
        ckpt = Path(run_dir) / CHECKPOINT_NAME if run_dir is not None else None
        meta = {"fingerprint": run.fingerprint}
        if ckpt is not None:
            meta["data_sha256"] = data_sha256(data)
        if resume and ckpt is not None and ckpt.is_file():
            history, start = _restore(run, ckpt, meta)
        sampler = balanced_sampler(data.y, run.generator)
        y = data.y.to(device)
        val_y = val.y.to(device) if val_inputs is not None else None
        # Cached head epochs are tiny tensor operations: extra threads only synchronise.
        tiny = run.cached and config.mode == "head" and device.type == "cpu"
        with torch_threads(1 if tiny else None):
            for epoch in range(start, config.epochs):
                record = _epoch_record(run, sampler, inputs, y, val_inputs, val_y, epoch + 1)
                history.append(record)
                if ckpt is not None:
                    _checkpoint(run, ckpt, epoch + 1, history, meta)
                if on_epoch is not None:
                    on_epoch(record)
        prob = _probabilities(run, inputs)
    run.model.eval()
    return TrainResult(run.model.cpu(), config, history, prob, run.fingerprint, data.class_counts())


def _setup(config: TrainConfig, device: torch.device) -> _Run:
    seed_everything(config.seed)
    model = create_model(config.model, weights=config.weights, allow_download=config.allow_download)
    fingerprint = state_fingerprint(model, exclude_prefix=model_info(model).spec.head_prefix)
    model.to(device)
    if config.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    split = frozen_cut(model, config.mode)
    set_train_modes(model, split, config.mode)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        params, lr=config.lr, weight_decay=config.weight_decay, fused=True
    )  # fused: one kernel per step instead of one per tensor and operation
    cached = config.mode in CACHED_MODES and config.cache_features
    return _Run(
        config=config,
        device=device,
        model=model,
        split=split,
        prefixes=trainable_prefixes(model, config.mode),
        cached=cached,
        fingerprint=fingerprint,
        optimizer=optimizer,
        generator=torch.Generator().manual_seed(config.seed),
        # the same folded copy the feature cache computes with, so both give equal features
        frozen_backbone=inference_copy(split.backbone)
        if config.mode in CACHED_MODES and not cached
        else None,
    )


def _inputs(run: _Run, data: TrainData, cache: FeatureCache | None) -> torch.Tensor:
    """Images on the device, or (cached 'head'/'last' mode) the outputs of the frozen part."""
    if not run.cached:
        x = data.x.to(run.device)
        if run.config.channels_last and run.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x
    cache = cache if cache is not None else FeatureCache()
    feats = frozen_outputs(run.model, run.config, run.fingerprint, data.x, cache, run.device)
    return feats.to(run.device)


def _logits(run: _Run, x: torch.Tensor) -> torch.Tensor:
    with autocast(run.device, run.config.bf16):
        if run.cached:
            out = run.split.head(x)
        elif run.frozen_backbone is not None:
            with torch.no_grad():  # standard layout, as the cache stores them
                feats = run.frozen_backbone(channels_last(x)).contiguous()
            out = run.split.head(feats)
        else:
            out = run.split.head(run.split.backbone(x))
    return out.float()


def _epoch_record(
    run: _Run,
    sampler,
    inputs: torch.Tensor,
    y: torch.Tensor,
    val_inputs: torch.Tensor | None,
    val_y: torch.Tensor | None,
    epoch: int,
) -> EpochRecord:
    """One training epoch, then the validation loss/accuracy when validation data is given."""
    t0 = time.perf_counter()
    record = _epoch(run, sampler, inputs, y, epoch)
    if val_inputs is not None:
        val_loss, val_acc = _evaluate(run, val_inputs, val_y)
        record = EpochRecord(**{**record.to_dict(), "val_loss": val_loss, "val_acc": val_acc})
    record = EpochRecord(**{**record.to_dict(), "seconds": time.perf_counter() - t0})
    logger.info(
        "epoch %d/%d: loss %.4f, acc %.3f, drawn per class %s",
        record.epoch, run.config.epochs, record.train_loss, record.train_acc,
        list(record.sampled_counts),
    )  # fmt: skip
    return record


def _epoch(run: _Run, sampler, inputs: torch.Tensor, y: torch.Tensor, epoch: int) -> EpochRecord:
    order = torch.as_tensor(list(sampler), dtype=torch.int64)
    loss_fn = nn.CrossEntropyLoss()
    losses, hits = [], []  # tensors, read once per epoch: no device sync or .item() per step
    for batch in order.split(run.config.batch_size):
        idx = batch.to(run.device)
        target = y[idx]
        batch_x = inputs[idx]
        batch_x = augment_batch(batch_x, run.generator, run.config.flip, run.config.shift_px)
        logits = _logits(run, batch_x)
        loss = loss_fn(logits, target)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        losses.append(loss.detach() * len(batch))
        hits.append((logits.detach().argmax(1) == target).sum())
    counts = torch.bincount(y.cpu()[order], minlength=2).tolist()
    n = len(order)
    total_loss = float(torch.stack(losses).double().sum())
    correct = int(torch.stack(hits).sum())
    return EpochRecord(epoch, total_loss / n, correct / n, None, None, tuple(counts), 0.0)


def _eval_logits(run: _Run, inputs: torch.Tensor) -> torch.Tensor:
    """Logits in eval mode (no dropout), batch by batch; train modes restored afterwards."""
    run.model.eval()
    run.split.head.eval()
    try:
        with torch.no_grad():
            chunks = [_logits(run, x) for x in inputs.split(run.config.batch_size)]
    finally:
        set_train_modes(run.model, run.split, run.config.mode)
    return torch.cat(chunks)


def _evaluate(run: _Run, inputs: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = _eval_logits(run, inputs)
    loss = nn.functional.cross_entropy(logits, y).item()
    return loss, float((logits.argmax(1) == y).float().mean())


def _probabilities(run: _Run, inputs: torch.Tensor) -> np.ndarray:
    return _eval_logits(run, inputs).softmax(1)[:, 1].cpu().numpy()


def _checkpoint(run: _Run, path: Path, epoch: int, history: list[EpochRecord], meta: dict) -> None:
    tensors, plain = rng_state(run.generator)
    save_checkpoint(
        path,
        epoch,
        trainable_state(run.model, run.prefixes),
        run.optimizer.state_dict(),
        tensors,
        {
            **meta,
            "config": run.config.to_dict(),
            "history": [r.to_dict() for r in history],
            "rng": plain,
        },
    )


def _restore(run: _Run, path: Path, meta: dict) -> tuple[list[EpochRecord], int]:
    payload = load_checkpoint(path)
    saved = payload["meta"]
    problems = TrainConfig.from_dict(saved["config"]).differences(run.config)
    if problems:
        raise CheckpointError(
            f"Checkpoint {path} was made with other settings ({', '.join(problems)}); resume "
            "with the same settings or use another output folder."
        )
    for key, what in (("data_sha256", "training data"), ("fingerprint", "backbone weights")):
        if saved.get(key) != meta[key]:
            raise CheckpointError(
                f"Checkpoint {path} was made with other {what}; resume with the same "
                f"{what} or use another output folder."
            )
    try:
        missing = run.model.load_state_dict(payload["trainable"], strict=False).missing_keys
        run.optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"Checkpoint {path} does not fit this model ({exc}).") from exc
    if set(trainable_state(run.model, run.prefixes)) & set(missing):
        raise CheckpointError(f"Checkpoint {path} lacks trainable weights of this model.")
    set_rng_state(run.generator, payload["rng"], saved["rng"])
    logger.info("resumed after epoch %d of %d", payload["epoch"], run.config.epochs)
    return [EpochRecord.from_dict(r) for r in saved["history"]], int(payload["epoch"])


def predict_proba(
    result: TrainResult, x: torch.Tensor | np.ndarray, cache: FeatureCache | None = None
) -> np.ndarray:
    """P(residual) of each image under a trained result's model (eval mode); in cached 'head'
    and 'last' modes through the cache of the frozen part's outputs, keyed as training keyed
    them."""
    cfg, model = result.config, result.model.eval()
    images = torch.as_tensor(x)
    with torch.no_grad():
        if cfg.mode in CACHED_MODES and cfg.cache_features:
            device = resolve_device(cfg.device)
            cache = cache or FeatureCache()
            feats = frozen_outputs(model, cfg, result.backbone_fingerprint, images, cache, device)
            head = frozen_cut(model, cfg.mode).head.cpu().eval()
            logits = torch.cat([head(b) for b in feats.split(cfg.batch_size)])
        else:
            model.cpu()
            logits = torch.cat([model(b) for b in images.split(cfg.batch_size)])
    return logits.softmax(1)[:, 1].numpy()
