"""ONNX export of a bundle's model and onnxruntime inference.

The exported graph is the whole classifier followed by a softmax: input `input`
(N x 3 x H x W float32, the preprocessed network input, batch dimension dynamic), output
`probabilities` (N x 2; column 1 is residual). It is written with `torch.onnx.export`'s
torch.export-based exporter. The file's metadata (`metadata_props`) names the model, the
bundle's weights sha256, the input size and normalisation and the thyrocad version, so that
`OnnxRunner` can refuse a file made from other weights.

What is exported is the bundle's inference copy (`thyrocad.models.inference_copy`: BatchNorm
folded, the input convolution reading one grey channel, `fold_grey_input`); the input stays
N x 3 x H x W, so a file made by an older thyrocad still runs. `cached_runner` keeps one
parity-checked export per bundle in `$THYROCAD_HOME/cache/onnx/`, keyed by the weights' hash,
the input settings and the exporting code: `predict`, the web app and the node use it by
default (`thyrocad.diagnosis.predictor`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

import thyrocad
from thyrocad.bundle.format import BundleInfo
from thyrocad.cache import default_directory, make_key, source_digest
from thyrocad.data.phantom import PhantomConfig, simulate_patient
from thyrocad.errors import ExportError
from thyrocad.files import atomic_writer
from thyrocad.models import class_probabilities, grey_inference_copy, inference_copy, model_info
from thyrocad.preprocess import Pipeline

logger = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
OPSET = 18
MAX_BATCH = 1024
ONNX_FILE = "model.onnx"  # where `thyrocad export MODEL_DIR --onnx MODEL_DIR/model.onnx` puts it
PARITY_TOLERANCE = 1e-4  # max abs difference of probabilities, ONNX vs PyTorch


class _WithSoftmax(nn.Module):
    """The classifier followed by a softmax over the class logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def export_onnx(model: nn.Module, path: str | Path, info: BundleInfo, fold: bool = True) -> Path:
    """Export `model`'s inference copy (`grey_inference_copy`; with `fold=False` the input
    convolution keeps its three channels) with a softmax to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = model_info(model).spec
    rows, cols = info.pipeline.output.size
    dummy = torch.zeros(2, 3, rows, cols)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    out = info.pipeline.output
    fast = (
        grey_inference_copy(model, out.mean, out.std, out.size) if fold else inference_copy(model)
    )
    wrapped = _WithSoftmax(fast).eval()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
            program = torch.onnx.export(
                wrapped,
                (dummy,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                opset_version=OPSET,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; all mean "cannot export"
        raise ExportError(
            f"{spec.name} cannot be exported to ONNX: {type(exc).__name__}: {exc}"
        ) from exc
    proto = program.model_proto
    metadata = {
        "thyrocad_version": thyrocad.__version__,
        "model_name": spec.name,
        "weights_sha256": info.weights_sha256,
        "input_size": f"{rows}x{cols}",
        "mean": ",".join(f"{v:g}" for v in info.pipeline.output.mean),
        "std": ",".join(f"{v:g}" for v in info.pipeline.output.std),
        "classes": "non_residual,residual",
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_writer(path) as fh:
        fh.write(proto.SerializeToString())
    logger.info("exported %s to ONNX (%s)", spec.name, path)
    return path


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The `metadata_props` of an ONNX file (without loading its weights)."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError...
        raise ExportError(f"{path} is not a readable ONNX file: {exc}") from exc
    return {entry.key: entry.value for entry in proto.metadata_props}


class OnnxRunner:
    """An onnxruntime CPU session over an exported file; checks it matches the expected weights."""

    def __init__(
        self, path: str | Path, expected_sha256: str | None = None, threads: int | None = None
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise ExportError(f"{path} does not exist; export it with `thyrocad export`")
        meta = onnx_metadata(path)
        if expected_sha256 is not None and meta.get("weights_sha256") != expected_sha256:
            raise ExportError(
                f"{path} was exported from other weights (sha256 {meta.get('weights_sha256')!r}, "
                f"the bundle has {expected_sha256!r}); export it again from this bundle"
            )
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's own exception types
            raise ExportError(f"onnxruntime cannot load {path}: {exc}") from exc
        self.path = path
        self.metadata = meta

    def probabilities(self, network_inputs: np.ndarray) -> np.ndarray:
        """Class probabilities (N x 2, float64) of a batch of network inputs."""
        x = np.ascontiguousarray(network_inputs, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0].astype(np.float64)


def bundle_runner(
    model: nn.Module, info: BundleInfo, onnx_path: str | Path | None, threads: int | None
) -> OnnxRunner:
    """An onnxruntime session for a bundle: the given file, the bundle's `model.onnx` (made by
    `thyrocad export`), else the cached export (`cached_runner`)."""
    path = Path(onnx_path) if onnx_path is not None else info.path / ONNX_FILE
    if onnx_path is None and not path.is_file():
        return cached_runner(model, info, threads)
    return OnnxRunner(path, expected_sha256=info.weights_sha256, threads=threads)


def cached_runner(model: nn.Module, info: BundleInfo, threads: int | None) -> OnnxRunner:
    """An onnxruntime session over the cached export of this bundle, made now (with its
    parity check against `model` on phantom views) when there is none for these weights,
    input settings and exporting code. `ExportError` when the export fails or disagrees."""
    path = cache_path(info)
    if path.is_file():
        try:
            return OnnxRunner(path, expected_sha256=info.weights_sha256, threads=threads)
        except ExportError as exc:  # a damaged entry: made again
            logger.warning("cached ONNX export unusable, exporting again: %s", exc)
    _export_checked(model, info, path)
    return OnnxRunner(path, expected_sha256=info.weights_sha256, threads=threads)


def cache_path(info: BundleInfo) -> Path:
    """Where `cached_runner` keeps the export of a bundle."""
    out = info.pipeline.output
    code = source_digest(sys.modules[__name__], sys.modules[grey_inference_copy.__module__])
    key = make_key(
        "onnx", info.model_name, info.weights_sha256, list(out.size), list(out.mean),
        list(out.std), OPSET, torch.__version__, code,
    )  # fmt: skip
    return default_directory("onnx") / f"{key}.onnx"


def _export_checked(model: nn.Module, info: BundleInfo, path: Path) -> None:
    """Export into a temporary file beside `path`, check parity, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.onnx")
    try:
        logger.info("exporting %s to ONNX (once per bundle): %s", info.model_name, path)
        export_onnx(model, tmp, info)
        diff = parity(model, OnnxRunner(tmp), phantom_inputs(Pipeline(info.pipeline)))
        if diff > PARITY_TOLERANCE:
            raise ExportError(
                f"the ONNX export of {info.model_name} differs from PyTorch by {diff:.1e} on "
                f"phantom views (tolerance {PARITY_TOLERANCE:g})"
            )
        os.replace(tmp, path)
        logger.info("ONNX parity on phantom views: max |p_onnx - p_torch| = %.1e", diff)
    finally:
        tmp.unlink(missing_ok=True)


def parity(model: nn.Module, runner: OnnxRunner, network_inputs: np.ndarray) -> float:
    """Max abs difference of class probabilities between PyTorch and onnxruntime."""
    reference = class_probabilities(model, network_inputs)
    return float(np.abs(runner.probabilities(network_inputs) - reference).max())


def phantom_inputs(pipeline: Pipeline, n_patients: int = 2, seed: int = 0) -> np.ndarray:
    """Network inputs (both views) of `n_patients` simulated phantom patients, half residual."""
    cfg = PhantomConfig(n_patients=max(n_patients, 2), n_residual=1, seed=seed)
    inputs = []
    for i in range(n_patients):
        sim = simulate_patient(cfg, i, residual=i % 2 == 0)
        for counts in sim.counts.values():
            result = pipeline.run(counts.astype(np.float32), (cfg.pixel_mm, cfg.pixel_mm))
            inputs.append(result.network_input)
    return np.stack(inputs)
