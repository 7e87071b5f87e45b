"""Running (or resuming) a whole experiment and writing its outputs.

cohort --plan--> splits, weights, settings --execute--> RunResults (one JSON per run)
    --report--> Table 4, statistics, figures, report.html

Outputs go into a subfolder of the results folder named by the settings hash, with a `latest`
link and an index page (`thyrocad.experiment.results`): other settings never overwrite them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from thyrocad.data.splits import Split
from thyrocad.evaluation.baselines.scores import cohort_features
from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.execute import Backend, execute_runs, threads
from thyrocad.experiment.plan import ExperimentPlan, plan_experiment
from thyrocad.experiment.report import Aggregate, ReportContext, table_markdown, write_outputs
from thyrocad.experiment.results import claim_results_dir, point_latest, set_dir, write_index
from thyrocad.experiment.runs import RunRegistry, RunResult, RunSpec
from thyrocad.files import write_text_atomic
from thyrocad.provenance import library_versions, machine_description

logger = logging.getLogger(__name__)


@dataclass
class ExperimentOutcome:
    """What `run_experiment` produced; `out_dir` is the results set's own folder."""

    out_dir: Path
    settings_hash: str
    aggregate: Aggregate
    table_markdown: str
    n_runs: int
    n_resumed: int
    wall_s: float
    wall_times: dict[str, float]  # this invocation and the sum of run times of each row


def write_splits(path: Path, splits: Sequence[Split]) -> None:
    """splits.json: seed and sorted train/test patient lists of every split."""
    write_text_atomic(path, json.dumps([dataclasses.asdict(s) for s in splits], indent=1))


def run_experiment(
    cohort_dir: Path | str,
    out_dir: Path | str,
    config: ExperimentConfig,
    backend: Backend | None = None,
    command: str = "",
    on_plan: Callable[[ExperimentPlan, int], None] | None = None,
    on_start: Callable[[RunSpec], None] | None = None,
    on_done: Callable[[RunResult], None] | None = None,
    force: bool = False,
) -> ExperimentOutcome:
    """Run (or resume) the experiment and write every output into `out_dir/<settings hash>/`.

    `out_dir` must be empty, absent or an experiment results folder; `force` writes into a
    folder holding other files (never replacing them). `on_plan(plan, n_already_done)` is
    called once the runs are known, before any training.
    """
    start = time.perf_counter()
    backend = _backend_for(config, backend or Backend())
    root = Path(out_dir)
    plan = plan_experiment(cohort_dir, config)
    claim_results_dir(root, force=force)
    registry = RunRegistry(root, plan.settings)
    out = set_dir(root, registry.hash)
    specs = plan.specs
    n_done = len(specs) - len(registry.pending(specs))
    write_splits(out / "splits.json", plan.splits)
    if on_plan:
        on_plan(plan, n_done)
    _prepare(plan, registry.pending(specs))
    execute_runs(plan.tasks, plan.run_function(), registry, backend, on_start, on_done)
    results = [registry.load(s) for s in specs]
    wall = _wall_times(plan, results, time.perf_counter() - start)
    context = ReportContext(
        command=command,
        settings=plan.settings,
        settings_hash=registry.hash,
        data_hash=plan.data_hash,
        versions=library_versions(),
        machine=machine_description(),
        backend=backend.describe(),
        wall_times=wall,
        created_utc=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )
    agg = write_outputs(out, results, plan.entries, config.reference, context)
    point_latest(root, registry.hash)
    write_index(root, registry.hash)
    logger.info("experiment %s: %d runs (%d resumed)", registry.hash, len(specs), n_done)
    return ExperimentOutcome(
        out_dir=out,
        settings_hash=registry.hash,
        aggregate=agg,
        table_markdown=table_markdown(agg),
        n_runs=len(specs),
        n_resumed=n_done,
        wall_s=wall["this invocation (s)"],
        wall_times=wall,
    )


def _backend_for(config: ExperimentConfig, backend: Backend) -> Backend:
    """In 'head' mode a run trains only a small head on cached features: tiny tensor
    operations, for which extra threads cost more in synchronisation than they gain. Cores
    are better used by running runs side by side (--workers)."""
    if config.mode == "head" and backend.threads_per_run is None:
        return dataclasses.replace(backend, threads_per_run=1)
    return backend


def _prepare(plan: ExperimentPlan, pending: Sequence[RunSpec]) -> None:
    """Work every pending run needs, done once here instead of in each worker at once: the
    preprocessed cohort, frozen backbone features ('head' mode), baseline scores."""
    run_fn = plan.run_function()
    cohorts = [run_fn.cohort_dir, *([plan.config.test_cohort] if plan.config.test_cohort else [])]
    with threads(os.cpu_count() or 1):  # backbone passes over the whole cohort: all cores
        for cohort in cohorts:
            for model in dict.fromkeys(s.model for s in pending if s.kind == "model"):
                run_fn.inputs(model, cohort)
                run_fn.warm_features(model, cohort)
            for name in dict.fromkeys(s.model for s in pending if s.kind == "baseline"):
                cohort_features(cohort, name)


def _wall_times(plan: ExperimentPlan, results: list[RunResult], total: float) -> dict[str, float]:
    wall = {"this invocation (s)": total}
    for entry in plan.entries:
        if entry.ran:
            wall[f"{entry.name}: sum of run times (s)"] = sum(
                r.wall_s for r in results if r.model == entry.name
            )
    return wall
