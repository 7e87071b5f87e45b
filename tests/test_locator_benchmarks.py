"""The locator benchmarks on the independent phantom and on tilts: a run writes its record
where `--json` says, and leaves the tracked record in benchmarks/results/ alone."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _run(script: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    """The benchmark script with `args` and `--json out`; the tracked record must not change."""
    tracked = RESULTS / f"{Path(script).stem}.json"
    before = tracked.read_bytes()
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert tracked.read_bytes() == before
    return done


def test_a_run_with_json_writes_there_and_leaves_the_tracked_record(tmp_path):
    out = tmp_path / "seed2.json"
    args = ["--patients", "16", "--residual", "8", "--seed", "2", "--settings", "standard"]
    done = _run("bench_independent_phantom.py", out, *args)
    record = json.loads(out.read_text())
    assert record["args"]["seed"] == 2 and record["args"]["json"] == str(out)
    assert record["settings"]["standard"]["residual_views"] == 8
    assert "| confidence | residual views |" in done.stdout


def test_the_tilt_benchmark_compares_both_fits_on_both_phantoms(tmp_path):
    out = tmp_path / "tilt.json"
    done = _run("bench_tilt.py", out, "--patients", "6", "--seed", "2", "--workers", "1")
    rows = json.loads(out.read_text())["rows"]
    assert {"ours: default", "independent: tilted"} <= set(rows)
    for row in rows.values():
        assert set(row) == {"whole body (locator)", "neck fit"}
        assert all(fit["all"]["n"] == 6 and fit["all"]["median"] >= 0 for fit in row.values())
    assert "| independent: tilted | neck fit |" in done.stdout
