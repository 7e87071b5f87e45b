"""The locator benchmark on the independent phantom: a run writes its record where `--json`
says, and leaves the tracked record in benchmarks/results/ alone."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACKED = ROOT / "benchmarks" / "results" / "bench_independent_phantom.json"


def test_a_run_with_json_writes_there_and_leaves_the_tracked_record(tmp_path):
    before = TRACKED.read_bytes()
    out = tmp_path / "seed2.json"
    args = ["--patients", "16", "--residual", "8", "--seed", "2", "--settings", "standard"]
    script = ROOT / "benchmarks" / "bench_independent_phantom.py"
    done = subprocess.run(
        [sys.executable, str(script), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert record["args"]["seed"] == 2 and record["args"]["json"] == str(out)
    assert record["settings"]["standard"]["residual_views"] == 8
    assert "| confidence | residual views |" in done.stdout
    assert TRACKED.read_bytes() == before
