"""Entry point of the `thyrocad` command: imports every command module so it registers."""

# Each module registers its commands on `app` with @app.command().
from thyrocad.cli import (  # noqa: F401
    version_cmd,
)
from thyrocad.cli.app import app

__all__ = ["app"]
