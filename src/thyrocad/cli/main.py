"""Entry point of the `thyrocad` command: imports every command module so it registers."""

# Each module registers its commands on `app` with @app.command().
from thyrocad.cli import (  # noqa: F401
    ablate_cmd,
    cohort_cmd,
    demo_cmd,
    evaluate_cmd,
    experiment_cmd,
    export_cmd,
    inspect_cmd,
    listen_cmd,
    phantom_cmd,
    predict_cmd,
    preprocess_cmd,
    serve_cmd,
    train_cmd,
    version_cmd,
)
from thyrocad.cli.app import app

__all__ = ["app"]
