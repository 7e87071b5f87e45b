"""The run function of an experiment: a task of (model, split) runs in, their results out.

Protocol of one run. Both views of a training patient are training images carrying the
patient's label; a view `thyrocad.decision` would not classify (blank or flat crop) is left
out of training and testing, exactly as `predict` leaves it out. A test patient's probability
fuses its usable views' probabilities by the configured view fusion; a test patient without a
usable view gets none and is counted in the run's `info`. A CNN calls a patient residual when
its probability is >= a threshold chosen on its own training patients (Youden's J on their
fused probabilities), a baseline likewise on its scores; no test patient influences a
threshold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from thyrocad.data.splits import Split
from thyrocad.decision import choose_threshold, fuse_by_patient
from thyrocad.evaluation.baselines.scores import cohort_scores
from thyrocad.experiment import cnn
from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.inputs import CohortInputs, load_inputs, model_inputs
from thyrocad.experiment.runs import RunResult, RunSpec
from thyrocad.files import using_home
from thyrocad.training import TrainConfig
from thyrocad.training.head_group import HeadRun

THRESHOLD_RULE = "Youden on the training patients (fused training-image probabilities)"
BASELINE_THRESHOLD_RULE = "Youden on the training patients' scores (the observer's own rule)"


def run_seed(seed: int, split: int) -> int:
    """The training seed of a split: shared by every model on that split."""
    return int(np.random.SeedSequence([seed, split]).generate_state(1)[0])


@dataclass(frozen=True)
class ExperimentRun:
    """The picklable run function `tuple[RunSpec, ...] -> list[RunResult]` of one experiment.

    `cache_home` is the driver's cache folder, used by the runs (in worker processes too)
    without touching the environment."""

    cohort_dir: str
    pipeline_json: str
    config: ExperimentConfig
    splits: tuple[Split, ...]
    weights: dict[str, str] = field(default_factory=dict)  # model -> "imagenet" | a weights file
    cache_home: str = ""

    def __call__(self, task: tuple[RunSpec, ...]) -> list[RunResult]:
        """The results of a task: one run, or in 'head' mode every split of one CNN at once.

        A run's `wall_s` is its task's wall time divided by the task's runs."""
        with using_home(self.cache_home or None):
            start = time.perf_counter()
            if task[0].kind == "baseline":
                results = [self._baseline(spec) for spec in task]
            elif self.config.mode == "head":
                results = self._head_group(task)
            else:
                results = [self._model(spec) for spec in task]
            share = (time.perf_counter() - start) / len(results)
        for result in results:
            result.info["n_train_patients"] = len(self.splits[result.split].train)
            result.wall_s = share
        return results

    def train_config(self, model: str, split: int) -> TrainConfig:
        """The engine's TrainConfig of one run."""
        return TrainConfig(
            model=model,
            weights=self.weights.get(model, "imagenet"),
            mode=self.config.mode,
            epochs=self.config.epochs,
            lr=self.config.lr,
            weight_decay=self.config.weight_decay,
            batch_size=self.config.batch_size,
            seed=run_seed(self.config.seed, split),
            device=self.config.device,
        )

    def warm_features(self, model: str) -> None:
        """Pass every view through `model`'s frozen backbone once ('head' mode), so that runs
        in worker processes read the features from the disk cache instead of each computing
        them."""
        cfg = self.train_config(model, 0)
        if cfg.mode == "head" and cfg.cache_features:
            cnn.frozen_features(cfg, self._x_all(model))

    def _x_all(self, model: str) -> np.ndarray:
        return model_inputs(self.cohort_dir, self.pipeline_json, model)

    def _rows(self, data: CohortInputs, patients: tuple[str, ...]) -> np.ndarray:
        """The usable view rows of `patients`."""
        rows = data.rows_of(patients)
        return rows[data.usable[rows]]

    def _model(self, spec: RunSpec) -> RunResult:
        """One run through the training engine (`thyrocad.training.train`)."""
        data = load_inputs(self.cohort_dir, self.pipeline_json)
        x_all = self._x_all(spec.model)
        split = self.splits[spec.split]
        train_rows, test_rows = self._rows(data, split.train), self._rows(data, split.test)
        cfg = self.train_config(spec.model, spec.split)
        patients = data.view_patient[train_rows]
        fitted = cnn.fit_one(
            x_all[train_rows], data.labels[patients], [data.patient_ids[p] for p in patients], cfg
        )
        test_prob = cnn.predict_proba(fitted, x_all[test_rows])
        history = cnn.history_series(fitted.history)
        return self._result(spec, data, fitted.train_prob, test_prob, history, cfg.seed)

    def _head_group(self, task: tuple[RunSpec, ...]) -> list[RunResult]:
        """Every split of one CNN in 'head' mode: the heads trained together on the cached
        features (`thyrocad.training.head_group`), each from the head `train` would start from.
        A head that is not dropout + one affine map is trained split by split instead."""
        model = task[0].model
        data = load_inputs(self.cohort_dir, self.pipeline_json)
        net, feats = cnn.frozen_features(self.train_config(model, 0), self._x_all(model))
        seeds = [self.train_config(model, spec.split).seed for spec in task]
        heads = cnn.initial_heads(net, feats.shape[1:], seeds, model)
        if heads is None:
            return [self._model(spec) for spec in task]
        runs = [
            HeadRun(self._rows(data, self.splits[spec.split].train), seed, head)
            for spec, seed, head in zip(task, seeds, heads, strict=True)
        ]
        fits = cnn.train_head_group(feats, data.labels[data.view_patient], runs, self.config)
        results = []
        for spec, run, fit in zip(task, runs, fits, strict=True):
            test_rows = self._rows(data, self.splits[spec.split].test)
            train_prob = fit.probabilities(feats[run.rows])
            test_prob = fit.probabilities(feats[test_rows])
            history = cnn.history_series(fit.history)
            results.append(self._result(spec, data, train_prob, test_prob, history, run.seed))
        return results

    def _fuse(
        self, data: CohortInputs, patients: tuple[str, ...], view_prob: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = data.rows_of(patients)
        usable = data.usable[rows]
        full = np.full(len(rows), np.nan)
        full[usable] = view_prob
        return fuse_by_patient(
            full, data.view_patient[rows], [data.views[r] for r in rows], usable,
            self.config.view_fusion,
        )  # fmt: skip

    def _result(
        self, spec: RunSpec, data: CohortInputs, train_prob, test_prob, history, seed: int
    ) -> RunResult:
        """A CNN run's result from its usable views' probabilities: fused per patient,
        thresholded on its training patients."""
        split = self.splits[spec.split]
        patients, prob, unscored = self._fuse(data, split.test, np.asarray(test_prob))
        train_patients, train_fused, _ = self._fuse(data, split.train, np.asarray(train_prob))
        threshold = choose_threshold(data.labels[train_patients], train_fused).threshold
        test_rows = data.rows_of(split.test)
        return RunResult(
            model=spec.model,
            kind=spec.kind,
            split=spec.split,
            patient_ids=[data.patient_ids[p] for p in patients],
            labels=[int(data.labels[p]) for p in patients],
            probabilities=[float(v) for v in prob],
            history=history,
            info={
                "threshold": float(threshold),
                "threshold_rule": THRESHOLD_RULE,
                "seed": seed,
                "unusable_test_views": int((~data.usable[test_rows]).sum()),
                "unscored_test_patients": len(unscored),
            },
        )

    def _baseline(self, spec: RunSpec) -> RunResult:
        split = self.splits[spec.split]
        labels, scores = cohort_scores(self.cohort_dir, spec.model)
        y_train = np.array([labels[p] for p in split.train])
        threshold = choose_threshold(y_train, np.array([scores[p] for p in split.train]))
        return RunResult(
            model=spec.model,
            kind=spec.kind,
            split=spec.split,
            patient_ids=list(split.test),
            labels=[labels[p] for p in split.test],
            probabilities=[scores[p] for p in split.test],
            info={"threshold": threshold.threshold, "threshold_rule": BASELINE_THRESHOLD_RULE},
        )
