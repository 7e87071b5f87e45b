"""The one decision rule of thyrocad: which views count, how views make a patient, the threshold.

Used alike by the experiment (Table 4), by training (a bundle's threshold) and by diagnosis
(`predict`, the web app, the DICOM node), so that what is evaluated is what is shipped:

- **View usability.** A view whose crop is blank or flat (`UNUSABLE_FLAGS`) carries no counts
  worth classifying: it is left out of its patient's probability, and out of training.
- **View fusion** (`VIEW_FUSIONS`): a patient's probability from its usable views' ones: their
  mean (default), their maximum, or one named view's (`anterior` / `posterior`, falling back
  to the mean, flagged, when the patient has not exactly one usable view of that name).
- **Threshold rules** (`THRESHOLD_RULES`): a patient is called residual when its probability is
  `>= threshold`; `choose_threshold` picks a threshold on scores by Youden's J or for a target
  sensitivity. `ARGMAX_THRESHOLD` is the network's own argmax (the paper's rule).
- **Operating points** (`parse_operating_point`, `operating_threshold`): where a threshold comes
  from: `argmax` (p >= 0.5), `oof-youden` / `oof-sensitivity:T` (a rule applied to out-of-fold
  predictions of an inner k-fold over the training patients), `train-youden` (Youden on the
  training patients' own predictions: optimistic, kept for comparison). `indeterminate_band`
  is the bootstrap band of an out-of-fold threshold.

Positive = label 1 = residual.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from thyrocad.errors import ConfigError, StatisticsError
from thyrocad.preprocess import Flag

logger = logging.getLogger(__name__)

UNUSABLE_FLAGS = frozenset({Flag.BLANK.value, Flag.FLAT.value})
VIEW_FUSIONS = ("mean", "max", "anterior", "posterior")
FELL_BACK_TO_MEAN = "fusion_fell_back_to_mean"
THRESHOLD_RULES = ("youden", "sensitivity")
ARGMAX_THRESHOLD = 0.5
OPERATING_POINTS = ("argmax", "oof-youden", "oof-sensitivity:0.95", "train-youden")
DEFAULT_INNER_FOLDS = 5
BAND_RESAMPLES = 1000  # bootstrap resamples of the indeterminate band
BAND_LEVEL = 0.95


def view_usable(flags: Iterable[str]) -> bool:
    """Whether a view with these preprocessing flags is classified (no blank or flat crop)."""
    return not UNUSABLE_FLAGS.intersection(flags)


def check_fusion(fusion: str) -> str:
    """`fusion` if it is one of `VIEW_FUSIONS`, else a `ConfigError`."""
    if fusion not in VIEW_FUSIONS:
        raise ConfigError(f"view fusion must be one of {', '.join(VIEW_FUSIONS)}, got {fusion!r}")
    return fusion


def fuse(
    probabilities: Sequence[float], views: Sequence[str], fusion: str
) -> tuple[float, tuple[str, ...]]:
    """A patient's probability from its usable views (at least one), and flags about it."""
    prob = np.asarray(probabilities, dtype=np.float64)
    if prob.size == 0:
        raise ValueError("fuse needs at least one usable view")
    if fusion == "max":
        return float(prob.max()), ()
    if fusion in ("anterior", "posterior"):
        chosen = [p for p, v in zip(prob, views, strict=True) if v == fusion]
        if len(chosen) == 1:
            return float(chosen[0]), ()
        return float(prob.mean()), (FELL_BACK_TO_MEAN,)
    return float(prob.mean()), ()


