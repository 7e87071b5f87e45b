"""The run function of an experiment: a task of (model, split) runs in, their results out.

Protocol of one run. Both views of a training patient are training images carrying the
patient's label; a view `thyrocad.decision` would not classify (blank or flat crop) is left
out of training and testing, exactly as `predict` leaves it out. A test patient's probability
fuses its usable views' probabilities by the configured view fusion; a test patient without a
usable view gets none and is counted in the run's `info`. A CNN calls a patient residual when
its probability is >= the threshold of the experiment's operating point
(`thyrocad.decision`): the argmax (0.5), a rule on out-of-fold predictions of an inner
stratified k-fold over the training patients (in 'head' mode the fold heads train together
with the splits' heads), or Youden on the training patients' own predictions (optimistic). A
baseline fits its template (CHO) and threshold (Youden) on the training patients. No test
patient influences a threshold. With a test cohort, every run also scores the external cohort.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from thyrocad.data.splits import Split
from thyrocad.decision import (
    OPERATING_POINTS,
    choose_threshold,
    fuse_by_patient,
    operating_threshold,
    parse_operating_point,
    rates_at,
)
from thyrocad.evaluation.baselines.scores import cohort_features, fit_observer
from thyrocad.evaluation.stats import roc_auc
from thyrocad.experiment import cnn
from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.inputs import CohortInputs, load_inputs, model_inputs
from thyrocad.experiment.recipes import experiment_recipe
from thyrocad.experiment.runs import RunResult, RunSpec
from thyrocad.files import using_home
from thyrocad.training import TrainConfig, TrainData
from thyrocad.training.fit import CACHED_MODES
from thyrocad.training.head_group import HeadRun
from thyrocad.training.oof import (
    fold_runs,
    fold_seed,
    held_out_probabilities,
    oof_probabilities,
    patient_folds,
)

BASELINE_THRESHOLD_RULE = (
    "Youden on the training patients' scores (its only fitted parameter besides the CHO "
    "template: it cannot memorise them)"
)


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
        """The results of a task: one run, or every split of one CNN at once ('head' mode;
        'full'/'last' mode with `batched_splits`).

        A run's `wall_s` is its task's wall time divided by the task's runs."""
        with using_home(self.cache_home or None):
            start = time.perf_counter()
            if task[0].kind == "baseline":
                results = [self._baseline(spec) for spec in task]
            elif self.mode_of(task[0].model) == "head":
                results = self._head_group(task)
            elif len(task) > 1:  # batched_splits: every split of a 'full'/'last'-mode CNN
                results = self._batched_group(task)
            else:
                results = [self._model(spec) for spec in task]
            share = (time.perf_counter() - start) / len(results)
        for result in results:
            result.info["n_train_patients"] = len(self.splits[result.split].train)
            result.wall_s = share
        return results

    def train_config(self, model: str, split: int) -> TrainConfig:
        """The engine's TrainConfig of one run (of a backbone, or of a recipe row)."""
        per_run = {
            "seed": run_seed(self.config.seed, split),
            "device": self.config.device,
            "operating_point": "argmax",  # the experiment applies its own (see _result)
            "inner_folds": self.config.inner_folds,
        }
        if model in self.config.recipes:
            return dataclasses.replace(experiment_recipe(model).train, **per_run)
        return TrainConfig(
            model=model,
            weights=self.weights.get(model, "imagenet"),
            mode=self.config.mode,
            epochs=self.config.epochs,
            lr=self.config.lr,
            weight_decay=self.config.weight_decay,
            batch_size=self.config.batch_size,
            **per_run,
        )

    def mode_of(self, model: str) -> str:
        """The training mode of a row: its recipe's, or the experiment's."""
        return self.train_config(model, 0).mode

    def pipeline_of(self, model: str) -> str:
        """The preprocessing config (JSON) of a row: its recipe's, or the experiment's."""
        if model in self.config.recipes:
            return experiment_recipe(model).pipeline.to_json()
        return self.pipeline_json

    def warm_features(self, model: str, cohort_dir: str | None = None) -> None:
        """Pass every view of the cohort (or of `cohort_dir`) through `model`'s frozen part
        once ('head' and 'last' modes), so that runs in worker processes read its outputs from
        the disk cache instead of each computing them."""
        cfg = self.train_config(model, 0)
        if cfg.mode in CACHED_MODES and cfg.cache_features:
            cnn.frozen_features(cfg, self._x_all(model, cohort_dir))

    def inputs(self, model: str, cohort_dir: str | None = None) -> CohortInputs:
        """The preprocessed cohort (or `cohort_dir`) as the row `model` sees it."""
        return load_inputs(cohort_dir or self.cohort_dir, self.pipeline_of(model))

    def _x_all(self, model: str, cohort_dir: str | None = None) -> np.ndarray:
        """Every view's network input for the row `model` (its backbone's mean/std)."""
        backbone = self.train_config(model, 0).model
        return model_inputs(cohort_dir or self.cohort_dir, self.pipeline_of(model), backbone)

    def _rows(self, data: CohortInputs, patients: tuple[str, ...]) -> np.ndarray:
        """The usable view rows of `patients`."""
        rows = data.rows_of(patients)
        return rows[data.usable[rows]]

    @property
    def rule(self):
        """The CNNs' operating point."""
        return parse_operating_point(self.config.operating_point)

    def _model(self, spec: RunSpec) -> RunResult:
        """One run through the training engine (`thyrocad.training.train`); an out-of-fold
        operating point costs `inner_folds` more engine runs on the training patients."""
        data, x_all = self.inputs(spec.model), self._x_all(spec.model)
        train_data, cfg = self._train_data(spec, data, x_all)
        fitted = cnn.fit_one(train_data, cfg)
        oof = None
        if self.rule.needs_oof:
            oof = oof_probabilities(train_data, cfg, cnn.feature_cache())
        return self._scored(spec, data, x_all, fitted, oof)

    def _batched_group(self, task: tuple[RunSpec, ...]) -> list[RunResult]:
        """Every split of one CNN in 'full' or 'last' mode as one batched computation
        (`batched_splits`; `thyrocad.training.batched`): first the splits' runs, then for an
        out-of-fold operating point inner fold f of every split, each round one batch (runs
        of unequal size in batches of their own)."""
        data, x_all = self.inputs(task[0].model), self._x_all(task[0].model)
        runs = [self._train_data(spec, data, x_all) for spec in task]
        fits = cnn.fit_batched(runs)
        folds = [fold_runs(*run) if self.rule.needs_oof else [] for run in runs]
        rounds = [
            cnn.fit_batched([(f[fold][1], f[fold][2]) for f in folds])
            for fold in range(min((len(f) for f in folds), default=0))
        ]
        results = []
        for i, (spec, (train_data, _)) in enumerate(zip(task, runs, strict=True)):
            oof = None
            if folds[i]:
                masks = [held for held, _, _ in folds[i]]
                fold_fits = [fitted[i] for fitted in rounds]
                prob = held_out_probabilities(train_data, masks, fold_fits, cnn.feature_cache())
                oof = (prob, len(masks))
            results.append(self._scored(spec, data, x_all, fits[i], oof))
        return results

    def _train_data(self, spec: RunSpec, data: CohortInputs, x_all: np.ndarray):
        """(TrainData, TrainConfig) of a run: its split's usable training views."""
        rows = self._rows(data, self.splits[spec.split].train)
        patients = data.view_patient[rows]
        groups = [data.patient_ids[p] for p in patients]
        train_data = TrainData.build(x_all[rows], data.labels[patients], groups)
        return train_data, self.train_config(spec.model, spec.split)

    def _scored(self, spec: RunSpec, data: CohortInputs, x_all, fitted, oof) -> RunResult:
        """A trained run's result: its test patients (and the external cohort's) scored."""
        test_rows = self._rows(data, self.splits[spec.split].test)
        test_prob = cnn.predict_proba(fitted, x_all[test_rows])
        history = cnn.history_series(fitted.history)
        seed = fitted.config.seed
        result = self._result(spec, data, fitted.train_prob, test_prob, history, seed, oof)
        if self.config.test_cohort:
            external = self.inputs(spec.model, self.config.test_cohort)
            rows = np.flatnonzero(external.usable)
            ext_x = self._x_all(spec.model, self.config.test_cohort)
            result.external = self._external(external, cnn.predict_proba(fitted, ext_x[rows]))
        return result

    def _head_group(self, task: tuple[RunSpec, ...]) -> list[RunResult]:
        """Every split of one CNN in 'head' mode: the heads trained together on the cached
        features (`thyrocad.training.head_group`), each from the head `train` would start from,
        with the heads of the inner folds of an out-of-fold operating point. A head that is
        not dropout + one affine map is trained split by split instead."""
        model = task[0].model
        cfg = self.train_config(model, 0)
        data = self.inputs(model)
        net, feats = cnn.frozen_features(cfg, self._x_all(model))
        seeds = [self.train_config(model, spec.split).seed for spec in task]
        heads = cnn.initial_heads(net, feats.shape[1:], seeds, cfg.model)
        if heads is None:
            return [self._model(spec) for spec in task]
        runs = [
            HeadRun(self._rows(data, self.splits[spec.split].train), seed, head)
            for spec, seed, head in zip(task, seeds, heads, strict=True)
        ]
        folds = self._fold_runs(data, net, feats, runs, model) if self.rule.needs_oof else []
        labels = data.labels[data.view_patient]
        fits = cnn.train_head_group(feats, labels, runs + [f[2] for f in folds], cfg)
        oof = {i: np.full(len(run.rows), np.nan) for i, run in enumerate(runs)}
        for (i, held, _), fit in zip(folds, fits[len(runs) :], strict=True):
            oof[i][held] = fit.probabilities(feats[runs[i].rows[held]])
        ext_feats = self._external_features(model) if self.config.test_cohort else None
        results = []
        for i, (spec, run, fit) in enumerate(zip(task, runs, fits[: len(runs)], strict=True)):
            test_rows = self._rows(data, self.splits[spec.split].test)
            train_prob = fit.probabilities(feats[run.rows])
            test_prob = fit.probabilities(feats[test_rows])
            history = cnn.history_series(fit.history)
            k = len([f for f in folds if f[0] == i])
            result = self._result(
                spec, data, train_prob, test_prob, history, run.seed, (oof[i], k) if k else None
            )
            if ext_feats is not None:
                result.external = self._external(
                    self.inputs(model, self.config.test_cohort), fit.probabilities(ext_feats)
                )
            results.append(result)
        return results

    def _fold_runs(self, data: CohortInputs, net, feats, runs: list[HeadRun], model: str):
        """(run index, held-out positions in its rows, HeadRun) of every inner fold."""
        backbone = self.train_config(model, 0).model
        out = []
        for i, run in enumerate(runs):
            groups = [data.patient_ids[p] for p in data.view_patient[run.rows]]
            labels = data.labels[data.view_patient[run.rows]]
            masks = patient_folds(groups, labels, self.config.inner_folds, run.seed)
            seeds = [fold_seed(run.seed, f) for f in range(len(masks))]
            heads = cnn.initial_heads(net, feats.shape[1:], seeds, backbone)
            for held, seed, head in zip(masks, seeds, heads, strict=True):
                out.append((i, held, HeadRun(run.rows[~held], seed, head)))
        return out

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
        self, spec: RunSpec, data: CohortInputs, train_prob, test_prob, history, seed: int,
        oof: tuple[np.ndarray, int] | None = None,
    ) -> RunResult:  # fmt: skip
        """A CNN run's result from its usable views' probabilities: fused per patient, with
        the threshold of the operating point (`oof`: out-of-fold probabilities of the
        training views and the number of folds)."""
        split = self.splits[spec.split]
        patients, prob, unscored = self._fuse(data, split.test, np.asarray(test_prob))
        train_patients, train_fused, _ = self._fuse(data, split.train, np.asarray(train_prob))
        y_train = data.labels[train_patients]
        oof_fused = self._fuse(data, split.train, oof[0])[1] if oof is not None else None
        choice = operating_threshold(self.rule, y_train, train_fused, oof_fused)
        train_sen, train_spe = rates_at(y_train, train_fused, choice.threshold)
        test_rows = data.rows_of(split.test)
        info = {
            "threshold": float(choice.threshold),
            "operating_point": self.rule.text,
            "threshold_rule": self.rule.describe(oof[1] if oof else None),
            "optimistic": self.rule.optimistic,
            "train_sensitivity": train_sen,
            "train_specificity": train_spe,
            **_training_fit(y_train, train_fused),
            "seed": seed,
            "unusable_test_views": int((~data.usable[test_rows]).sum()),
            "unscored_test_patients": len(unscored),
            "test_flags": _flag_counts(data.flags[r] for r in test_rows),
        }
        if oof is not None:
            info.update(
                inner_folds=oof[1], oof_sensitivity=choice.sensitivity,
                oof_specificity=choice.specificity,
                thresholds_by_rule=(by_rule := _every_rule(y_train, train_fused, oof_fused)),
                train_rates_by_rule={
                    rule: dict(zip(("sen", "spe"), rates_at(y_train, train_fused, t), strict=True))
                    for rule, t in by_rule.items()
                },
            )  # fmt: skip
        return RunResult(
            model=spec.model,
            kind=spec.kind,
            split=spec.split,
            patient_ids=[data.patient_ids[p] for p in patients],
            labels=[int(data.labels[p]) for p in patients],
            probabilities=[float(v) for v in prob],
            history=history,
            info=info,
        )

    def _baseline(self, spec: RunSpec) -> RunResult:
        """A classical observer: its template (CHO) and its threshold fitted on the training
        patients' features."""
        split = self.splits[spec.split]
        labels, features = cohort_features(self.cohort_dir, spec.model)
        y_train = np.array([labels[p] for p in split.train])
        score = fit_observer(spec.model, [features[p] for p in split.train], y_train)
        train_scores = score([features[p] for p in split.train])
        threshold = choose_threshold(y_train, train_scores).threshold
        test_scores = score([features[p] for p in split.test])
        result = RunResult(
            model=spec.model,
            kind=spec.kind,
            split=spec.split,
            patient_ids=list(split.test),
            labels=[labels[p] for p in split.test],
            probabilities=[float(v) for v in test_scores],
            info={
                "threshold": threshold,
                "operating_point": "train-youden",
                "threshold_rule": BASELINE_THRESHOLD_RULE,
                "optimistic": False,
            },
        )
        if self.config.test_cohort:
            ext_labels, ext_features = cohort_features(self.config.test_cohort, spec.model)
            ids = sorted(ext_labels)
            result.external = {
                "patient_ids": ids,
                "labels": [ext_labels[p] for p in ids],
                "probabilities": [float(v) for v in score([ext_features[p] for p in ids])],
                "unscored": 0,
            }
        return result

    # --- the external test cohort ---------------------------------------------------------------

    def _external_features(self, model: str):
        """Frozen-backbone features of the external cohort's usable views ('head' mode)."""
        external = self.inputs(model, self.config.test_cohort)
        x = self._x_all(model, self.config.test_cohort)
        _, feats = cnn.frozen_features(self.train_config(model, 0), x)
        return feats[np.flatnonzero(external.usable)]

    def _external(self, external: CohortInputs, view_prob) -> dict:
        """The external cohort's fused probabilities under one run's model."""
        patients = external.patient_ids
        rows = external.rows_of(patients)
        usable = external.usable[rows]
        full = np.full(len(rows), np.nan)
        full[usable] = view_prob
        scored, prob, unscored = fuse_by_patient(
            full, external.view_patient[rows], [external.views[r] for r in rows], usable,
            self.config.view_fusion,
        )  # fmt: skip
        return {
            "patient_ids": [patients[p] for p in scored],
            "labels": [int(external.labels[p]) for p in scored],
            "probabilities": [float(v) for v in prob],
            "unscored": len(unscored),
        }


def _every_rule(y_train, train_fused, oof_fused) -> dict[str, float]:
    """The threshold each operating point would give on these training predictions (for the
    report's comparison of rules on the same models)."""
    return {
        text: operating_threshold(
            parse_operating_point(text), y_train, train_fused, oof_fused
        ).threshold
        for text in OPERATING_POINTS
    }


def _training_fit(y_train, train_fused) -> dict:
    """How well the model fits its own training patients: their AUC (1 when memorised) and
    the highest negative and lowest positive probability (the ends of the gap `train-youden`
    puts its threshold in, midway, when the training patients are separated)."""
    y = np.asarray(y_train).astype(bool)
    return {
        "train_auc": roc_auc(y, train_fused),
        "train_max_negative": float(train_fused[~y].max()),
        "train_min_positive": float(train_fused[y].min()),
    }


def _flag_counts(flag_sets) -> dict[str, int]:
    """How many views carry each preprocessing flag (every flag name, as the pipeline set it)."""
    counts: dict[str, int] = {}
    for flags in flag_sets:
        for flag in flags:
            counts[flag] = counts.get(flag, 0) + 1
    return dict(sorted(counts.items()))
