"""ONNX export of a bundle's model and onnxruntime inference.

The exported graph is the whole classifier followed by a softmax: input `input`
(N x 3 x H x W float32, the preprocessed network input, batch dimension dynamic), output
`probabilities` (N x 2; column 1 is residual). It is written with `torch.onnx.export`'s
torch.export-based exporter. The file's metadata (`metadata_props`) names the model, the
bundle's weights sha256, the input size and normalisation and the thyrocad version, so that
`OnnxRunner` can refuse a file made from other weights.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

import thyrocad
from thyrocad.bundle.format import BundleInfo
from thyrocad.data.phantom import PhantomConfig, simulate_patient
from thyrocad.errors import ExportError
from thyrocad.files import atomic_writer
from thyrocad.models import class_probabilities, model_info
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


def export_onnx(model: nn.Module, path: str | Path, info: BundleInfo) -> Path:
    """Export `model` (eval mode) with a softmax to `path`; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = model_info(model).spec
    rows, cols = info.pipeline.output.size
    dummy = torch.zeros(2, 3, rows, cols)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    wrapped = _WithSoftmax(model.eval()).eval()
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
    """An onnxruntime session for a bundle: the given file, the bundle's `model.onnx`, or a
    fresh export into a temporary folder (removed at exit)."""
    path = Path(onnx_path) if onnx_path is not None else info.path / ONNX_FILE
    if onnx_path is None and not path.is_file():
        folder = tempfile.mkdtemp(prefix="thyrocad-onnx-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = Path(folder) / ONNX_FILE
        logger.info("bundle has no %s: exporting one to %s", ONNX_FILE, path)
        export_onnx(model, path, info)
    return OnnxRunner(path, expected_sha256=info.weights_sha256, threads=threads)


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
