"""`thyrocad listen`: a DICOM node that diagnoses studies pushed to it and sends results back.

The process umask is 0077: received studies and results are patient data (files 0600,
folders 0700)."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thyrocad.cli.app import command, private_files, setup_logging


@command()
def listen(
    model_dir: Annotated[Path, typer.Argument(help="Model bundle folder (thyrocad train).")],
    pacs: Annotated[
        str | None, typer.Option("--pacs", help="Where results go: HOST:PORT:AET of the PACS.")
    ] = None,
    stow: Annotated[
        str | None,
        typer.Option(
            "--stow",
            help="Also/instead send results by STOW-RS to this DICOMweb '.../studies' URL "
            "(credentials from $THYROCAD_STOW_USER / $THYROCAD_STOW_PASSWORD).",
        ),
    ] = None,
    aet: Annotated[str, typer.Option("--aet", help="This node's AE title.")] = "THYROCAD",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 11112,
    host: Annotated[
        str, typer.Option(help="Address to bind (0.0.0.0 to accept from the network).")
    ] = "127.0.0.1",
    allow: Annotated[
        str | None,
        typer.Option("--allow", help="Comma-separated calling AE titles allowed to send."),
    ] = None,
    quiet_s: Annotated[
        float, typer.Option("--quiet-s", min=0.5, help="Seconds without new images = complete.")
    ] = 5.0,
    work_dir: Annotated[
        Path | None, typer.Option("--work-dir", help="Where received files and results go.")
    ] = None,
    retry_s: Annotated[
        float,
        typer.Option(
            "--retry-s", min=1.0, help="First wait before re-sending refused results (doubles)."
        ),
    ] = 30.0,
) -> None:
    """Run a DICOM node that diagnoses received studies and sends results to the PACS.

    Receive NM studies by C-STORE, diagnose each once it is complete (no new image for
    --quiet-s seconds), and send a DICOM Structured Report and one Secondary Capture per view
    into the same study: by C-STORE to --pacs and/or by STOW-RS to --stow. Results a
    destination refuses are re-sent with back-off (--retry-s, doubling up to an hour), also
    after a restart; <work-dir>/status.json shows what is pending. Ctrl-C stops it.

    Example: thyrocad listen models/resnet18 --pacs pacs:104:PACS --allow PACS --port 11112
    """
    from thyrocad.diagnosis.service import DiagnosisService
    from thyrocad.errors import ConfigError
    from thyrocad.node.scp import CadNode, analyse_received
    from thyrocad.node.send import PacsTarget, StowTarget

    console = Console(stderr=True)
    if pacs is None and stow is None:
        raise ConfigError("give --pacs HOST:PORT:AET and/or --stow URL")
    private_files()
    setup_logging(default="info")
    target = PacsTarget.parse(pacs) if pacs else None
    stow_target = (
        StowTarget(stow, os.environ.get("THYROCAD_STOW_USER"),
                   os.environ.get("THYROCAD_STOW_PASSWORD"))
        if stow else None
    )  # fmt: skip
    service = DiagnosisService.from_bundle(model_dir)
    root = work_dir or Path(tempfile.mkdtemp(prefix="thyrocad-listen-"))
    node = CadNode(
        aet=aet,
        port=port,
        host=host,
        work_dir=root,
        on_study=lambda folder: analyse_received(service, folder, root / "results"),
        pacs=target,
        stow=stow_target,
        allow=[a.strip() for a in allow.split(",") if a.strip()] if allow else None,
        quiet_s=quiet_s,
        retry_s=retry_s,
    )
    node.start()
    destinations = [f"{target.aet} at {target.host}:{target.port}"] if target else []
    destinations += [f"STOW-RS {stow}"] if stow else []
    console.print(
        f"{aet} listening on {host}:{port}; results go to {' and '.join(destinations)}; "
        f"work folder {root}"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        node.stop()
