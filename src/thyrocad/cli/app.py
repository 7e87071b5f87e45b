"""The Typer application, the one error wrapper of every command, and the global options.

Every command is registered with `@command()` (or `command(sub_app)` for a sub-command), which
turns thyrocad's errors into one line on stderr and a fixed exit code:

- 2: bad usage or a bad setting (`ConfigError`; Typer's own usage errors are 2 as well);
- 1: bad data or a failure at run time (every other `ThyrocadError`).

A user mistake never ends in a traceback. `--log-level` and `--version` come before the
command: `thyrocad --log-level info experiment ...`.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

import thyrocad
from thyrocad.errors import ConfigError, ThyrocadError
from thyrocad.io.privacy import RedactingFilter, protect_logs, redact

EXIT_SETTING, EXIT_FAILURE = 2, 1
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PRIVATE_UMASK = 0o077

app = typer.Typer(
    name="thyrocad",
    help="Computer-aided diagnosis of residual thyroid tissue on planar I-131 neck scintigrams.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
_chosen_level: list[str] = []  # the --log-level given on this command line, if any


def fail(message: str, code: int) -> typer.Exit:
    """Print `error: message` on stderr; the `typer.Exit` to raise with `code`."""
    Console(stderr=True).print(f"[red]error:[/red] {message}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def command(
    target: typer.Typer | None = None, name: str | None = None, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command on `target` (default: the root app) with the uniform error handling."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except ConfigError as exc:
                raise fail(str(exc), EXIT_SETTING) from None
            except ThyrocadError as exc:
                raise fail(f"{type(exc).__name__}: {exc}", EXIT_FAILURE) from None

        return (target or app).command(name, **options)(run)

    return register


class _Formatter(logging.Formatter):
    """Tracebacks of other libraries' records only at debug level: pydicom, for one, logs each
    failed decoder attempt with its traceback, and thyrocad reports that failure in one line.
    Quoted values in tracebacks are withheld (exception messages may quote header values)."""

    def formatException(self, ei) -> str:
        return redact(super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        ours = record.name == "thyrocad" or record.name.startswith("thyrocad.")
        if ours or logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
            return super().format(record)
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def private_files() -> None:
    """From now on this process creates files 0600 and folders 0700 (umask 0077): for the
    commands that write patient data or credentials (`serve`, `listen`, `users`)."""
    os.umask(PRIVATE_UMASK)


def setup_logging(default: str = "warning") -> None:
    """Log to stderr at the level chosen with --log-level, else at `default` (the long-running
    commands `serve` and `listen` default to info). Python warnings go through logging too,
    and no record of another library prints a quoted value (`thyrocad.io.identity`)."""
    level = (_chosen_level or [default])[-1]
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter(LOG_FORMAT))
        # Uvicorn's access lines quote the request line (`serve` strips its query string).
        handler.addFilter(RedactingFilter(exempt=("uvicorn.access",)))
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    protect_logs()


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"thyrocad {thyrocad.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="Log detail on stderr: debug, info, warning (default; info for serve and "
            "listen) or error.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version."),
    ] = False,
) -> None:
    """Computer-aided diagnosis of residual thyroid tissue on planar I-131 neck scintigrams."""
    _chosen_level.clear()  # one command line per invocation (CliRunner runs several in-process)
    if log_level is not None:
        if log_level.lower() not in LOG_LEVELS:
            raise fail(
                f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}",
                EXIT_SETTING,
            )
        _chosen_level.append(log_level.lower())
    setup_logging()
