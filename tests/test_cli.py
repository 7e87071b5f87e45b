"""The CLI's uniform error handling and root options: a bad setting (`ConfigError`) exits 2 with
one line "error: ..." on stderr, every other thyrocad error exits 1 with "error: Type: ...",
never a traceback; `--version` and `--log-level` come before the command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import thyrocad
from thyrocad.cli.main import app
from thyrocad.models import list_models

THYROCAD = Path(sys.executable).parent / "thyrocad"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def one_error_line(result) -> str:
    """The single line a failed command printed on stderr (checked: one line, no traceback)."""
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def test_test_fraction_outside_zero_one_is_a_setting_error(server_cohort, tmp_path):
    result = invoke("experiment", str(server_cohort), "--out", str(tmp_path / "x"),
                    "--test-fraction", "25")  # fmt: skip
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "--test-fraction" in line and "25" in line
    assert not (tmp_path / "x").exists()  # refused before any work


def test_default_experiment_on_too_small_a_cohort_is_a_setting_error(server_cohort, tmp_path):
    """6 patients, 3 per class: a test fraction of 0.25 leaves no test patient of a class."""
    result = invoke("experiment", str(server_cohort), "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "would hold only 0 non-residual, 0 residual patient(s) (fewer than 5" in line
    assert "--test-fraction" in line and "--allow-small" in line  # says what to change
    result = invoke("experiment", str(server_cohort), "--out", str(tmp_path / "x"), "--allow-small")
    assert result.exit_code == 2
    assert "3 patient(s): too few for a test fraction of 0.25" in one_error_line(result)


def test_unknown_model_is_a_setting_error_naming_the_known_ones(tmp_path):
    result = invoke("experiment", str(tmp_path), "--out", str(tmp_path / "x"), "--models", "vgg16")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "vgg16" in line
    assert all(name in line for name in list_models())


def test_missing_bundle_in_predict_is_a_failure_not_a_setting(tmp_path):
    scan = tmp_path / "scan.dcm"
    scan.write_bytes(b"not read: the bundle is checked first")
    result = invoke("predict", str(tmp_path / "no-bundle"), str(scan))
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith("error: BundleError: ") and "no-bundle" in line


def test_version_option_prints_the_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"thyrocad {thyrocad.__version__}"


def test_bad_log_level_is_a_setting_error():
    result = invoke("--log-level", "bogus", "version")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "--log-level" in line and "bogus" in line and "debug" in line
    assert result.stdout == ""  # the command did not run


@pytest.mark.slow
def test_installed_script_exit_codes_and_log_level(tmp_path):
    """The console script itself: the same codes, and --log-level is accepted before a command."""

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(THYROCAD), *args], capture_output=True, text=True, timeout=120)

    assert run("--version").stdout.strip() == f"thyrocad {thyrocad.__version__}"
    bad = run("--log-level", "bogus", "version")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --log-level")
    ok = run("--log-level", "debug", "--version")
    assert ok.returncode == 0
    missing = run("--log-level", "error", "predict", str(tmp_path / "none"), str(tmp_path))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]
    assert missing.stderr.startswith("error: BundleError: ")
