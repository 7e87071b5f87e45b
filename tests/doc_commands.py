"""`thyrocad ...` command lines parsed by the real CLI parser (types, choices, required
arguments, unknown options), without running them; for the docs' command lines and the
reproducing command of an experiment."""

from __future__ import annotations

import shlex
from typing import Any

import typer

from thyrocad.cli.main import app


def parse_command(line: str) -> dict[str, Any]:
    """The parameters the command of `line` would be called with; a usage error (unknown
    command or option, bad value, missing argument) raises click's `UsageError`. With
    `--help` only the command itself must exist."""
    args = shlex.split(line)
    if not args or args[0] != "thyrocad":
        raise ValueError(f"not a thyrocad command line: {line!r}")
    helped = "--help" in args
    args = [a for a in args[1:] if a != "--help"]
    group = typer.main.get_command(app)
    if not args:  # `thyrocad --help`
        return {}
    with group.make_context("thyrocad", args) as ctx:
        if ctx.params.get("version") or not ctx._protected_args:  # `thyrocad --version`
            return dict(ctx.params)
        name, command, rest = group.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        if hasattr(command, "resolve_command"):  # a sub-group: `thyrocad users add ...`
            with command.make_context(name, rest, parent=ctx) as sub:
                name, command, rest = command.resolve_command(
                    sub, [*sub._protected_args, *sub.args]
                )
                ctx = sub
        if helped:
            return {}
        with command.make_context(name, rest, parent=ctx) as leaf:
            return dict(leaf.params)
