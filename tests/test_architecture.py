"""The package's shape, checked: layers import downward only, no import cycles, small modules,
function-level imports only where they buy start-up time (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "thyrocad"
MAX_LINES = 500
LONG_MODULE_REASON = "Longer than 500 lines because"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def library_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_layers_contract_and_no_cycles_hold():
    """`lint-imports` with the contracts in pyproject.toml: the layers contract (each layer
    imports only from the layers below it) and acyclic siblings at every package level."""
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


def test_the_layers_contract_names_every_top_level_part_of_the_package():
    """A new package or module must be placed in a layer, or the contract would not see it."""
    text = (ROOT / "pyproject.toml").read_text()
    block = text.split("layers = [", 1)[1].split("]", 1)[0]
    named = {name.strip() for line in block.splitlines() for name in line.strip(' ",').split(":")}
    named = {n.strip() for part in named for n in part.split("|")} - {""}
    parts = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    parts |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert parts == named


def test_no_module_is_long_without_a_stated_reason():
    long = []
    for path in library_modules():
        n = len(path.read_text().splitlines())
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if n > MAX_LINES and LONG_MODULE_REASON not in docstring:
            long.append(f"{path.relative_to(ROOT)}: {n} lines")
    assert not long


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, source line) of every import statement inside a function of `path`."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    found.append(inner.lineno)
    lines = path.read_text().splitlines()
    return [(n, lines[n - 1]) for n in sorted(set(found))]


@pytest.mark.parametrize(
    "path",
    [p for p in library_modules() if "cli" not in p.relative_to(PACKAGE).parts],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_library_imports_inside_functions_say_why(path):
    """Outside the CLI (whose commands import their work lazily so that `thyrocad --help`
    stays fast), an import inside a function is allowed only for a heavy optional library,
    with a comment on its line or the line before."""
    lines = path.read_text().splitlines()
    silent = [
        f"{path.name}:{n}: {text.strip()}"
        for n, text in _function_level_imports(path)
        if "#" not in text and not lines[n - 2].strip().startswith("#") and "#" not in lines[n - 2]
    ]
    assert not silent
