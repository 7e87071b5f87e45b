"""Execution of independent runs: sequential, a local process pool, or a Ray cluster.

The unit of work is a task: one run, or several runs that the run function computes together
(an experiment's head-mode runs of one model, `thyrocad.training.head_group`). Whatever the
backend, the results of every finished task are recorded by the driver process through the
`RunRegistry` as soon as they arrive, so an interrupted experiment loses only the tasks in
flight. A task is done again if any of its runs is unrecorded, and only those runs are recorded
then. A run function is any picklable callable `tuple[RunSpec, ...] -> list[RunResult]` (a
module-level function or an instance of a module-level class). Workers are started with the
`spawn` method and each sets its torch / OpenCV thread counts explicitly with `threads`
(fork-unsafe OpenCV thread pool; Ray's per-task `OMP_NUM_THREADS`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass

import cv2
import torch

from thyrocad.errors import ExperimentError
from thyrocad.experiment.runs import RunRegistry, RunResult, RunSpec

logger = logging.getLogger(__name__)

Task = tuple[RunSpec, ...]
RunFn = Callable[[Task], list[RunResult]]
Callback = Callable[[RunSpec], None]
DoneCallback = Callable[[RunResult], None]


@dataclass(frozen=True)
class Backend:
    """Where runs execute: `workers` local processes (1 = in this process) or a Ray cluster."""

    workers: int = 1
    ray_address: str | None = None
    threads_per_run: int | None = None  # None: see `threads`

    def threads(self) -> int:
        """Threads of one run: as given; else 1 on Ray, else this machine's cores / workers."""
        if self.threads_per_run is not None:
            return max(1, self.threads_per_run)
        if self.ray_address:
            return 1
        return max(1, (os.cpu_count() or 1) // max(1, self.workers))

    def describe(self) -> str:
        if self.ray_address:
            return f"ray ({self.ray_address}), {self.threads()} thread(s) per run"
        if self.workers > 1:
            return f"{self.workers} local processes, {self.threads()} thread(s) each"
        return f"sequential, {self.threads()} thread(s)"


@contextlib.contextmanager
def threads(n_threads: int) -> Iterator[None]:
    """Run the block with `n_threads` torch and OpenCV threads; the counts are restored after."""
    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(n_threads)
    cv2.setNumThreads(0 if n_threads == 1 else n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def _run_in_worker(run_fn: RunFn, task: Task, n_threads: int) -> list[RunResult]:
    with threads(n_threads):
        return run_fn(task)


def execute_runs(
    tasks: Sequence[Task],
    run_fn: RunFn,
    registry: RunRegistry,
    backend: Backend | None = None,
    on_start: Callback | None = None,
    on_done: DoneCallback | None = None,
) -> None:
    """Do every task with a run not yet in `registry`, recording its results as it finishes.

    `on_start` is called for each unrecorded run of a task handed to a worker, `on_done` after
    a result is saved. A failing task stops the experiment (its exception propagates);
    finished runs stay recorded.
    """
    backend = backend or Backend()
    pending = [task for task in tasks if registry.pending(task)]
    logger.info("%d of %d tasks to do (%s)", len(pending), len(tasks), backend.describe())
    if not pending:
        return

    def started(task: Task) -> None:
        for spec in registry.pending(task) if on_start else ():
            on_start(spec)

    def record(results: list[RunResult]) -> None:
        for result in results:
            if registry.is_done(result.spec):
                continue  # recorded by an earlier invocation; recomputed with its task
            registry.save(result)
            if on_done:
                on_done(result)

    if backend.ray_address:
        _execute_ray(pending, run_fn, backend, started, record)
    elif backend.workers > 1:
        _execute_pool(pending, run_fn, backend, started, record)
    else:
        with threads(backend.threads()):
            for task in pending:
                started(task)
                record(run_fn(task))


def _execute_pool(
    pending: Sequence[Task],
    run_fn: RunFn,
    backend: Backend,
    started: Callable[[Task], None],
    record: Callable[[list[RunResult]], None],
) -> None:
    context = multiprocessing.get_context("spawn")
    queue = list(pending)
    with ProcessPoolExecutor(max_workers=backend.workers, mp_context=context) as pool:
        running = {}

        def submit() -> None:
            task = queue.pop(0)
            running[pool.submit(_run_in_worker, run_fn, task, backend.threads())] = task
            started(task)

        while queue and len(running) < backend.workers:
            submit()
        try:
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    record(future.result())
                    if queue:
                        submit()
        except BaseException:
            for future in running:
                future.cancel()
            raise


def _execute_ray(
    pending: Sequence[Task],
    run_fn: RunFn,
    backend: Backend,
    started: Callable[[Task], None],
    record: Callable[[list[RunResult]], None],
) -> None:
    import ray  # imported only when asked for: it takes seconds

    if not ray.is_initialized():
        try:
            ray.init(address=backend.ray_address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ExperimentError(
                f"cannot connect to the Ray cluster at {backend.ray_address!r} ({exc}); start "
                "one with 'ray start --head' or pass its address"
            ) from exc
    n_threads = backend.threads()
    task = ray.remote(num_cpus=n_threads, max_retries=0)(_run_in_worker)
    fn_ref = ray.put(run_fn)
    refs = {}
    for unit in pending:
        refs[task.remote(fn_ref, unit, n_threads)] = unit
        started(unit)
    try:
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                refs.pop(ref)
                record(ray.get(ref))
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
