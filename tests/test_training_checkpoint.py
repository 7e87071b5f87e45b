"""Checkpoints: kill -9 and resume, full disk, corrupt files, mismatched settings."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from thyrocad.errors import CheckpointError
from thyrocad.training import train
from thyrocad.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from training_helpers import small, toy_data

pytestmark = pytest.mark.usefixtures("one_thread")

EPOCHS = 8

CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import torch
from training_helpers import small, toy_data
from thyrocad.training import train
torch.set_num_threads(1)
train(toy_data(), small(mode="full", epochs={epochs}), run_dir=Path({run_dir!r}), resume=True,
      on_epoch=lambda r: print("epoch", r.epoch, flush=True))
print("finished", flush=True)
"""


@pytest.fixture(scope="module")
def reference():
    """An uninterrupted run's final state_dict."""
    torch.set_num_threads(1)
    return train(toy_data(), small(mode="full", epochs=EPOCHS)).model.state_dict()


def assert_same_weights(state: dict, expected: dict) -> None:
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_same_weights(tmp_path, reference):
    code = CHILD.format(tests=str(Path(__file__).parent), epochs=EPOCHS, run_dir=str(tmp_path))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        for line in child.stdout:
            if line.strip() == "epoch 3":
                time.sleep(0.15)  # land somewhere inside epoch 4 or its checkpoint write
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.wait(timeout=120)
    assert child.returncode == -signal.SIGKILL
    done = load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"]
    assert 3 <= done < EPOCHS

    resumed = train(toy_data(), small(mode="full", epochs=EPOCHS), run_dir=tmp_path, resume=True)

    assert [r.epoch for r in resumed.history] == list(range(1, EPOCHS + 1))
    assert_same_weights(resumed.model.state_dict(), reference)


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch, reference):
    real_save = torch.save
    calls = []

    def save_until_disk_full(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            f.write(b"PK\x03\x04 partial checkpoint bytes")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_disk_full)
    with pytest.raises(CheckpointError, match="previous checkpoint is intact"):
        train(toy_data(), small(mode="full", epochs=EPOCHS), run_dir=tmp_path)
    monkeypatch.setattr(torch, "save", real_save)

    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # no temp file left
    resumed = train(toy_data(), small(mode="full", epochs=EPOCHS), run_dir=tmp_path, resume=True)
    assert_same_weights(resumed.model.state_dict(), reference)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, damage):
    cfg = small(mode="head", epochs=2)
    train(toy_data(), cfg, run_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    if damage == "garbage":
        path.write_bytes(b"this is not a checkpoint")
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        train(toy_data(), cfg, run_dir=tmp_path, resume=True)


def test_resume_refuses_other_settings_or_data(tmp_path):
    train(toy_data(), small(mode="head", epochs=2), run_dir=tmp_path)
    with pytest.raises(CheckpointError, match="lr"):
        train(toy_data(), small(mode="head", epochs=2, lr=1e-4), run_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="training data"):
        train(toy_data(seed=1), small(mode="head", epochs=2), run_dir=tmp_path, resume=True)


def test_resume_of_finished_head_run_matches(tmp_path):
    cfg = small(mode="head", epochs=4)
    done = train(toy_data(), cfg, run_dir=tmp_path)
    again = train(toy_data(), cfg, run_dir=tmp_path, resume=True)
    assert_same_weights(again.model.state_dict(), done.model.state_dict())
    assert again.history == done.history
