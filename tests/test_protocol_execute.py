"""The executor backends and crash-resume, with a small deterministic fake run function.

The fake computes its probabilities with numpy from the run's identity, sleeps a little and
logs every call to a file, so the tests can count which runs were (re)computed. Runs are given
as tasks of one run, except where a test groups them.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from thyrocad.experiment.execute import Backend, execute_runs, threads
from thyrocad.experiment.runs import RunRegistry, RunResult, RunSpec

SETTINGS = {"cohort": "fake", "models": ["m1", "m2"], "n_splits": 4}
SPECS = [RunSpec(m, "model", s) for m in ("m1", "m2") for s in range(4)]
TASKS = [(spec,) for spec in SPECS]


@dataclass(frozen=True)
class FakeRun:
    log: str
    delay_s: float = 0.0

    def __call__(self, task: tuple[RunSpec, ...]) -> list[RunResult]:
        return [self.one(spec) for spec in task]

    def one(self, spec: RunSpec) -> RunResult:
        with open(self.log, "a") as fh:
            fh.write(spec.run_id + "\n")
        time.sleep(self.delay_s)
        rng = np.random.default_rng(zlib.crc32(spec.run_id.encode()))
        return RunResult(
            model=spec.model,
            kind=spec.kind,
            split=spec.split,
            patient_ids=[f"p{i}" for i in range(6)],
            labels=[1, 1, 1, 0, 0, 0],
            probabilities=rng.random(6).tolist(),
            info={"pid": os.getpid()},
        )


def _calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _loaded(reg: RunRegistry) -> list[tuple]:
    return [(r.run_id, tuple(reg.load(r).probabilities)) for r in SPECS]


def test_sequential_records_every_run_and_reports_progress(tmp_path):
    reg = RunRegistry(tmp_path / "out", SETTINGS)
    started, finished = [], []
    execute_runs(
        TASKS,
        FakeRun(str(tmp_path / "log")),
        reg,
        on_start=started.append,
        on_done=lambda r: finished.append(r.spec),
    )
    assert started == SPECS and finished == SPECS
    assert reg.pending(SPECS) == []
    # a second call does nothing
    execute_runs(TASKS, FakeRun(str(tmp_path / "log")), reg)
    assert len(_calls(tmp_path / "log")) == len(SPECS)


def test_process_pool_gives_the_same_results_as_sequential(tmp_path):
    seq = RunRegistry(tmp_path / "seq", SETTINGS)
    execute_runs(TASKS, FakeRun(str(tmp_path / "log_seq")), seq)
    pool = RunRegistry(tmp_path / "pool", SETTINGS)
    execute_runs(TASKS, FakeRun(str(tmp_path / "log_pool")), pool, Backend(workers=2))
    assert _loaded(pool) == _loaded(seq)
    pids = {pool.load(s).info["pid"] for s in SPECS}
    assert os.getpid() not in pids  # really ran in worker processes


def test_failing_run_propagates_and_keeps_finished_runs(tmp_path):
    @dataclass(frozen=True)
    class Failing(FakeRun):
        def one(self, spec):
            if spec.split == 2:
                raise RuntimeError("boom")
            return super().one(spec)

    reg = RunRegistry(tmp_path / "out", SETTINGS)
    with pytest.raises(RuntimeError, match="boom"):
        execute_runs(TASKS, Failing(str(tmp_path / "log")), reg)
    assert [s.split for s in SPECS if reg.is_done(s)] == [0, 1]


def test_sigkill_mid_experiment_then_resume_skips_finished_runs(tmp_path):
    out, log = tmp_path / "out", tmp_path / "log"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_protocol_execute import SETTINGS, TASKS, FakeRun
        from thyrocad.experiment.execute import execute_runs
        from thyrocad.experiment.runs import RunRegistry
        execute_runs(TASKS, FakeRun({str(log)!r}, delay_s=0.4), RunRegistry({str(out)!r}, SETTINGS))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    reg = RunRegistry(out, SETTINGS)
    deadline = time.monotonic() + 60
    while len(SPECS) - len(reg.pending(SPECS)) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, "runner ended too early"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = [s for s in SPECS if reg.is_done(s)]
    assert 3 <= len(done_before) < len(SPECS)
    calls_before = _calls(log)

    execute_runs(TASKS, FakeRun(str(log)), reg)
    resumed_calls = _calls(log)[len(calls_before) :]
    assert set(resumed_calls) == {s.run_id for s in SPECS if s not in done_before}
    assert not list(reg.root.glob("*.tmp"))

    clean = RunRegistry(tmp_path / "clean", SETTINGS)
    execute_runs(TASKS, FakeRun(str(tmp_path / "log_clean")), clean)
    assert _loaded(reg) == _loaded(clean)


@pytest.mark.slow
def test_ray_backend_gives_the_same_results_as_sequential(tmp_path, ray_local):
    seq = RunRegistry(tmp_path / "seq", SETTINGS)
    execute_runs(TASKS, FakeRun(str(tmp_path / "log_seq")), seq)
    distributed = RunRegistry(tmp_path / "ray", SETTINGS)
    execute_runs(
        TASKS,
        FakeRun(str(tmp_path / "log_ray")),
        distributed,
        Backend(ray_address=ray_local, threads_per_run=1),
    )
    assert _loaded(distributed) == _loaded(seq)


def test_a_task_of_several_runs_is_redone_whole_but_records_only_missing_runs(tmp_path):
    reg = RunRegistry(tmp_path / "out", SETTINGS)
    groups = [tuple(s for s in SPECS if s.model == m) for m in ("m1", "m2")]
    execute_runs(groups, FakeRun(str(tmp_path / "log")), reg)
    assert reg.pending(SPECS) == []
    lost = reg.path(SPECS[1])
    kept = {s: reg.path(s).stat().st_mtime_ns for s in SPECS if s != SPECS[1]}
    before = _loaded(reg)
    lost.unlink()
    started, finished = [], []
    execute_runs(
        groups, FakeRun(str(tmp_path / "log2")), reg, on_start=started.append,
        on_done=lambda r: finished.append(r.spec),
    )  # fmt: skip
    assert _calls(tmp_path / "log2") == [s.run_id for s in groups[0]]  # only m1's task, whole
    assert started == finished == [SPECS[1]]
    assert {s: reg.path(s).stat().st_mtime_ns for s in kept} == kept
    assert _loaded(reg) == before


@dataclass(frozen=True)
class ThreadsSeen:
    """A run function that records the torch thread count each run ran with."""

    seen: list

    def __call__(self, task: tuple[RunSpec, ...]) -> list[RunResult]:
        self.seen.append(torch.get_num_threads())
        return FakeRun(os.devnull)(task)


def test_threads_sets_and_restores_torch_and_opencv_counts():
    before = torch.get_num_threads(), cv2.getNumThreads()
    with threads(1):
        assert torch.get_num_threads() == 1
        assert cv2.getNumThreads() == 1  # 0 asks OpenCV for no worker threads: itself alone
    assert (torch.get_num_threads(), cv2.getNumThreads()) == before
    with pytest.raises(RuntimeError), threads(2):
        assert torch.get_num_threads() == 2
        raise RuntimeError("a failing run")
    assert (torch.get_num_threads(), cv2.getNumThreads()) == before


def test_sequential_runs_use_the_backend_threads_and_leave_the_count_as_it_was(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list[int] = []
        registry = RunRegistry(tmp_path, SETTINGS)
        execute_runs(TASKS[:2], ThreadsSeen(seen), registry, Backend(threads_per_run=1))
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