def fuse_by_patient(
    view_prob: ArrayLike,
    view_patient: ArrayLike,
    views: Sequence[str],
    usable: ArrayLike,
    fusion: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`fuse` for many patients at once: (patient indices ascending, their probabilities,
    patient indices without any usable view, which get no probability)."""
    prob = np.asarray(view_prob, dtype=np.float64)
    patient = np.asarray(view_patient)
    keep = np.asarray(usable, dtype=bool)
    names = np.asarray(views)
    fused, scored, unscored = [], [], []
    for p in np.unique(patient):
        mine = (patient == p) & keep
        if not mine.any():
            unscored.append(p)
            continue
        fused.append(fuse(prob[mine], names[mine].tolist(), fusion)[0])
        scored.append(p)
    return np.asarray(scored, dtype=int), np.asarray(fused), np.asarray(unscored, dtype=int)


# --- labels and scores ------------------------------------------------------------------------


def as_binary_labels(y_true: ArrayLike) -> np.ndarray:
    """`y_true` as a 1-D bool array (True = positive); raises StatisticsError unless 0/1."""
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise StatisticsError(f"labels must be a non-empty 1-D sequence, got shape {y.shape}")
    if y.dtype == bool:
        return y
    try:
        yf = y.astype(np.float64)
    except (TypeError, ValueError):
        raise StatisticsError(
            f"labels must be 0 (negative) or 1 (positive), got dtype {y.dtype}"
        ) from None
    bad = sorted(set(np.unique(yf[(yf != 0) & (yf != 1)]).tolist()))
    if bad:
        raise StatisticsError(
            f"labels must be 0 (negative) or 1 (positive); found other values {bad[:5]}"
        )
    return yf == 1


def as_scores(scores: ArrayLike, n: int, name: str = "scores") -> np.ndarray:
    """`scores` as a finite float64 1-D array of length `n`; raises StatisticsError otherwise."""
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise StatisticsError(f"{name} must be numeric") from None
    if s.ndim != 1 or s.shape[0] != n:
        raise StatisticsError(f"{name} must be 1-D with one value per label ({n}), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise StatisticsError(
            f"{name} hold {int(np.sum(~np.isfinite(s)))} NaN/infinite value(s): fix the model "
            "output or drop those cases before computing statistics"
        )
    return s


# --- thresholds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold chosen on training data and what it achieved there."""

    threshold: float
    sensitivity: float
    specificity: float
    rule: str
    target: float | None = None


def _candidates(p: np.ndarray) -> np.ndarray:
    """The lowest score, then midpoints between consecutive distinct scores (ascending).

    Each candidate gives a different training confusion matrix; "everything negative" is left
    out. A midpoint that rounds onto the lower score is replaced by the upper one.
    """
    u = np.unique(p)
    mid = (u[:-1] + u[1:]) / 2.0
    mid = np.where(mid > u[:-1], mid, u[1:])
    return np.concatenate([u[:1], mid])


def choose_threshold(
    y_true: ArrayLike, prob: ArrayLike, rule: str = "youden", target: float = 0.95
) -> ThresholdChoice:
    """Pick a threshold on training scores (call positive when score >= threshold).

    Candidates: the lowest score and the midpoints between consecutive distinct scores.
    ``"youden"`` maximises sen + spe − 1; a tie goes to the higher sensitivity (missing a
    residual is the costlier error), which makes the choice unique. ``"sensitivity"`` takes the
    highest threshold whose sensitivity is >= `target`, i.e. the best specificity at that
    sensitivity. Needs both classes.
    """
    if rule not in THRESHOLD_RULES:
        raise ConfigError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    y = as_binary_labels(y_true)
    p = as_scores(prob, y.size, "prob")
    if y.all() or not y.any():
        raise StatisticsError(
            "choosing a threshold needs both classes in the training data "
            f"({int(y.sum())} positive(s), {int((~y).sum())} negative(s))"
        )
    cand = _candidates(p)
    called = p[None, :] >= cand[:, None]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    tp, tn = (called & y).sum(axis=1), (~called & ~y).sum(axis=1)
    sen, spe = tp / n_pos, tn / n_neg
    if rule == "youden":
        j = tp * n_neg + tn * n_pos  # (sen + spe) * n_pos * n_neg, exact in integers
        best = np.flatnonzero(j == j.max())
        i = int(best[np.argmax(tp[best])])
        tgt = None
    else:
        if not 0.0 < target <= 1.0:
            raise ConfigError(f"target sensitivity must lie in (0, 1], got {target}")
        i = int(np.flatnonzero(sen >= target)[-1])  # the lowest candidate always has sen = 1
        tgt = float(target)
    choice = ThresholdChoice(float(cand[i]), float(sen[i]), float(spe[i]), rule, tgt)
    logger.debug("choose_threshold: %s", choice)
    return choice


def rates_at(y_true: ArrayLike, prob: ArrayLike, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) of calling `prob >= threshold` positive; NaN for a class
    that is absent."""
    y = as_binary_labels(y_true)
    called = as_scores(prob, y.size, "prob") >= threshold
    sen = float((called & y).sum() / y.sum()) if y.any() else float("nan")
    spe = float((~called & ~y).sum() / (~y).sum()) if (~y).any() else float("nan")
    return sen, spe


# --- operating points -------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatingRule:
    """How a model's threshold is chosen (`parse_operating_point`).

    `source`: "argmax" (p >= 0.5), "out_of_fold" (`rule` on out-of-fold predictions of an
    inner k-fold over the training patients) or "training" (`rule` on the training patients'
    own predictions: optimistic when the model can memorise them)."""

    text: str
    source: str
    rule: str | None = None
    target: float | None = None

    @property
    def needs_oof(self) -> bool:
        return self.source == "out_of_fold"

    @property
    def optimistic(self) -> bool:
        return self.source == "training"

    def describe(self, k: int | None = None) -> str:
        """One line for reports."""
        if self.source == "argmax":
            return "argmax: residual when P(residual) >= 0.5 (class-balanced training)"
        what = "Youden's J" if self.rule == "youden" else f"sensitivity >= {self.target:g}"
        if self.needs_oof:
            folds = f"{k}-fold" if k else "k-fold"
            return (
                f"{what} on out-of-fold predictions of an inner stratified {folds} "
                "cross-validation over the training patients"
            )
        return f"{what} on the training patients' own predictions (optimistic)"


def describe_source(source: str) -> str:
    """One sentence on where a bundle's threshold was chosen (its `threshold.source`); one
    chosen on the training patients' own predictions is called optimistic."""
    if source == "out_of_fold":
        return "The operating point was chosen on out-of-fold predictions of the training data."
    if source == "argmax":
        return "The operating point is the network's argmax (p >= 0.5), not tuned on any data."
    return "The operating point was chosen on the training data (optimistic)."


def parse_operating_point(text: str) -> OperatingRule:
    """`argmax`, `oof-youden`, `oof-sensitivity:T` (0 < T <= 1) or `train-youden`."""
    name = text.strip().lower()
    if name == "argmax":
        return OperatingRule("argmax", "argmax")
    if name == "oof-youden":
        return OperatingRule(name, "out_of_fold", "youden")
    if name == "train-youden":
        return OperatingRule(name, "training", "youden")
    if name.startswith("oof-sensitivity:"):
        try:
            target = float(name.split(":", 1)[1])
        except ValueError:
            target = float("nan")
        if 0.0 < target <= 1.0:
            text = f"oof-sensitivity:{target:g}"
            return OperatingRule(text, "out_of_fold", "sensitivity", target)
    raise ConfigError(
        f"operating point must be one of argmax, oof-youden, oof-sensitivity:T (a sensitivity "
        f"in (0, 1], e.g. oof-sensitivity:0.95) or train-youden; got {text!r}"
    )


def operating_threshold(
    rule: OperatingRule,
    train_labels: ArrayLike,
    train_prob: ArrayLike,
    oof_prob: ArrayLike | None = None,
) -> ThresholdChoice:
    """The threshold of `rule` for one model. `oof_prob`: out-of-fold probabilities of the
    same training patients, in the same order (needed by the out-of-fold rules).

    The choice's sensitivity/specificity are measured where the threshold was chosen: the
    out-of-fold predictions for "out_of_fold", the training predictions otherwise."""
    if rule.source == "argmax":
        sen, spe = rates_at(train_labels, train_prob, ARGMAX_THRESHOLD)
        return ThresholdChoice(ARGMAX_THRESHOLD, sen, spe, "argmax")
    if rule.needs_oof:
        if oof_prob is None:
            raise ValueError(f"operating point {rule.text} needs out-of-fold probabilities")
        return choose_threshold(train_labels, oof_prob, rule.rule, rule.target or 0.95)
    return choose_threshold(train_labels, train_prob, rule.rule, rule.target or 0.95)


def indeterminate_band(
    y_true: ArrayLike,
    prob: ArrayLike,
    rule: OperatingRule,
    *,
    resamples: int = BAND_RESAMPLES,
    level: float = BAND_LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """The central `level` band of the threshold that `rule` chooses on class-stratified
    bootstrap resamples of (`y_true`, `prob`) (out-of-fold predictions): probabilities inside
    it could have been called either way by the same rule on another sample of patients.
    Widened, if need be, to contain the threshold chosen on the full sample."""
    y = as_binary_labels(y_true)
    p = as_scores(prob, y.size, "prob")
    chosen = choose_threshold(y, p, rule.rule or "youden", rule.target or 0.95).threshold
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    thresholds = np.empty(resamples)
    for b in range(resamples):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        thresholds[b] = choose_threshold(
            y[idx], p[idx], rule.rule or "youden", rule.target or 0.95
        ).threshold
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(thresholds, [tail, 1.0 - tail])
    return float(min(low, chosen)), float(max(high, chosen))
