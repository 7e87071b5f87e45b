"""docs/own-data.md, followed exactly: its worked example (the one bash block) is run as
written, with the real `thyrocad` console script, from a folder of PNG exports plus a
labels.csv to two results sets of a real experiment (EfficientNet-Lite0 in head mode and the
uptake-ratio observer)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import thyrocad

DOC = Path(__file__).resolve().parents[1] / "docs" / "own-data.md"


def worked_example() -> str:
    """The bash block under '## Worked example'."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Worked example") :]
    return re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.slow
def test_the_worked_example_runs_as_written(tmp_path):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(Path(thyrocad.__file__).parents[1]),  # this checkout's thyrocad
        "THYROCAD_HOME": str(tmp_path / "home"),
        "COLUMNS": "80",
    }
    run = subprocess.run(["bash", "-e", "-c", worked_example()], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "PH0001_anterior.png  anterior  256x256  spacing none" in out
    assert "not counts" in out
    assert "file name before the view token: 48" in out  # 48 files, 24 patients, none alone
    assert "not grouped" not in out
    assert out.count("carry no pixel spacing") == 2  # once per cohort-check, not per file
    assert (tmp_path / "exports-preprocessing" / "index.html").is_file()

    results = tmp_path / "results"
    sets = sorted(p for p in results.iterdir() if re.fullmatch(r"[0-9a-f]{16}", p.name))
    assert len(sets) == 2  # the second settings did not overwrite the first
    seeds = set()
    for folder in sets:
        for name in ("report.html", "table.md", "table.csv", "predictions.csv", "stats.json"):
            assert (folder / name).is_file(), f"{folder.name}/{name}"
        assert "ImageNet (package)" in (folder / "table.md").read_text()
        settings = json.loads((results / "runs" / folder.name / "settings.json").read_text())
        seeds.add(settings["experiment"]["seed"])
    assert seeds == {0, 1}
    latest = (results / "latest").resolve()
    assert (
        json.loads((results / "runs" / latest.name / "settings.json").read_text())["experiment"][
            "seed"
        ]
        == 1
    )
    index = (results / "index.html").read_text()
    assert all(f'href="{folder.name}/report.html"' in index for folder in sets)
