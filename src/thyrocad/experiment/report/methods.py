"""A methods paragraph a researcher can paste, written from the run's own settings and results
(`methods.md` and a section of report.html). Every number comes from the settings set or the
recorded runs; nothing is typed in by hand."""

from __future__ import annotations

from typing import Any

from thyrocad.experiment.report.aggregate import Aggregate

_LIBRARIES = (
    "thyrocad", "python", "torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn",
    "opencv-python-headless",
)  # fmt: skip


def _preprocessing(pre: dict[str, Any]) -> str:
    steps = []
    crop = pre.get("crop", {})
    if crop.get("enabled"):
        how = (
            "at the thyroid bed found by an anatomical-landmark locator"
            if crop.get("use_landmarks")
            else "at a fixed position"
        )
        steps.append(f"cropped to {crop['width_mm']:g} × {crop['height_mm']:g} mm {how}")
    steps.append(_window(pre.get("window", {})))
    eq = pre.get("equalize", {})
    if eq.get("enabled"):
        steps.append(f"histogram-equalised ({eq.get('method')})")
    if pre.get("grabcut", {}).get("enabled"):
        steps.append(f"segmented with GrabCut ({pre['grabcut'].get('init')} initialisation)")
    size = pre.get("output", {}).get("size", [224, 224])
    steps.append(f"resized to {size[0]} × {size[1]} pixels")
    return ", ".join(steps)


def _window(window: dict[str, Any]) -> str:
    if window.get("reference") == "background":
        inner, outer = window.get("ring_mm", (35, 60))
        clip = (
            f"clipped at {window.get('clip_ratio'):g} times the median of the smoothed counts "
            f"in a {inner:g}-{outer:g} mm ring around the bed"
        )
    else:
        clip = f"clipped at the {window.get('clip_percentile', 100):g}th percentile"
    return f"windowed ({window.get('transform', 'linear')} transform, {clip}) to 8 bits"


def _paper_pipeline(exp: dict[str, Any], settings: dict[str, Any], cnns: list) -> str:
    """The preprocessing and training shared by the experiment's models (not its recipes)."""
    names = ", ".join(f"{e.name} ({e.short_initialisation})" for e in cnns)
    return (
        f"Each view was {_preprocessing(settings.get('preprocess', {}))} "
        f"(preset '{exp['preprocess']}'). Backbones: {names}; mode '{exp['mode']}' "
        + _mode_text(exp["mode"])
        + f". Training used Adam (learning rate {exp['lr']:g}, weight decay "
        f"{exp['weight_decay']:g}), batch size {exp['batch_size']}, {exp['epochs']} epochs, "
        "cross-entropy and class-balanced sampling with replacement (inverse class frequency)."
        + (_BATCHED if exp.get("batched_splits") and exp["mode"] != "head" else "")
    )


def _recipe(entry, recipe: dict[str, Any]) -> str:
    """One recipe row: its own preprocessing, model and training (`thyrocad.training.recipes`)."""
    train = recipe["train"]
    augment = [
        text
        for text, on in (
            ("random left-right flips", train.get("flip")),
            (f"random shifts of up to {train.get('shift_px')} pixels", train.get("shift_px")),
        )
        if on
    ]
    return (
        f"Recipe '{entry.name}' ({entry.short_initialisation}; mode '{train['mode']}' "
        f"{_mode_text(train['mode'])}): each view was {_preprocessing(recipe['pipeline'])}; "
        f"Adam (learning rate {train['lr']:g}, weight decay {train['weight_decay']:g}), batch "
        f"size {train['batch_size']}, {train['epochs']} epochs"
        + (f", {' and '.join(augment)}" if augment else "")
        + "."
    )


def methods_text(agg: Aggregate, settings: dict[str, Any], versions: dict[str, str]) -> str:
    """The paragraph (Markdown) for this experiment."""
    exp = settings["experiment"]
    cohort = settings.get("cohort", {})
    splits = settings.get("splits", [])
    n_test = len(splits[0]["test"]) if splits else 0
    n_patients = cohort.get("n_patients", 0)
    first = next(iter(agg.stats.get("per_split", {}).get("0", {}).values()), {})
    counts = first.get("n_test", {})
    points = agg.stats.get("operating_points", {})
    cnn_point = next(
        (points[e.name]["rule"] for e in agg.entries if e.kind == "model" and e.name in points),
        "",
    )
    baselines = [e.name for e in agg.entries if e.kind == "baseline" and e.ran]
    recipes = settings.get("recipes", {})
    ran = [e for e in agg.entries if e.kind == "model" and e.ran]
    models = [e for e in ran if e.name not in recipes]
    parts = [
        f"The cohort comprised {n_patients} patients ({cohort.get('n_residual', '?')} with and "
        f"{cohort.get('n_non_residual', '?')} without residual thyroid tissue). We drew "
        f"{exp['n_splits']} random patient-level splits stratified by class (seed {exp['seed']}); "
        f"each trained on {n_patients - n_test} patients and tested on {n_test} "
        f"({counts.get('residual', '?')} residual, {counts.get('non_residual', '?')} "
        "non-residual); both views of a patient stayed on one side of every split.",
        *([_paper_pipeline(exp, settings, models)] if models else []),
        *(_recipe(e, recipes[e.name]) for e in ran if e.name in recipes),
        *(
            [f"A patient's probability was the {exp['view_fusion']} over its usable views."]
            if ran
            else []
        ),
        f"Operating point of the CNNs: {cnn_point or exp['operating_point']}."
        + (
            f" Classical observers ({', '.join(baselines)}) were fitted on each split's "
            "training patients, their thresholds by Youden's J."
            if baselines
            else ""
        ),
        "Metrics (positive class: residual) were computed per split and summarised as mean "
        "(SD) over splits; the AUC of each split has a DeLong 95 % CI, models were compared "
        "with the paired DeLong test per split, the two-sided Mann–Whitney U test over "
        "per-split values (as in Guo et al. 2021) and the Nadeau–Bengio corrected resampled "
        "t-test; sensitivity and specificity carry Wilson 95 % intervals for the number of "
        "test patients of one split.",
        "Software: " + ", ".join(f"{k} {versions[k]}" for k in _LIBRARIES if k in versions) + ".",
    ]
    if settings.get("test_cohort"):
        ext = settings["test_cohort"]
        parts.insert(
            len(parts) - 2,  # before the statistics and the software
            f"Every split's model was also applied to an external cohort of "
            f"{ext['n_patients']} patients ({ext['n_residual']} residual, "
            f"{ext['n_non_residual']} non-residual) at the same threshold.",
        )
    return " ".join(parts)


_BATCHED = (
    " The splits of each CNN were trained as one batched computation (torch.func.vmap over "
    "per-split weights, batch-norm statistics, optimiser state and sampling)."
)


def _mode_text(mode: str) -> str:
    return {
        "head": "(frozen backbone; only a new two-class layer trained)",
        "last": "(last stage and a new two-class layer trained)",
        "full": "(all layers fine-tuned)",
    }.get(mode, "")
