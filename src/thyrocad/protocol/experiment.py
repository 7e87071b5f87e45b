"""The paper's experiment: every (model, split) run on the same patient-level splits, then the
table, statistics, figures and report.

Protocol. Patients are split with `stratified_splits` (same splits for every model, so results
are paired). Both views of a training patient are training images carrying the patient's label;
a test patient's probability fuses its views' probabilities (`view_fusion`: mean, max, anterior
or posterior). Metrics are per patient. A CNN calls a patient residual when its probability is
>= a threshold chosen on its own training patients (Youden's J on their fused probabilities),
a baseline likewise on its scores; no test patient influences a threshold.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import thyrocad
from thyrocad.atomic import atomic_writer
from thyrocad.errors import ExperimentError, WeightsError
from thyrocad.protocol.execute import Backend, configure_threads, execute_runs
from thyrocad.protocol.runs import (
    RunRegistry,
    RunResult,
    RunSpec,
    canonical_json,
    write_atomic,
)
from thyrocad.protocol.splits import Split, stratified_splits

logger = logging.getLogger(__name__)

DEFAULT_MODELS = ("resnet18", "squeezenet1_1", "shufflenet_v2_x1_0", "efficientnet_lite0")
BASELINES = ("uptake_ratio",)
VIEW_FUSIONS = ("mean", "max", "anterior", "posterior")
MODES = ("head", "full", "last")
INITS = ("imagenet", "scratch", "imagenet-or-scratch")
THRESHOLD_RULE = "Youden on the training patients (fused training-image probabilities)"
BASELINE_THRESHOLD_RULE = "Youden on the training patients' scores (the observer's own rule)"
SETTINGS_VERSION = 2  # 2: head-mode runs of a model train together (head_group)


@dataclass(frozen=True)
class ExperimentConfig:
    """Every setting that changes results (execution backend settings do not)."""

    models: tuple[str, ...] = DEFAULT_MODELS
    baselines: tuple[str, ...] = BASELINES
    n_splits: int = 10
    test_fraction: float = 0.25
    epochs: int = 80
    mode: str = "head"
    reference: str = "resnet18"
    seed: int = 0
    view_fusion: str = "mean"
    batch_size: int = 32
    lr: float = 1e-5
    weight_decay: float = 1e-5
    preprocess: str = "default"  # a thyrocad.preprocess preset name
    init: str = "imagenet"  # imagenet | scratch | imagenet-or-scratch (scratch where missing)
    device: str = "cpu"  # training device (auto | cpu | cuda); part of the settings

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.view_fusion not in VIEW_FUSIONS:
            problems.append(f"view fusion must be one of {VIEW_FUSIONS}, got {self.view_fusion!r}")
        if self.init not in INITS:
            problems.append(f"init must be one of {INITS}, got {self.init!r}")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            problems.append(f"unknown baseline(s) {unknown}; known: {list(BASELINES)}")
        if self.reference not in (*self.models, *self.baselines):
            problems.append(f"reference {self.reference!r} is not among the models or baselines")
        if not self.models and not self.baselines:
            problems.append("give at least one model or baseline")
        if self.n_splits < 1 or self.epochs < 1 or self.batch_size < 1:
            problems.append("splits, epochs and batch size must be >= 1")
        if len(set(self.models)) != len(self.models):
            problems.append("a model is listed twice")
        if problems:
            raise ExperimentError("invalid experiment settings: " + "; ".join(problems))


# --- cohort inputs (loaded once per process) ---------------------------------------------------


@dataclass(frozen=True)
class CohortInputs:
    """The preprocessed cohort: one 8-bit network image per view, in patient order.

    `images8[v]` is the pipeline's resized, segmented 8-bit image of view `v`, from which each
    backbone's float input is made with that backbone's mean/std (`network_inputs`).
    """

    patient_ids: tuple[str, ...]
    labels: np.ndarray  # (P,) 1 = residual
    view_patient: np.ndarray  # (V,) index into patient_ids
    views: tuple[str, ...]  # (V,) View values
    images8: np.ndarray  # (V, H, W) uint8
    flags: tuple[tuple[str, ...], ...]  # (V,) preprocessing flags

    def rows_of(self, patient_ids: Sequence[str]) -> np.ndarray:
        """View rows of the given patients, in view order."""
        index = {p: i for i, p in enumerate(self.patient_ids)}
        wanted = np.zeros(len(self.patient_ids), dtype=bool)
        wanted[[index[p] for p in patient_ids]] = True
        return np.flatnonzero(wanted[self.view_patient])

    def network_inputs(
        self, rows: np.ndarray, mean: Sequence[float], std: Sequence[float]
    ) -> np.ndarray:
        """float32 (n, 3, H, W) inputs of `rows` normalised with a backbone's mean/std."""
        from thyrocad.preprocess.config import OutputConfig
        from thyrocad.preprocess.steps import to_network_input

        h, w = self.images8.shape[1:]
        cfg = OutputConfig(size=(h, w), mean=tuple(mean), std=tuple(std))
        return np.stack([to_network_input(self.images8[r], cfg) for r in rows])


