import json

import pytest

from thyrocad.errors import ExperimentError
from thyrocad.experiment.runs import RunRegistry, RunResult, RunSpec, settings_hash

SETTINGS = {"cohort": "abc", "models": ["resnet18"], "splits": [[["a"], ["b"]]]}


def _result(spec: RunSpec) -> RunResult:
    return RunResult(
        model=spec.model,
        kind=spec.kind,
        split=spec.split,
        patient_ids=["p1", "p2"],
        labels=[1, 0],
        probabilities=[0.1 + 1e-17 * 3, 2 / 3],
        history={"train_loss": [0.7, 0.5]},
        info={"init": "imagenet", "mode": "head"},
        wall_s=1.5,
    )


def test_result_round_trips_exactly_through_the_registry(tmp_path):
    reg = RunRegistry(tmp_path, SETTINGS)
    spec = RunSpec("resnet18", "model", 3)
    assert not reg.is_done(spec)
    reg.save(_result(spec))
    assert reg.is_done(spec)
    loaded = reg.load(spec)
    assert loaded == _result(spec)
    assert loaded.probabilities[1] == 2 / 3  # floats survive JSON bit for bit
    assert reg.path(spec).parent == tmp_path / "runs" / reg.hash
    assert json.loads((reg.root / "settings.json").read_text()) == SETTINGS


def test_pending_skips_finished_runs_in_order(tmp_path):
    reg = RunRegistry(tmp_path, SETTINGS)
    specs = [RunSpec(m, "model", s) for m in ("a", "b") for s in range(3)]
    for spec in specs[1::2]:
        reg.save(_result(spec))
    assert reg.pending(specs) == specs[0::2]


def test_changing_any_setting_starts_a_new_results_set(tmp_path):
    first = RunRegistry(tmp_path, SETTINGS)
    first.save(_result(RunSpec("resnet18", "model", 0)))
    changed = RunRegistry(tmp_path, {**SETTINGS, "cohort": "abd"})
    assert changed.hash != first.hash
    assert changed.pending([RunSpec("resnet18", "model", 0)]) == [RunSpec("resnet18", "model", 0)]
    # key order does not change the hash
    assert settings_hash({"b": 1, "a": [1, 2]}) == settings_hash({"a": [1, 2], "b": 1})


def test_settings_file_that_disagrees_with_its_hash_is_refused(tmp_path):
    reg = RunRegistry(tmp_path, SETTINGS)
    (reg.root / "settings.json").write_text(json.dumps({"other": 1}))
    with pytest.raises(ExperimentError, match="delete that folder"):
        RunRegistry(tmp_path, SETTINGS)


def test_corrupt_or_misplaced_run_file_gives_a_clear_error(tmp_path):
    reg = RunRegistry(tmp_path, SETTINGS)
    spec = RunSpec("resnet18", "model", 0)
    reg.path(spec).write_text("{not json")
    with pytest.raises(ExperimentError, match="delete it"):
        reg.load(spec)
    other = RunSpec("resnet18", "model", 1)
    reg.path(spec).write_text(_result(other).to_json())
    with pytest.raises(ExperimentError, match="not RunSpec"):
        reg.load(spec)
