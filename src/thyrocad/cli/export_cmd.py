"""`thyrocad export`: write a bundle's model as ONNX and check it against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thyrocad.cli.app import busy, command


@command()
def export(
    model_dir: Annotated[Path, typer.Argument(help="Model bundle folder (from training).")],
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.")],
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check",
            help="Compare onnxruntime with PyTorch on simulated phantom views.",
        ),
    ] = True,
) -> None:
    """Export a model bundle to ONNX and check it against PyTorch.

    Export the bundle's classifier (with softmax) to ONNX: input `input` (N x 3 x H x W, the
    preprocessed network input, batch dynamic), output `probabilities` (N x 2, column 1 =
    residual). Put it at MODEL_DIR/model.onnx for `thyrocad predict --onnx` to find it. With
    --check (default) the exit code is 1 when probabilities differ by more than 1e-4.

    Example: thyrocad export runs/bundle --onnx runs/bundle/model.onnx
    """
    from thyrocad.bundle.format import load_bundle
    from thyrocad.bundle.onnx import (
        PARITY_TOLERANCE,
        OnnxRunner,
        export_onnx,
        parity,
        phantom_inputs,
    )
    from thyrocad.preprocess import Pipeline

    console = Console()
    model, info = load_bundle(model_dir)
    with busy(console, f"exporting {info.model_name} to ONNX"):
        path = export_onnx(model, onnx, info)
    console.print(f"wrote {path}", markup=False, highlight=False)
    if not check:
        return
    runner = OnnxRunner(path, expected_sha256=info.weights_sha256)
    with busy(console, "checking onnxruntime against PyTorch"):
        diff = parity(model, runner, phantom_inputs(Pipeline(info.pipeline)))
    ok = diff <= PARITY_TOLERANCE
    console.print(
        f"parity on 4 phantom views: max |p_onnx - p_torch| = {diff:.2e} "
        f"({'ok' if ok else 'FAILED'}, tolerance {PARITY_TOLERANCE:g})"
    )
    if not ok:
        raise typer.Exit(code=1)
