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