def _image8_from_input(network_input: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Invert the pipeline's last step: the 8-bit image behind channel 0 of a network input."""
    unit = network_input[0].astype(np.float64) * std + mean
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=2)
def load_inputs(cohort_dir: str, pipeline_json: str) -> CohortInputs:
    """The preprocessed cohort, from its compact disk copy or built (and stored) on a miss.

    The copy (`$THYROCAD_HOME/cache/inputs/<key>.npz`, 8-bit images, ~45 MB for 892 views) is
    keyed by the cohort data hash, the pipeline config hash, the OpenCV and thyrocad versions
    and the preprocessing code digest, so a worker process loads it in a fraction of a second.
    """
    import cv2

    from thyrocad.cohort import load_cohort
    from thyrocad.paths import thyrocad_home
    from thyrocad.preprocess import PipelineConfig
    from thyrocad.preprocess.cache import code_digest

    cohort = load_cohort(cohort_dir, read=False)
    config = PipelineConfig.from_json(pipeline_json)
    key = canonical_json(
        [
            cohort.data_hash(),
            config.config_hash(),
            cv2.__version__,
            thyrocad.__version__,
            code_digest(),
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    path = thyrocad_home() / "cache" / "inputs" / f"{digest}.npz"
    if path.is_file():
        try:
            return _read_inputs(path)
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("unreadable inputs cache %s (%s); rebuilding", path.name, exc)
    inputs = _build_inputs(cohort, config)
    _write_inputs(path, inputs)
    return inputs


def _build_inputs(cohort, config) -> CohortInputs:
    """Every view through the pipeline (itself disk-cached per view), kept as 8-bit images."""
    from thyrocad.preprocess import Pipeline, PreprocessCache

    pipeline, cache = Pipeline(config), PreprocessCache()
    mean, std = config.output.mean[0], config.output.std[0]
    view_patient, views, images, flags = [], [], [], []
    for i, patient in enumerate(cohort.patients):
        study = patient.load_study()
        for image in study.images:
            out = cache.get_or_compute(pipeline, image.counts, study.pixel_spacing_mm)
            view_patient.append(i)
            views.append(image.view.value)
            images.append(_image8_from_input(out.network_input, mean, std))
            flags.append(tuple(out.flags))
    logger.info("preprocessed %d views of %d patients", len(views), len(cohort.patients))
    return CohortInputs(
        patient_ids=tuple(cohort.patient_ids),
        labels=cohort.labels,
        view_patient=np.asarray(view_patient),
        views=tuple(views),
        images8=np.stack(images),
        flags=tuple(flags),
    )


def _write_inputs(path: Path, inputs: CohortInputs) -> None:
    with atomic_writer(path) as fh:
        np.savez(
            fh,
            patient_ids=np.array(inputs.patient_ids),
            labels=inputs.labels,
            view_patient=inputs.view_patient,
            views=np.array(inputs.views),
            images8=inputs.images8,
            flags=np.array(json.dumps(inputs.flags)),
        )


def _read_inputs(path: Path) -> CohortInputs:
    with np.load(path, allow_pickle=False) as data:
        return CohortInputs(
            patient_ids=tuple(data["patient_ids"].tolist()),
            labels=data["labels"],
            view_patient=data["view_patient"],
            views=tuple(data["views"].tolist()),
            images8=data["images8"],
            flags=tuple(tuple(f) for f in json.loads(str(data["flags"]))),
        )


@functools.lru_cache(maxsize=1)
def model_inputs(cohort_dir: str, pipeline_json: str, model: str) -> np.ndarray:
    """float32 (V, 3, H, W) inputs of every view for `model` (its mean/std), once per process;
    runs are grouped by model, so one array is kept at a time."""
    from thyrocad.models import architecture

    data = load_inputs(cohort_dir, pipeline_json)
    spec = architecture(model).spec
    return data.network_inputs(np.arange(len(data.views)), spec.mean, spec.std)


@functools.lru_cache(maxsize=2)
def baseline_scores(cohort_dir: str, name: str) -> tuple[dict[str, int], dict[str, float]]:
    """(label, score) of every patient under baseline `name`: computed once per cohort and code
    version (kept in `$THYROCAD_HOME/cache/baselines`), read once per process.

    A baseline's score does not depend on training data; only its threshold is fitted per split.
    """
    import importlib

    from thyrocad import landmarks, result_cache
    from thyrocad.baselines import UptakeRatioObserver
    from thyrocad.cohort import load_cohort

    if name != "uptake_ratio":
        raise ExperimentError(f"unknown baseline {name!r}; known: {list(BASELINES)}")
    cohort = load_cohort(cohort_dir, read=False)
    labels = {p.patient_id: int(p.label) for p in cohort.patients}
    observer_module = importlib.import_module("thyrocad.baselines.uptake_ratio")
    code = result_cache.source_digest(observer_module, landmarks)
    path = result_cache.entry_path("baselines", name, cohort.data_hash(), code)
    scores = result_cache.load(path)
    if not isinstance(scores, dict) or set(scores) != set(labels):
        observer = UptakeRatioObserver()
        scores = {p.patient_id: float(observer.score([p.load_study()])[0]) for p in cohort.patients}
        result_cache.store(path, scores)
    return labels, scores


def feature_cache():
    """This process's backbone-feature cache (memory + disk under $THYROCAD_HOME)."""
    from thyrocad.paths import thyrocad_home

    return _feature_cache_at(str(thyrocad_home() / "cache" / "features"))


@functools.lru_cache(maxsize=2)
def _feature_cache_at(directory: str):
    from thyrocad.training import FeatureCache

    return FeatureCache(Path(directory))


def cached_features(backbone, model: str, fingerprint: str, images, cfg) -> Any:
    """Backbone features of `images` through this process's cache, keyed as the engine keys
    them (model, frozen-weights fingerprint, device, precision), so both share entries."""
    from thyrocad.training.feature_cache import backbone_key
    from thyrocad.training.runtime import resolve_device

    device = resolve_device(cfg.device)
    key = backbone_key(model, fingerprint, device, cfg.bf16)
    return feature_cache().features(
        backbone.to(device), images, key, device, cfg.batch_size, cfg.bf16
    )


def predict_proba(fitted, x: np.ndarray) -> np.ndarray:
    """P(residual) of each image under a `TrainResult`'s model (cached features in head mode)."""
    import torch

    from thyrocad.models import split_model

    cfg, model = fitted.config, fitted.model.eval()
    images = torch.from_numpy(x)
    parts = split_model(model)
    with torch.no_grad():
        if cfg.mode == "head" and cfg.cache_features:
            feats = cached_features(
                parts.backbone, cfg.model, fitted.backbone_fingerprint, images, cfg
            )
            logits = parts.head.cpu()(feats)
        else:
            logits = torch.cat([model(b) for b in images.split(cfg.batch_size)])
    return logits.softmax(1)[:, 1].numpy()


def _history_series(history) -> dict[str, list[float]]:
    """Per-epoch series (train/val loss and accuracy) from the engine's `EpochRecord`s."""
    out = {}
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        values = [getattr(r, key) for r in history]
        if values and all(v is not None for v in values):
            out[key] = [float(v) for v in values]
    return out


def fuse_views(
    view_prob: np.ndarray, view_patient: np.ndarray, views: Sequence[str], fusion: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-patient probabilities from per-view ones: (patient indices ascending, probabilities)."""
    patients = np.unique(view_patient)
    out = np.empty(len(patients))
    for k, p in enumerate(patients):
        mine = view_patient == p
        if fusion in ("anterior", "posterior"):
            mine &= np.asarray(views) == fusion
            if mine.sum() != 1:
                raise ExperimentError(
                    f"view fusion {fusion!r} needs exactly one {fusion} view per patient; "
                    "use --view-fusion mean"
                )
        values = view_prob[mine]
        out[k] = values.max() if fusion == "max" else values.mean()
    return patients, out


# --- one run -----------------------------------------------------------------------------------


def _same_size_groups(runs) -> list[list[int]]:
    """Indices of `runs` grouped by their number of training rows, in order of first
    appearance (runs of one group train together)."""
    groups: dict[int, list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(len(run.rows), []).append(i)
    return list(groups.values())


def _run_seed(seed: int, split: int) -> int:
    """The training seed of a split: shared by every model on that split."""
    return int(np.random.SeedSequence([seed, split]).generate_state(1)[0])


@dataclass(frozen=True)
class ExperimentRun:
    """The picklable run function `RunSpec -> RunResult` of one experiment."""

    cohort_dir: str
    pipeline_json: str
    config: ExperimentConfig
    splits: tuple[Split, ...]
    inits: dict[str, str] = field(default_factory=dict)  # model -> "imagenet" | "scratch"
    cache_home: str = ""  # the driver's $THYROCAD_HOME, so workers share its caches

    def __call__(self, task: tuple[RunSpec, ...]) -> list[RunResult]:
        """The results of a task: one run, or in 'head' mode every split of one CNN at once.

        A run's `wall_s` is its task's wall time divided by the task's runs."""
        if self.cache_home:
            os.environ["THYROCAD_HOME"] = self.cache_home
        start = time.perf_counter()
        if task[0].kind == "model" and self.config.mode == "head":
            results = self._head_group(task)
        elif task[0].kind == "model":
            results = [self._model(spec) for spec in task]
        else:
            results = [self._baseline(spec) for spec in task]
        share = (time.perf_counter() - start) / len(results)
        for result in results:
            result.info["n_train_patients"] = len(self.splits[result.split].train)
            result.wall_s = share
        return results

    def _model(self, spec: RunSpec) -> RunResult:
        """One run through the training engine (`thyrocad.training.train`)."""
        from thyrocad.training import TrainData, train

        data = load_inputs(self.cohort_dir, self.pipeline_json)
        x_all = model_inputs(self.cohort_dir, self.pipeline_json, spec.model)
        split = self.splits[spec.split]
        train_rows, test_rows = data.rows_of(split.train), data.rows_of(split.test)
        cfg = self.train_config(spec.model, spec.split)
        train_data = TrainData.build(
            x_all[train_rows],
            data.labels[data.view_patient[train_rows]],
            [data.patient_ids[p] for p in data.view_patient[train_rows]],
        )
        fitted = train(train_data, cfg, cache=feature_cache())
        test_prob = predict_proba(fitted, x_all[test_rows])
        return self._result(spec, data, fitted.train_prob, test_prob, fitted.history, cfg.seed)

    def _head_group(self, task: tuple[RunSpec, ...]) -> list[RunResult]:
        """Every split of one CNN in 'head' mode: the heads trained together on the cached
        features (`thyrocad.training.head_group`), each from the head `train` would start
        from (the weights' own head, or a new one drawn after seeding with the run's seed).
        A head that is not dropout + one affine map is trained split by split instead."""
        import torch

        from thyrocad.models import architecture, model_info, split_model
        from thyrocad.training.head_group import HeadRun, affine_head, train_heads

        model = task[0].model
        net, feats = self._frozen_features(model)
        data = load_inputs(self.cohort_dir, self.pipeline_json)
        runs = []
        for spec in task:
            seed = self.train_config(model, spec.split).seed
            if not model_info(net).head_from_weights:
                with torch.random.fork_rng():
                    torch.manual_seed(seed)
                    architecture(model).replace_head(net, model_info(net).num_classes)
            head = affine_head(split_model(net).head, feats.shape[1:])
            if head is None:
                return [self._model(spec) for spec in task]
            runs.append(HeadRun(data.rows_of(self.splits[spec.split].train), seed, head))
        labels = torch.as_tensor(data.labels[data.view_patient], dtype=torch.int64)
        fits = {}
        for members in _same_size_groups(runs):
            trained = train_heads(
                feats, labels, [runs[i] for i in members], epochs=self.config.epochs,
                batch_size=self.config.batch_size, lr=self.config.lr,
                weight_decay=self.config.weight_decay,
            )  # fmt: skip
            fits.update(zip(members, trained, strict=True))
        results = []
        for i, (spec, run) in enumerate(zip(task, runs, strict=True)):
            test_rows = data.rows_of(self.splits[spec.split].test)
            train_prob = fits[i].probabilities(feats[run.rows])
            test_prob = fits[i].probabilities(feats[test_rows])
            results.append(
                self._result(spec, data, train_prob, test_prob, fits[i].history, run.seed)
            )
        return results

    def _result(
        self, spec: RunSpec, data: CohortInputs, train_prob, test_prob, history, seed: int
    ) -> RunResult:
        """A CNN run's result from its view probabilities: fused per patient, thresholded
        on its training patients."""
        from thyrocad.metrics import choose_threshold

        split = self.splits[spec.split]
        patients, prob = self._fuse(data, data.rows_of(split.test), test_prob)
        train_patients, train_fused = self._fuse(data, data.rows_of(split.train), train_prob)
        threshold = choose_threshold(data.labels[train_patients], train_fused).threshold
        return RunResult(
            model=spec.model,
            kind=spec.kind,
            split=spec.split,
            patient_ids=[data.patient_ids[p] for p in patients],
            labels=[int(data.labels[p]) for p in patients],
            probabilities=[float(v) for v in prob],
            history=_history_series(history),
            info={"threshold": float(threshold), "threshold_rule": THRESHOLD_RULE, "seed": seed},
        )

    def train_config(self, model: str, split: int):
        """The engine's TrainConfig of one run."""
        from thyrocad.training import TrainConfig

        return TrainConfig(
            model=model,
            weights=self._weights(model),
            mode=self.config.mode,
            epochs=self.config.epochs,
            lr=self.config.lr,
            weight_decay=self.config.weight_decay,
            batch_size=self.config.batch_size,
            seed=_run_seed(self.config.seed, split),
            device=self.config.device,
        )

    def warm_features(self, model: str) -> None:
        """Pass every view through `model`'s frozen backbone once ('head' mode), so that
        runs in worker processes read the features from the disk cache instead of each
        computing them."""
        cfg = self.train_config(model, 0)
        if cfg.mode == "head" and cfg.cache_features:
            self._frozen_features(model)

    def _frozen_features(self, model: str):
        """(network, backbone features of every view) of `model` with its initial weights,
        through the feature cache, keyed as the training engine keys them."""
        import torch

        from thyrocad.models import architecture, create_model, split_model, state_fingerprint

        cfg = self.train_config(model, 0)
        net = create_model(model, weights=cfg.weights).eval()
        fingerprint = state_fingerprint(net, exclude_prefix=architecture(model).spec.head_prefix)
        images = torch.from_numpy(model_inputs(self.cohort_dir, self.pipeline_json, model))
        with torch.no_grad():
            return net, cached_features(split_model(net).backbone, model, fingerprint, images, cfg)

    def _weights(self, model: str) -> str:
        """TrainConfig.weights: "imagenet", or the fixed random initialisation file (scratch)."""
        init = self.inits.get(model, "imagenet")
        if init == "scratch":
            return str(scratch_weights(model, self.config.seed))
        return init

    def _fuse(
        self, data: CohortInputs, rows: np.ndarray, view_prob: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return fuse_views(
            np.asarray(view_prob, dtype=np.float64),
            data.view_patient[rows],
            [data.views[r] for r in rows],
            self.config.view_fusion,
        )

    def _baseline(self, spec: RunSpec) -> RunResult:
        from thyrocad.baselines.uptake_ratio import youden_threshold

        split = self.splits[spec.split]
        labels, scores = baseline_scores(self.cohort_dir, spec.model)
        y_train = np.array([labels[p] for p in split.train])
        threshold = youden_threshold(np.array([scores[p] for p in split.train]), y_train)
        return RunResult(
            model=spec.model,
            kind=spec.kind,
            split=spec.split,
            patient_ids=list(split.test),
            labels=[labels[p] for p in split.test],
            probabilities=[scores[p] for p in split.test],
            info={"threshold": float(threshold), "threshold_rule": BASELINE_THRESHOLD_RULE},
        )


# --- planning and running the whole experiment -------------------------------------------------


@dataclass
class ExperimentPlan:
    """What will run, decided before anything is trained."""

    cohort_dir: Path
    config: ExperimentConfig
    data_hash: str
    pipeline_json: str
    splits: tuple[Split, ...]
    entries: list  # list[thyrocad.report.ModelEntry]
    inits: dict[str, str]
    settings: dict[str, Any]

    @property
    def specs(self) -> list[RunSpec]:
        """Runs grouped by model (warm caches), then by split."""
        return [spec for task in self.tasks for spec in task]

    @property
    def tasks(self) -> list[tuple[RunSpec, ...]]:
        """Units of work: in 'head' mode all splits of a CNN form one task (their heads train
        together); every other run is a task of its own. Always the same tasks for the same
        settings, so a resumed experiment recomputes a task exactly as before."""
        tasks: list[tuple[RunSpec, ...]] = []
        for e in (e for e in self.entries if e.ran):
            specs = tuple(RunSpec(e.name, e.kind, s.index) for s in self.splits)
            if e.kind == "model" and self.config.mode == "head":
                tasks.append(specs)
            else:
                tasks.extend((spec,) for spec in specs)
        return tasks

    def run_function(self) -> ExperimentRun:
        from thyrocad.paths import thyrocad_home

        return ExperimentRun(
            str(self.cohort_dir),
            self.pipeline_json,
            self.config,
            self.splits,
            self.inits,
            str(thyrocad_home().absolute()),
        )


def scratch_weights(model: str, seed: int) -> Path:
    """A random initialisation of `model` drawn once with `seed`, saved under $THYROCAD_HOME.

    Every split of an experiment starts from this same file, so a frozen random backbone
    ('head' mode) gives the same features on every split and its feature cache is reused.
    """
    import torch

    from thyrocad.models import create_model
    from thyrocad.paths import thyrocad_home

    path = thyrocad_home() / "cache" / "init" / f"{model}-seed{seed}-torch{torch.__version__}.pt"
    if not path.is_file():
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            state = create_model(model, weights="none").state_dict()
        with atomic_writer(path) as fh:
            torch.save(state, fh)
    return path


def _resolve_model(name: str, init: str, mode: str, seed: int):
    """(ModelEntry, init) of a backbone, init "imagenet" or "scratch"; loads its weights once."""
    from thyrocad.models import create_model, model_info
    from thyrocad.report import ModelEntry

    scratch = f"scratch (random initialisation, seed {seed})"
    if init == "scratch":
        return ModelEntry(name, "model", scratch, mode), "scratch"
    try:
        source = model_info(create_model(name, weights="imagenet")).weights
    except WeightsError as exc:
        if init == "imagenet-or-scratch":
            label = f"{scratch}, ImageNet weights unavailable"
            return ModelEntry(name, "model", label, mode, reason=str(exc)), "scratch"
        return ModelEntry(name, "model", "ImageNet", mode, "unavailable", str(exc)), "imagenet"
    return ModelEntry(name, "model", f"ImageNet ({source.kind})", mode), "imagenet"


def plan_experiment(cohort_dir: Path | str, config: ExperimentConfig) -> ExperimentPlan:
    """Validate the cohort, draw the splits, resolve each model's weights, fix the settings."""
    from thyrocad.cohort import load_cohort
    from thyrocad.models.registry import architecture
    from thyrocad.preprocess import preset
    from thyrocad.report import ModelEntry

    for name in config.models:
        architecture(name)  # unknown names fail here, with the list of known ones
    cohort = load_cohort(cohort_dir)
    splits = tuple(
        stratified_splits(
            cohort.patient_ids, cohort.labels, config.n_splits, config.test_fraction, config.seed
        )
    )
    pipeline_config = preset(config.preprocess)
    entries, inits = [], {}
    for name in config.models:
        entry, inits[name] = _resolve_model(name, config.init, config.mode, config.seed)
        entries.append(entry)
    for name in config.baselines:
        entries.append(ModelEntry(name, "baseline", "n/a (no network)", "n/a"))
    settings = {
        "settings_version": SETTINGS_VERSION,
        "thyrocad_version": thyrocad.__version__,
        "cohort_data_hash": cohort.data_hash(),
        "preprocess": pipeline_config.to_dict(),
        "experiment": dataclasses.asdict(config),
        "models": [{"name": e.name, "kind": e.kind, "status": e.status} for e in entries],
        "inits": inits,
        "splits": [{"index": s.index, "seed": s.seed, "test": list(s.test)} for s in splits],
    }
    return ExperimentPlan(
        cohort_dir=Path(cohort_dir).absolute(),
        config=config,
        data_hash=cohort.data_hash(),
        pipeline_json=pipeline_config.to_json(),
        splits=splits,
        entries=entries,
        inits=inits,
        settings=settings,
    )


@dataclass
class ExperimentOutcome:
    """What `run_experiment` produced."""

    out_dir: Path
    settings_hash: str
    aggregate: Any  # thyrocad.report.Aggregate
    table_markdown: str
    n_runs: int
    n_resumed: int
    wall_s: float


def write_splits(path: Path, splits: Sequence[Split]) -> None:
    """splits.json: seed and sorted train/test patient lists of every split."""
    data = [dataclasses.asdict(s) for s in splits]
    write_atomic(path, json.dumps(data, indent=1))


def run_experiment(
    cohort_dir: Path | str,
    out_dir: Path | str,
    config: ExperimentConfig,
    backend: Backend | None = None,
    command: str = "",
    on_plan: Callable[[ExperimentPlan, int], None] | None = None,
    on_start: Callable[[RunSpec], None] | None = None,
    on_done: Callable[[RunResult], None] | None = None,
) -> ExperimentOutcome:
    """Run (or resume) the experiment and write every output into `out_dir`.

    `on_plan(plan, n_already_done)` is called once the runs are known, before any training.
    """
    from thyrocad.provenance import library_versions, machine_description
    from thyrocad.report import ReportContext, table_markdown, write_outputs

    start = time.perf_counter()
    backend = backend or Backend()
    if config.mode == "head" and backend.threads_per_run is None:
        # A run then trains only a small head on cached features: tiny tensor operations, for
        # which extra threads cost more in synchronisation than they gain. Cores are better
        # used by running runs side by side (--workers).
        backend = dataclasses.replace(backend, threads_per_run=1)
    out = Path(out_dir)
    plan = plan_experiment(cohort_dir, config)
    registry = RunRegistry(out, plan.settings)
    specs = plan.specs
    n_done = len(specs) - len(registry.pending(specs))
    write_splits(out / "splits.json", plan.splits)
    if on_plan:
        on_plan(plan, n_done)
    run_fn = plan.run_function()
    configure_threads(os.cpu_count() or 1)  # backbone passes over the whole cohort: all cores
    pending = registry.pending(specs)
    if any(s.kind == "model" for s in pending):
        load_inputs(run_fn.cohort_dir, run_fn.pipeline_json)  # here, not in each worker at once
    for model in dict.fromkeys(s.model for s in pending if s.kind == "model"):
        run_fn.warm_features(model)  # 'head' mode: frozen features, computed once
    for name in dict.fromkeys(s.model for s in pending if s.kind == "baseline"):
        baseline_scores(str(plan.cohort_dir), name)  # once, here, for every worker to read
    execute_runs(plan.tasks, run_fn, registry, backend, on_start, on_done)
    results = [registry.load(s) for s in specs]
    wall = {"this invocation (s)": time.perf_counter() - start}
    for entry in plan.entries:
        if entry.ran:
            wall[f"{entry.name}: sum of run times (s)"] = sum(
                r.wall_s for r in results if r.model == entry.name
            )
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
    logger.info("experiment %s: %d runs (%d resumed)", registry.hash, len(specs), n_done)
    return ExperimentOutcome(
        out_dir=out,
        settings_hash=registry.hash,
        aggregate=agg,
        table_markdown=table_markdown(agg),
        n_runs=len(specs),
        n_resumed=n_done,
        wall_s=wall["this invocation (s)"],
    )


def experiment_command(
    cohort_dir: Path | str, out_dir: Path | str, config: ExperimentConfig
) -> str:
    """The `thyrocad experiment` command line that reproduces `config` (every setting explicit)."""
    args = [
        "thyrocad",
        "experiment",
        str(Path(cohort_dir).absolute()),
        "--out",
        str(Path(out_dir).absolute()),
        "--models",
        ",".join(config.models) or "none",
        "--baselines",
        ",".join(config.baselines) or "none",
        "--splits",
        str(config.n_splits),
        "--test-fraction",
        repr(config.test_fraction),
        "--epochs",
        str(config.epochs),
        "--mode",
        config.mode,
        "--reference",
        config.reference,
        "--seed",
        str(config.seed),
        "--view-fusion",
        config.view_fusion,
        "--init",
        config.init,
        "--preprocess",
        config.preprocess,
        "--batch-size",
        str(config.batch_size),
        "--lr",
        repr(config.lr),
        "--weight-decay",
        repr(config.weight_decay),
        "--device",
        config.device,
    ]
    return shlex.join(args)
