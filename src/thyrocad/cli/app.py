"""The Typer application, the one error wrapper of every command, and the global options.

Every command is registered with `@command()` (or `command(sub_app)` for a sub-command), which
turns thyrocad's errors into one line on stderr and a fixed exit code:

- 2: bad usage or a bad setting (`ConfigError`; Typer's own usage errors are 2 as well);
- 1: bad data or a failure at run time (every other `ThyrocadError`).

A user mistake never ends in a traceback. `--log-level` and `--version` come before the
command: `thyrocad --log-level info experiment ...`.

Help pages read as plain usage (`HelpCommand`): `COHORT_DIR` placeholders, no type names,
docstring paragraphs re-flowed. An option renamed for one vocabulary across commands keeps its
old spelling for one release as a hidden option read through `renamed`, which prints a
deprecation line on stderr. Warnings raised by libraries (`warnings.warn`) go to the log, at
info level: the console shows them only with `--log-level info` or `debug`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

import thyrocad
from thyrocad.errors import ConfigError, ThyrocadError
from thyrocad.io.privacy import RedactingFilter, protect_logs, redact

EXIT_SETTING, EXIT_FAILURE = 2, 1
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PRIVATE_UMASK = 0o077


def _plain_help(text: str | None) -> str | None:
    """A docstring for click's plain help page, which re-flows each paragraph to the terminal
    width: 'Example:' paragraphs are kept as written, so the command can be copied whole."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(f"\b\n{p}" if p.startswith("Example:") else p for p in paragraphs)


def _placeholder(param: Any) -> str:
    """COHORT_DIR for an argument `cohort_dir`; INPUTS... for one taking several values."""
    name = param.metavar or (param.name or "").upper()
    return f"{name}..." if param.nargs != 1 and not name.endswith("...") else name


def _set_metavars(params: list[Any]) -> None:
    """Arguments show their placeholder; a flag shows nothing; an option taking a value its
    long name in capitals (`--out OUT`, as argparse does), unless one was chosen on purpose.
    Never a type name (`<str>`, `<bool>`)."""
    for param in params:
        if param.param_type_name == "argument":
            param.metavar = _placeholder(param)
        elif param.metavar is None:
            longest = max(param.opts, key=len)
            param.metavar = "" if param.is_flag else longest.lstrip("-").replace("-", "_").upper()


class HelpCommand(TyperCommand):
    """A command whose help page reads as plain usage (see the module docstring): click's
    plain layout, which re-flows paragraphs and shows every default whole."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rich_markup_mode = None
        self.help = _plain_help(self.help)
        _set_metavars(self.params)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """'[OPTIONS] COHORT_DIR' rather than '[OPTIONS] {cohort_dir}'."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _placeholder(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """Arguments by placeholder and help (no type), then the options."""
        params = [p for p in self.get_params(ctx) if not p.hidden]
        arguments = [
            (_placeholder(p), f"{p.help or ''}{'  [required]' if p.required else ''}")
            for p in params
            if p.param_type_name == "argument"
        ]
        options = [p.get_help_record(ctx) for p in params if p.param_type_name == "option"]
        for title, rows in (("Arguments", arguments), ("Options", [r for r in options if r])):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class HelpGroup(TyperGroup):
    """The root command, in the same plain layout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rich_markup_mode = None
        _set_metavars(self.params)


app = typer.Typer(
    name="thyrocad",
    help="Computer-aided diagnosis of residual thyroid tissue on planar I-131 neck scintigrams.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help pages (HelpCommand, HelpGroup)
    cls=HelpGroup,
)
_chosen_level: list[str] = []  # the --log-level given on this command line, if any


def renamed(old_value: Any, old_flag: str, value: Any, new_flag: str, default: Any) -> Any:
    """The value of an option that may still be given under its old name `old_flag` (a hidden
    option, None when absent): that value, with a deprecation line on stderr."""
    if old_value is None:
        return value
    if value != default:
        raise ConfigError(f"{old_flag} is the old name of {new_flag}; give only {new_flag}")
    warn(f"{old_flag} is deprecated and goes in the next release; use {new_flag}")
    return old_value


def warn(message: str) -> None:
    """Print `warning: message` on stderr (a CLI notice, not a library warning)."""
    Console(stderr=True).print(
        f"[yellow]warning:[/yellow] {message}", soft_wrap=True, highlight=False
    )


def busy(console: Console, text: str) -> contextlib.AbstractContextManager:
    """A spinner with `text` while a block runs, on a terminal only; it leaves no text behind
    (nor does it on a pipe or a log file, where it shows nothing)."""
    return console.status(text) if console.is_terminal else contextlib.nullcontext()


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

        return (target or app).command(name, cls=HelpCommand, **options)(run)

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


class _LibraryWarnings(logging.Filter):
    """Python warnings (`warnings.warn` in NumPy, torch, ...) arrive as WARNING records of the
    'py.warnings' logger; they are library detail, so they count as info: on the console only
    with --log-level info or debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "py.warnings":
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger().getEffectiveLevel() <= logging.INFO


def setup_logging(default: str = "warning") -> None:
    """Log to stderr at the level chosen with --log-level, else at `default` (the long-running
    commands `serve` and `listen` default to info). Python warnings go to the log, and no
    record of another library prints a quoted value (`thyrocad.io.identity`)."""
    level = (_chosen_level or [default])[-1]
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter(LOG_FORMAT))
        handler.addFilter(_LibraryWarnings())
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
