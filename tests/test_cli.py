"""The CLI's uniform error handling and root options: a bad setting (`ConfigError`) exits 2 with
one line "error: ..." on stderr, every other thyrocad error exits 1 with "error: Type: ...",
never a traceback; `--version` and `--log-level` come before the command."""

from __future__ import annotations

import os
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


def test_a_miscased_model_name_is_reported_first_with_a_suggestion(tmp_path):
    args = ["--models", "ResNet18,squeezenet1_1", "--reference", "ResNet18"]
    result = invoke("experiment", str(tmp_path), "--out", str(tmp_path / "x"), *args)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "unknown model(s) ResNet18 (did you mean resnet18?); known: " in line
    assert line.index("unknown model") < line.index("known: ")


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

    ok = run("--log-level", "debug", "--version")  # each launch costs seconds: one for both
    assert ok.returncode == 0 and ok.stdout.strip() == f"thyrocad {thyrocad.__version__}"
    bad = run("--log-level", "bogus", "version")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --log-level")
    missing = run("--log-level", "error", "predict", str(tmp_path / "none"), str(tmp_path))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]
    assert missing.stderr.startswith("error: BundleError: ")


# --- help pages, tables and the console --------------------------------------------------------


def _command_paths() -> list[list[str]]:
    import typer

    group = typer.main.get_command(app)
    paths = []
    for name, command in group.commands.items():
        subs = getattr(command, "commands", None)
        paths += [[name, sub] for sub in subs] if subs else [[name]]
    return paths


def _groups() -> list[list[str]]:
    import typer

    group = typer.main.get_command(app)
    return [[], *([name] for name, c in group.commands.items() if hasattr(c, "commands"))]


@pytest.mark.parametrize("path", _groups(), ids=lambda p: " ".join(["thyrocad", *p]))
def test_group_help_is_plain(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: {' '.join(['thyrocad', *path])} [OPTIONS] COMMAND")
    assert "<bool>" not in result.output and "╭" not in result.output


@pytest.mark.parametrize("path", _command_paths(), ids=" ".join)
def test_help_is_plain_at_80_columns(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.output
    for noise in ("<str>", "<bool>", "<int>", "<float>", "<path>", "{", "…"):
        assert noise not in text, f"{' '.join(path)} --help shows {noise!r}"
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: thyrocad {' '.join(path)} [OPTIONS]")
    assert usage.split("[OPTIONS]")[1] == usage.split("[OPTIONS]")[1].upper()  # placeholders


def test_experiment_help_shows_the_whole_models_default():
    from thyrocad.experiment.config import DEFAULT_MODELS

    result = CliRunner().invoke(app, ["experiment", "--help"], env={"COLUMNS": "80"})
    assert "Usage: thyrocad experiment [OPTIONS] COHORT_DIR" in result.output
    flat = " ".join(result.output.split())
    assert f"[default: {', '.join(DEFAULT_MODELS)}]" in flat
    assert "--weights MODEL=FILE" in result.output
    assert "--preprocess" not in result.output  # the old spelling works but is not advertised
    assert "Example: thyrocad experiment data/cohort --out results" in result.output


def test_wide_tables_are_split_to_fit_80_columns_without_cutting_a_cell():
    from rich.console import Console

    from thyrocad.cli.tables import print_markdown

    models = ["resnet18", "squeezenet1_1", "shufflenet_v2_x1_0", "efficientnet_lite0"]
    header = ["metric", *models, "uptake_ratio", *(f"p ({m} vs resnet18)" for m in models[1:])]
    rows = [[metric, *["85.12 (3.45)"] * 5, *["<0.001"] * 3] for metric in ("ACC %", "AUC")]
    text = "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(r) + " |" for r in rows]
        + ["", "Mean (SD) over splits."]
    )
    console = Console(width=80, record=True)
    print_markdown(console, text)
    out = console.export_text()
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "…" not in out
    for cell in [*header, "85.12 (3.45)", "<0.001", "Mean (SD) over splits."]:
        assert cell in out, cell
    assert out.count("ACC %") >= 2  # the first column leads every part


def test_library_warnings_go_to_the_log_not_the_console():
    """In a process of its own (pytest records warnings itself): a library's RuntimeWarning is
    not on stderr at the default level, and is a log line at --log-level info."""
    import os

    import thyrocad.cli.app as cli_app

    script = (
        "import logging, sys, warnings\n"
        "from thyrocad.cli import app\n"
        "app._chosen_level[:] = [sys.argv[1]]\n"
        "app.setup_logging()\n"
        "warnings.warn('All-NaN slice encountered', RuntimeWarning)\n"
        "logging.getLogger('thyrocad.x').warning('our own warning')\n"
    )
    src = str(Path(cli_app.__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": src}

    def stderr(level: str) -> str:
        run = [sys.executable, "-c", script, level]
        return subprocess.run(run, capture_output=True, text=True, env=env, timeout=120).stderr

    quiet = stderr("warning")
    assert "All-NaN" not in quiet and "our own warning" in quiet
    assert "INFO py.warnings" in stderr("info") and "All-NaN" in stderr("info")


def test_no_progress_text_before_an_error(tmp_path):
    """A failure after the progress bar started: stdout holds nothing, stderr the error."""
    cohort = tmp_path / "cohort"
    (cohort / "residual").mkdir(parents=True)
    (cohort / "residual" / "x.png").write_bytes(b"not a png")
    result = invoke("experiment", str(cohort), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: CohortError: cohort ")


@pytest.mark.slow
def test_on_a_terminal_the_progress_bar_is_erased_before_the_error(tmp_path):
    """The real console script on a pseudo-terminal (util-linux `script`): the bar is drawn,
    then cleared, and the error is what is left on the screen."""
    import re
    import shlex
    import shutil

    if shutil.which("script") is None:
        pytest.skip("util-linux 'script' is not installed")
    cohort = tmp_path / "cohort"
    (cohort / "residual").mkdir(parents=True)
    (cohort / "residual" / "x.png").write_bytes(b"not a png")
    line = shlex.join([str(THYROCAD), "experiment", str(cohort), "--out", str(tmp_path / "r")])
    run = subprocess.run(["script", "-qec", line, "/dev/null"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "COLUMNS": "100"})  # fmt: skip
    raw = run.stdout
    assert "checking the cohort" in raw  # the bar was drawn
    left = raw[raw.rfind("\x1b[2K") + len("\x1b[2K") :]  # after the last 'erase line'
    assert re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", left).lstrip().startswith("error: CohortError")


def test_starting_the_cli_loads_no_deep_learning_library():
    """`thyrocad users ...`, `--help` or `--version` start in well under a second: importing the
    CLI loads neither torch, timm nor torchvision, nor scipy's or skimage's slow submodules, nor
    scikit-learn or matplotlib (only commands that need them do)."""
    heavy = ("torch", "timm", "torchvision", "scipy.ndimage", "scipy.stats", "skimage.filters")
    heavy += ("sklearn", "matplotlib")
    code = f"import sys, thyrocad.cli.main; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
