"""Markdown tables on a terminal of any width: a table too wide for the console is printed as
several tables that repeat its first column, so that no cell (a model name, a p-value) is ever
cut off; prose cells wrap. Text between tables is printed as it is."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

_PADDING = 3  # a column's border and padding, in characters
_WRAP = 32  # a cell longer than this is prose: it may wrap at spaces instead of splitting


def print_markdown(console: Console, text: str) -> None:
    """Print markdown text whose tables are pipe tables (`| a | b |` rows, `|---|` rule)."""
    block: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):  # not the rule under the header
                block.append(cells)
            continue
        if block:
            for table in _fitting_tables(block, console.width):
                console.print(table)
            block = []
        if line.strip():
            console.print(line, soft_wrap=False, highlight=False, markup=False)


def _width(column: list[str]) -> int:
    """The width a column needs: its longest cell, but prose (longer than `_WRAP`) wraps."""
    longest = max(len(cell) for cell in column)
    return max(len(column[0]), min(longest, _WRAP)) + _PADDING


def _fitting_tables(rows: list[list[str]], width: int) -> list[Table]:
    """The table of `rows` (the first is the header), split into column groups that each fit
    `width`, every group led by the first column."""
    header, body = rows[0], rows[1:]
    widths = [_width([r[i] if i < len(r) else "" for r in rows]) for i in range(len(header))]
    groups: list[list[int]] = [[]]
    used = widths[0] + 1
    for i in range(1, len(header)):
        if groups[-1] and used + widths[i] > width:
            groups.append([])
            used = widths[0] + 1
        groups[-1].append(i)
        used += widths[i]
    tables = []
    for group in groups:
        table = Table(show_lines=False)
        for i in (0, *group):
            table.add_column(header[i], overflow="fold")
        for row in body:
            table.add_row(*(row[i] if i < len(row) else "" for i in (0, *group)))
        tables.append(table)
    return tables
