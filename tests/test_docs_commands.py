"""Every `thyrocad ...` command line in README.md and docs/ against the real CLI parser.

- A command line in a code block (fenced, or indented by four spaces; `\\` continues a line)
  must parse: known command, known options, values of the right type, required arguments.
- A synopsis (a line with `[optional]` parts) must name only options its command has.
- An inline code span `thyrocad CMD ...` in prose names a real command and only options it
  has (prose quotes options without the required arguments: `thyrocad train --init scratch`).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from doc_commands import parse_command
from thyrocad.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_ENV = re.compile(r"^(?:\$ )?(?:[A-Z_]+=\S+ )*")  # a prompt, then VAR=value prefixes
_SPAN = re.compile(r"`(thyrocad [^`]*)`")


def _code_lines(text: str) -> list[str]:
    """Lines of fenced and indented code blocks, continuations joined."""
    lines, fenced, joined = [], False, ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not (fenced or raw.startswith("    ")):
            continue
        joined += raw.strip()
        if joined.endswith("\\"):
            joined = joined[:-1] + " "
            continue
        lines.append(joined)
        joined = ""
    return lines


def _commands() -> list[tuple[str, str]]:
    """(document name, command line) of every command line in code blocks."""
    found = []
    for doc in DOCS:
        for line in _code_lines(doc.read_text(encoding="utf-8")):
            line = _ENV.sub("", line)
            if line.startswith("thyrocad "):
                found.append((doc.name, line.split(" # ")[0].strip()))
    return found


def _spans() -> list[tuple[str, str]]:
    return [
        (doc.name, span) for doc in DOCS for span in _SPAN.findall(doc.read_text(encoding="utf-8"))
    ]


def _command_names() -> set[str]:
    group = typer.main.get_command(app)
    return set(group.commands)


def _options_of(words: list[str]) -> set[str]:
    """Every option string of the command that `words` (after 'thyrocad') name."""
    group = typer.main.get_command(app)
    command = group.commands[words[0]]
    if hasattr(command, "commands") and len(words) > 1:  # a sub-group: `thyrocad users add`
        command = command.commands[words[1]]  # (alone, `thyrocad users`: the group's options)
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


COMMANDS = _commands()


def test_the_docs_have_command_lines_to_check():
    assert len(COMMANDS) >= 20
    assert "own-data.md" in {doc for doc, _ in COMMANDS}


def _unknown_options(words: list[str]) -> set[str]:
    """Options among `words` (after 'thyrocad') that their command does not have."""
    named = {w.split("=")[0] for w in words if w.startswith("-")}
    return named - _options_of(words)


@pytest.mark.parametrize(("doc", "line"), COMMANDS, ids=[f"{d}: {c[:60]}" for d, c in COMMANDS])
def test_command_line_in_a_code_block_parses(doc, line):
    if "[" in line:  # a synopsis: its options must exist
        words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))[1:]
        assert not _unknown_options(words), f"{doc}: {line}: unknown {_unknown_options(words)}"
        return
    parse_command(line)  # raises on an unknown command/option, a bad value, a missing argument


@pytest.mark.parametrize(("doc", "span"), _spans(), ids=[f"{d}: {s[:60]}" for d, s in _spans()])
def test_inline_command_names_a_real_command_and_its_options(doc, span):
    words = span.split()[1:]
    if words[0].startswith("-"):  # root options: `thyrocad --help`
        parse_command(span)
        return
    if words[0] not in _command_names():
        return  # text that happens to start with the word thyrocad ("thyrocad <model>")
    assert not _unknown_options(words), f"{doc}: {span}: unknown {_unknown_options(words)}"
