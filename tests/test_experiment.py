"""Tiny real experiments: a phantom cohort, real preprocessing, real training, real reports.

The cohort has 12 patients (7 residual); with a test fraction of 0.4 each split tests 2 + 2
patients, the least DeLong accepts. SqueezeNet 1.1 starts from a fixed random initialisation
(no ImageNet file on this machine), EfficientNet-Lite0 from the ImageNet weights its package
ships; the uptake-ratio observer is the baseline.
"""

import csv
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thyrocad.cli.main import app
from thyrocad.errors import ConfigError
from thyrocad.experiment.command import experiment_command
from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.execute import Backend
from thyrocad.experiment.plan import plan_experiment
from thyrocad.experiment.report import OUTPUT_FILES
from thyrocad.experiment.run import run_experiment
from thyrocad.experiment.runs import RUNS_DIRNAME, SETTINGS_FILENAME

CONFIG = ExperimentConfig(
    models=("squeezenet1_1", "efficientnet_lite0"),
    baselines=("uptake_ratio",),
    n_splits=2,
    test_fraction=0.4,
    epochs=2,
    reference="efficientnet_lite0",
    init="imagenet-or-scratch",
    allow_small=True,  # 2 + 2 test patients per split: the least DeLong accepts
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A 12-patient phantom cohort, and THYROCAD_HOME pointed at a fresh cache folder."""
    from thyrocad.data.phantom import PhantomConfig, generate_cohort

    root = tmp_path_factory.mktemp("experiment")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("THYROCAD_HOME", str(root / "home"))
        folder = root / "cohort"
        generate_cohort(folder, PhantomConfig(n_patients=12, n_residual=7, seed=3), workers=1)
        yield folder


@pytest.fixture(scope="module")
def first_run(cohort, tmp_path_factory):
    """(the results set's folder, the outcome) of CONFIG, run once."""
    root = tmp_path_factory.mktemp("results")
    outcome = run_experiment(cohort, root, CONFIG, Backend(threads_per_run=1), command="cmd")
    assert outcome.out_dir == root / outcome.settings_hash
    return outcome.out_dir, outcome


def _runs(out: Path, outcome) -> Path:
    """Where a results set's runs are recorded: RESULTS_DIR/runs/<settings hash>/."""
    return out.parent / RUNS_DIRNAME / outcome.settings_hash


def _predictions(out: Path) -> list[dict]:
    with open(out / "predictions.csv") as fh:
        return list(csv.DictReader(fh))


def test_real_experiment_writes_every_output(first_run, cohort):
    out, outcome = first_run
    for name in (*OUTPUT_FILES, "splits.json"):
        assert (out / name).is_file(), name
    rows = _predictions(out)
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits) == 2 and all(len(s["test"]) == 4 for s in splits)
    # every test patient of every run, for the 2 CNNs and the baseline
    assert len(rows) == 3 * 2 * 4
    for s in splits:
        for model in ("squeezenet1_1", "efficientnet_lite0", "uptake_ratio"):
            tested = {
                r["patient_id"]
                for r in rows
                if r["model"] == model and r["split"] == str(s["index"])
            }
            assert tested == set(s["test"])
    # each row is a recorded run's own label and probability, written exactly
    run_dir = _runs(out, outcome)
    runs = [json.loads(path.read_text()) for path in run_dir.glob("*--split*.json")]
    recorded = {
        (run["model"], str(run["split"]), pid): (str(label), repr(prob))
        for run in runs
        for pid, label, prob in zip(
            run["patient_ids"], run["labels"], run["probabilities"], strict=True
        )
    }
    written = {
        (r["model"], r["split"], r["patient_id"]): (r["label"], r["probability"]) for r in rows
    }
    assert written == recorded
    stats = json.loads((out / "stats.json").read_text())
    assert stats["reference"] == "efficientnet_lite0"
    assert set(stats["mann_whitney"]["auc"]) == {"squeezenet1_1", "uptake_ratio"}
    assert "delong_vs_reference" in stats["per_split"]["0"]["squeezenet1_1"]
    md = (out / "table.md").read_text()
    assert "scratch (random initialisation, seed 0), ImageNet weights unavailable" in md
    assert "ImageNet (package)" in md
    assert len(runs) == outcome.n_runs == 6
    models = [run for run in runs if run["kind"] == "model"]
    assert len(models) == 4
    assert all(len(run["history"]["train_loss"]) == CONFIG.epochs for run in models)


def test_each_view_passes_each_frozen_backbone_once(first_run):
    from thyrocad.experiment.cnn import feature_cache

    # 12 patients x 2 views x 2 CNNs, over both splits and both train and test sets
    assert feature_cache().computed == 12 * 2 * 2


def test_baseline_scores_are_kept_per_cohort_and_code(first_run, cohort, monkeypatch):
    from thyrocad.evaluation.baselines.scores import cohort_features, cohort_scores
    from thyrocad.evaluation.baselines.uptake_ratio import UptakeRatioObserver

    def no_scoring(self, studies):
        raise AssertionError("scored again")

    cohort_features.cache_clear()  # forget this process's copy: only the disk cache is left
    monkeypatch.setattr(UptakeRatioObserver, "score", no_scoring)
    _, scores = cohort_scores(str(cohort), "uptake_ratio")
    rows = [r for r in _predictions(first_run[0]) if r["model"] == "uptake_ratio"]
    assert rows and all(scores[r["patient_id"]] == float(r["probability"]) for r in rows)
    cohort_features.cache_clear()


def test_resume_after_lost_runs_gives_the_identical_table(first_run, cohort):
    out, outcome = first_run
    table_before = (out / "table.csv").read_bytes()
    predictions_before = (out / "predictions.csv").read_bytes()
    run_dir = _runs(out, outcome)
    lost = (
        sorted(run_dir.glob("squeezenet1_1--split*.json"))[:1]
        + sorted(run_dir.glob("uptake_ratio--split*.json"))[:1]
    )
    kept = {p: p.stat().st_mtime_ns for p in run_dir.glob("*--split*.json") if p not in lost}
    for path in lost:
        path.unlink()
    (run_dir / ".efficientnet_lite0--split001.json.123.tmp").write_text("torn")  # crash debris
    again = run_experiment(cohort, out.parent, CONFIG, Backend(threads_per_run=1))
    assert again.n_resumed == outcome.n_runs - len(lost)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished runs were not redone
    assert (out / "table.csv").read_bytes() == table_before
    assert (out / "predictions.csv").read_bytes() == predictions_before


def test_changing_a_setting_starts_a_new_results_set(first_run, cohort):
    _, outcome = first_run
    plan = plan_experiment(cohort, CONFIG)
    from thyrocad.experiment.runs import settings_hash

    assert settings_hash(plan.settings) == outcome.settings_hash
    for changed in (
        ExperimentConfig(**{**CONFIG.__dict__, "epochs": 3}),
        ExperimentConfig(**{**CONFIG.__dict__, "seed": 1}),
        ExperimentConfig(**{**CONFIG.__dict__, "preprocess": "paper"}),
        ExperimentConfig(**{**CONFIG.__dict__, "models": ("efficientnet_lite0",)}),
    ):
        assert settings_hash(plan_experiment(cohort, changed).settings) != outcome.settings_hash


def test_head_mode_runs_of_a_model_train_together_as_the_engine_trains_each(cohort, monkeypatch):
    """ResNet-18's head has no dropout, so its runs trained together (one task, head_group)
    give the probabilities that the training engine gives run by run; a head that is not
    dropout + one affine map is trained by the engine run by run."""
    import numpy as np

    from thyrocad.experiment import cnn

    config = ExperimentConfig(
        **{**CONFIG.__dict__, "models": ("resnet18",), "baselines": (), "reference": "resnet18"}
    )
    plan = plan_experiment(cohort, config)
    assert plan.tasks == [tuple(plan.specs)] and len(plan.specs) == 2
    run_fn = plan.run_function()
    alone = [run_fn._model(spec) for spec in plan.specs]
    for together, one in zip(run_fn(plan.tasks[0]), alone, strict=True):
        assert together.patient_ids == one.patient_ids
        np.testing.assert_allclose(together.probabilities, one.probabilities, atol=1e-5)
        assert together.info["threshold"] == pytest.approx(one.info["threshold"], abs=1e-5)
    engine_runs = []
    fit_one = cnn.fit_one

    def counted_fit_one(*args, **kwargs):
        engine_runs.append(1)
        return fit_one(*args, **kwargs)

    monkeypatch.setattr(cnn, "affine_head", lambda head, shape: None)
    monkeypatch.setattr(cnn, "fit_one", counted_fit_one)
    fallback = run_fn(plan.tasks[0])
    assert len(engine_runs) == len(plan.specs)  # each run went through the training engine
    assert [r.probabilities for r in fallback] == [r.probabilities for r in alone]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")  # a vmapped ResNet-18: 11 s here, 84-101 s on 2 threads
def test_batched_splits_give_each_split_the_result_of_training_it_alone(cohort):
    """`batched_splits`: the full-mode runs of ResNet-18 (no dropout) on every split, and the
    inner folds of its out-of-fold operating point, trained as one vmapped computation per
    round, give the probabilities and thresholds of the engine run by run."""
    import numpy as np

    config = ExperimentConfig(
        **{
            **CONFIG.__dict__, "models": ("resnet18",), "baselines": (), "reference": "resnet18",
            "mode": "full", "init": "scratch", "preprocess": "recommended",
            "operating_point": "oof-youden", "inner_folds": 2, "batched_splits": True,
        }
    )  # fmt: skip
    plan = plan_experiment(cohort, config)
    assert plan.tasks == [tuple(plan.specs)] and len(plan.specs) == 2
    assert plan.settings["experiment"]["batched_splits"] is True
    unbatched = ExperimentConfig(**{**config.__dict__, "batched_splits": False})
    assert "batched_splits" not in plan_experiment(cohort, unbatched).settings["experiment"]
    run_fn = plan.run_function()
    alone = [run_fn._model(spec) for spec in plan.specs]
    for together, one in zip(run_fn(plan.tasks[0]), alone, strict=True):
        assert together.patient_ids == one.patient_ids
        np.testing.assert_allclose(together.probabilities, one.probabilities, atol=1e-4)
        np.testing.assert_allclose(
            together.history["train_loss"], one.history["train_loss"], rtol=1e-3
        )
        for rule, threshold in one.info["thresholds_by_rule"].items():
            assert together.info["thresholds_by_rule"][rule] == pytest.approx(threshold, abs=1e-4)


@pytest.mark.slow
def test_real_cli_killed_with_sigkill_then_rerun_gives_the_identical_table(
    first_run, cohort, tmp_path
):
    out, outcome = first_run
    killed = tmp_path / "killed"
    command = shlex.split(experiment_command(cohort, killed, CONFIG))
    exe = str(Path(sys.executable).with_name("thyrocad"))
    proc = subprocess.Popen([exe, *command[1:], "--threads", "1"], stdout=subprocess.DEVNULL)
    run_dir = killed / RUNS_DIRNAME / outcome.settings_hash
    killed_set = killed / outcome.settings_hash
    deadline = time.monotonic() + 300
    while not list(run_dir.glob("*--split*.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "ended before any run"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_finished = len(list(run_dir.glob("*--split*.json")))
    assert 1 <= n_finished < outcome.n_runs
    again = run_experiment(cohort, killed, CONFIG, Backend(threads_per_run=1))
    assert again.n_resumed == n_finished
    assert (killed_set / "table.csv").read_bytes() == (out / "table.csv").read_bytes()
    assert (killed_set / "predictions.csv").read_bytes() == (out / "predictions.csv").read_bytes()


@pytest.mark.slow
def test_process_pool_gives_results_identical_to_sequential(first_run, cohort, tmp_path):
    out, _ = first_run
    pooled = run_experiment(cohort, tmp_path, CONFIG, Backend(workers=2, threads_per_run=1)).out_dir
    assert _predictions(pooled) == _predictions(out)
    assert (pooled / "table.csv").read_bytes() == (out / "table.csv").read_bytes()


@pytest.mark.slow
def test_small_experiment_on_a_local_ray_instance(first_run, cohort, tmp_path, ray_local):
    out, _ = first_run
    backend = Backend(ray_address=ray_local, threads_per_run=1)
    distributed = run_experiment(cohort, tmp_path, CONFIG, backend).out_dir
    assert _predictions(distributed) == _predictions(out)


def test_cli_runs_the_experiment_and_reports_bad_settings(first_run, cohort):
    out, _ = first_run
    command = experiment_command(cohort, out.parent, CONFIG)
    runner = CliRunner()
    result = runner.invoke(app, [*command.split()[1:], "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "6 runs (6 reused" in result.output
    assert "AUC" in result.output
    bad = runner.invoke(app, ["experiment", str(cohort), "--out", str(out), "--reference", "vgg"])
    assert bad.exit_code == 2
    assert "--reference vgg is not among the models" in bad.stderr
    assert "Traceback" not in bad.output


def test_settings_file_loads_back_into_the_config_that_made_it(first_run):
    out, outcome = first_run
    settings_file = _runs(out, outcome) / SETTINGS_FILENAME
    settings = json.loads(settings_file.read_text())
    assert ExperimentConfig.from_dict(settings["experiment"]) == CONFIG
    assert ExperimentConfig.from_json(json.dumps(settings["experiment"])) == CONFIG


def test_invalid_settings_are_refused_with_the_reason():
    with pytest.raises(ConfigError, match="--view-fusion must be one of"):
        ExperimentConfig(view_fusion="median")
    with pytest.raises(ConfigError, match="unknown baseline"):
        ExperimentConfig(baselines=("glow",))
    with pytest.raises(ConfigError, match=r"unknown model.*vgg16.*known: .*resnet18"):
        ExperimentConfig(models=("vgg16",))
    for fraction in (0.0, 1.0, 25.0):
        with pytest.raises(ConfigError, match="--test-fraction"):
            ExperimentConfig(test_fraction=fraction)


def test_inputs_rebuilt_for_a_backbone_equal_the_pipeline_output_bit_for_bit(cohort):
    """The experiment stores 8-bit images and renormalises per backbone; this must equal
    running the pipeline with that backbone's mean/std (EfficientNet-Lite0: 0.5/0.5)."""
    import numpy as np

    from thyrocad.data.cohort import load_cohort
    from thyrocad.experiment.inputs import CohortInputs, image8_from_input
    from thyrocad.preprocess import Pipeline, preset

    config = preset("default")
    study = load_cohort(cohort, read=False).patients[0].load_study()
    counts, spacing = study.images[0].counts, study.pixel_spacing_mm
    imagenet = Pipeline(config).run(counts, spacing).network_input
    half = Pipeline(config.with_normalisation((0.5,) * 3, (0.5,) * 3)).run(counts, spacing)
    image8 = image8_from_input(imagenet, config.output.mean[0], config.output.std[0])
    inputs = CohortInputs(("p",), np.array([1]), np.array([0]), ("anterior",), image8[None], ((),))
    rebuilt = inputs.network_inputs(np.array([0]), (0.5,) * 3, (0.5,) * 3)[0]
    assert rebuilt.dtype == np.float32
    assert np.array_equal(rebuilt, half.network_input)


def test_runs_are_grouped_by_their_number_of_training_rows():
    import numpy as np

    from thyrocad.experiment.cnn import _same_size_groups
    from thyrocad.training.head_group import HeadRun

    runs = [HeadRun(np.arange(n), seed=0, init=None) for n in (6, 5, 6, 4, 5)]
    assert _same_size_groups(runs) == [[0, 2], [1, 4], [3]]


def test_default_operating_point_is_the_argmax(first_run):
    out, outcome = first_run
    for path in _runs(out, outcome).glob("*--split*.json"):
        info = json.loads(path.read_text())["info"]
        if json.loads(path.read_text())["kind"] == "model":
            assert info["threshold"] == 0.5 and info["operating_point"] == "argmax"
        else:  # baselines: Youden on the training patients, said so
            assert info["operating_point"] == "train-youden" and not info["optimistic"]


@pytest.fixture(scope="module")
def small_cohorts(tmp_path_factory):
    """An 8-patient cohort (5 residual) and a 6-patient external one (3 residual)."""
    from thyrocad.data.phantom import PhantomConfig, generate_cohort

    root = tmp_path_factory.mktemp("small")
    generate_cohort(root / "eight", PhantomConfig(n_patients=8, n_residual=5, seed=21), workers=1)
    generate_cohort(root / "ext", PhantomConfig(n_patients=6, n_residual=3, seed=22), workers=1)
    return root / "eight", root / "ext"


def test_small_samples_are_refused_with_one_line(small_cohorts, tmp_path):
    eight, _ = small_cohorts
    args = ["experiment", str(eight), "--out", str(tmp_path / "r"), "--splits", "30"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "fewer than 5" in line and "--allow-small" in line
    assert not (tmp_path / "r").exists()  # refused before anything was written
    # with --allow-small: more splits (30) than the 5 x 3 = 15 distinct ones is still refused
    result = CliRunner().invoke(app, [*args, "--allow-small", "--test-fraction", "0.34"])
    assert result.exit_code == 2 and "15 distinct" in result.stderr


def test_external_cohort_cho_and_out_of_fold_thresholds(cohort, small_cohorts, tmp_path):
    _, external = small_cohorts
    config = ExperimentConfig(
        **{
            **CONFIG.__dict__,
            "models": ("squeezenet1_1",),
            "baselines": ("uptake_ratio", "peak", "cho"),
            "reference": "squeezenet1_1",
            "operating_point": "oof-youden",
            "inner_folds": 2,
            "test_cohort": str(external),
        }
    )
    out = tmp_path / "ext"
    outcome = run_experiment(cohort, out, config, Backend(threads_per_run=1))
    runs = [
        json.loads(p.read_text())
        for p in (out / RUNS_DIRNAME / outcome.settings_hash).glob("*--split*.json")
    ]
    observers = {"uptake_ratio", "peak", "cho", "cho_true_bed"}
    assert {r["model"] for r in runs} == {"squeezenet1_1", *observers}
    ext_ids = sorted(p.name[:-5] for p in (external / "ground_truth").glob("*.json"))
    for run in runs:
        assert sorted(run["external"]["patient_ids"]) == ext_ids
        if run["kind"] == "model":
            info = run["info"]
            assert info["operating_point"] == "oof-youden" and info["inner_folds"] == 2
            assert 0 <= info["oof_sensitivity"] <= 1 and info["threshold"] != 0.5
            # how the model fits its own training patients, and every rule's SEN/SPE there
            assert 0 <= info["train_max_negative"] <= 1 and 0 <= info["train_min_positive"] <= 1
            assert 0 <= info["train_auc"] <= 1
            assert set(info["train_rates_by_rule"]) == set(info["thresholds_by_rule"])
    stats = json.loads((outcome.out_dir / "stats.json").read_text())
    assert set(stats["external"]) == {"squeezenet1_1", *observers}
    compared = stats["operating_point_comparison"]["squeezenet1_1"]["train-youden"]
    assert {"threshold", "train_sen", "train_spe", "sen", "spe"} <= set(compared)
    assert "train-youden (optimistic)" in (outcome.out_dir / "table.md").read_text()
    per_split = stats["external"]["squeezenet1_1"]["per_split"][0]
    assert per_split["n_patients"] == 6 and "calibration" in per_split
    assert "brier" not in stats["external"]["cho"]["per_split"][0]  # a score, not a probability
    md = (outcome.out_dir / "table.md").read_text()
    assert "External test cohort" in md and "| cho_true_bed |" in md
    assert (
        "external cohort of 6 patients (3 residual" in (outcome.out_dir / "methods.md").read_text()
    )


# --- the results folder: one set per settings, never overwritten ---------------------------------


def test_other_settings_get_their_own_results_set_and_keep_the_earlier_one(first_run, cohort):
    out, outcome = first_run
    root = out.parent
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    other = ExperimentConfig(**{**CONFIG.__dict__, "models": ("efficientnet_lite0",), "epochs": 3})
    again = run_experiment(cohort, root, other, Backend(threads_per_run=1))
    assert again.out_dir == root / again.settings_hash != out
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert (again.out_dir / "report.html").is_file()
    assert (root / "latest").resolve() == again.out_dir.resolve()
    index = (root / "index.html").read_text()
    assert f'href="{outcome.settings_hash}/report.html"' in index
    assert f'href="{again.settings_hash}/report.html"' in index
    assert index.index(again.settings_hash) < index.index(outcome.settings_hash)  # newest first
    assert "epochs 3" in index and "epochs 2" in index  # the setting that tells them apart


def test_a_folder_with_other_files_is_refused_unless_forced(cohort, tmp_path):
    from thyrocad.errors import OutputExistsError

    (tmp_path / "thesis.tex").write_text("mine")
    config = ExperimentConfig(**{**CONFIG.__dict__, "models": (), "reference": "uptake_ratio"})
    with pytest.raises(OutputExistsError, match="--force"):
        run_experiment(cohort, tmp_path, config, Backend(threads_per_run=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]
    forced = run_experiment(cohort, tmp_path, config, Backend(threads_per_run=1), force=True)
    assert (forced.out_dir / "table.md").is_file()
    assert (tmp_path / "thesis.tex").read_text() == "mine"


# --- offline: weights files and an unavailable reference -----------------------------------------


def test_unavailable_reference_stops_before_any_run_with_both_remedies(
    cohort, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    out = tmp_path / "results"
    args = ["experiment", str(cohort), "--out", str(out), "--models", "resnet18,efficientnet_lite0",
            "--splits", "2", "--test-fraction", "0.4", "--allow-small"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error: the reference model resnet18")
    assert "--weights resnet18=FILE" in line
    assert "--init imagenet-or-scratch" in line and "--reference efficientnet_lite0" in line
    assert "resnet18-f37072fd.pth" in line  # where the hub cache wants the file
    assert not out.exists()


def test_weights_file_for_a_model_makes_it_available_offline(cohort, tmp_path, monkeypatch):
    import torch

    from thyrocad.models import create_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    weights = tmp_path / "r18.pth"
    torch.save(create_model("resnet18", weights="none", num_classes=1000).state_dict(), weights)
    out = tmp_path / "results"
    args = ["experiment", str(cohort), "--out", str(out), "--models", "resnet18", "--baselines",
            "none", "--splits", "2", "--test-fraction", "0.4", "--allow-small", "--epochs", "2",
            "--weights", f"resnet18={weights}", "--threads", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = (out / "latest" / "table.md").read_text()
    assert "file r18.pth (sha256 " in table and "unavailable" not in table
    settings = json.loads(next((out / RUNS_DIRNAME).glob("*/settings.json")).read_text())
    assert settings["experiment"]["weights"] == [["resnet18", str(weights)]]
    assert settings["inits"]["resnet18"].startswith("file:")
    bad = CliRunner().invoke(app, [*args, "--weights", "vgg=x.pth"])
    assert bad.exit_code == 2 and "vgg is not among --models" in bad.stderr


def test_old_option_spellings_work_with_a_deprecation_line(cohort, tmp_path):
    args = ["experiment", str(cohort), "--out", str(tmp_path / "x"), "--preprocess", "bogus"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2  # the old option's value reached the check of --preset
    assert (
        "warning: --preprocess is deprecated" in result.stderr and "use --preset" in result.stderr
    )
    expected = "--preset must be one of paper, default, grabcut_bed, recommended, got 'bogus'"
    assert expected in result.stderr
    both = CliRunner().invoke(app, [*args, "--preset", "paper"])
    assert both.exit_code == 2 and "give only --preset" in both.stderr


def test_reproducing_command_with_weights_parses_back_into_its_config(tmp_path):
    from doc_commands import parse_command

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not read by the parser")
    config = ExperimentConfig(models=("resnet18",), baselines=(), reference="resnet18",
                              weights=(("resnet18", str(weights)),))  # fmt: skip
    params = parse_command(experiment_command(tmp_path, tmp_path / "r", config))
    assert params["weights"] == [f"resnet18={weights}"]
    assert params["preset_name"] == config.preprocess and params["device"] == config.device


def test_reproducing_command_carries_the_operating_point_and_the_guards(tmp_path):
    from doc_commands import parse_command

    config = ExperimentConfig(
        models=("resnet18",),
        baselines=("uptake_ratio", "cho"),
        reference="resnet18",
        operating_point="oof-sensitivity:0.9",
        inner_folds=3,
        allow_small=True,
        test_cohort=str(tmp_path),
    )
    params = parse_command(experiment_command(tmp_path, tmp_path / "r", config))
    assert params["operating_point"] == "oof-sensitivity:0.9" and params["inner_folds"] == 3
    assert params["allow_small"] is True and params["test_cohort"] == tmp_path.absolute()
    plain = parse_command(experiment_command(tmp_path, tmp_path / "r", ExperimentConfig()))
    assert plain["allow_small"] is False and plain["test_cohort"] is None
