"""The preprocessing disk cache: hits, keys, invalidation, corrupt entries, concurrent writers."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from thyrocad.evaluation.baselines.scores import OBSERVERS
from thyrocad.preprocess import Pipeline, PreprocessCache, cache_key, default_cache_dir, preset
from thyrocad.preprocess import cache as cache_module
from thyrocad.preprocess.config import CropConfig

SPACING = (2.2, 2.2)


def counts_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lam = np.full((128, 128), 1.0)
    lam[60:70, 55:75] = 40.0
    return rng.poisson(lam).astype(np.float32)


def pipeline(**grabcut) -> Pipeline:
    cfg = preset("grabcut_bed")
    cfg = dataclasses.replace(
        cfg,
        crop=CropConfig(center_rc=(64.0, 64.0)),
        grabcut=dataclasses.replace(cfg.grabcut, **grabcut),
    )
    return Pipeline(cfg)


def entries(root: Path) -> list[Path]:
    return sorted(root.rglob("*.npz"))


def test_miss_then_hit_returns_the_same_output(tmp_path):
    cache, pipe, counts = PreprocessCache(tmp_path), pipeline(), counts_image()
    cold = cache.get_or_compute(pipe, counts, SPACING)
    [path] = entries(tmp_path)
    key = cache_key(counts, SPACING, pipe.config.config_hash())
    assert path == tmp_path / key[:2] / f"{key}.npz"
    warm = cache.get_or_compute(pipe, counts, SPACING)
    np.testing.assert_array_equal(cold.network_input, warm.network_input)
    assert warm.network_input.dtype == np.float32
    assert (warm.flags, warm.crop_box) == (cold.flags, cold.crop_box)
    direct = pipe.run(counts, SPACING)
    np.testing.assert_array_equal(direct.network_input, warm.network_input)


def test_flags_survive_the_cache(tmp_path):
    cache, pipe = PreprocessCache(tmp_path), pipeline()
    cache.get_or_compute(pipe, np.zeros((128, 128), np.float32), SPACING)
    warm = cache.get_or_compute(pipe, np.zeros((128, 128), np.float32), SPACING)
    assert "blank_image" in warm.flags


def test_any_config_change_is_a_new_entry(tmp_path):
    cache, counts = PreprocessCache(tmp_path), counts_image()
    cache.get_or_compute(pipeline(), counts, SPACING)
    cache.get_or_compute(pipeline(), counts, SPACING)
    assert len(entries(tmp_path)) == 1
    changed = cache.get_or_compute(pipeline(iterations=2), counts, SPACING)
    assert len(entries(tmp_path)) == 2
    np.testing.assert_array_equal(
        changed.network_input, pipeline(iterations=2).run(counts, SPACING).network_input
    )


def test_key_covers_content_shape_dtype_spacing_and_opencv(monkeypatch):
    counts, h = counts_image(), "c" * 64
    base = cache_key(counts, SPACING, h)
    other = counts.copy()
    other[0, 0] += 1
    variants = [
        cache_key(other, SPACING, h),
        cache_key(counts.reshape(64, 256), SPACING, h),
        cache_key(counts.view(np.int32), SPACING, h),
        cache_key(counts, (2.2, 2.3), h),
        cache_key(counts, None, h),
        cache_key(counts, SPACING, "d" * 64),
    ]
    monkeypatch.setattr(cache_module.cv2, "__version__", "0.0.0")
    variants.append(cache_key(counts, SPACING, h))
    assert len({base, *variants}) == len(variants) + 1


def test_corrupt_entry_is_a_miss_and_gets_rewritten(tmp_path):
    cache, pipe, counts = PreprocessCache(tmp_path), pipeline(), counts_image()
    cache.get_or_compute(pipe, counts, SPACING)
    [path] = entries(tmp_path)
    path.write_bytes(b"PK\x03\x04 torn")
    assert cache.get(path.stem) is None
    again = cache.get_or_compute(pipe, counts, SPACING)
    assert cache.get(path.stem) is not None
    assert again.network_input.shape == (3, 224, 224)


def test_default_dir_follows_thyrocad_home(monkeypatch, tmp_path):
    monkeypatch.setenv("THYROCAD_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "cache" / "preprocess"
    assert PreprocessCache().root == tmp_path / "cache" / "preprocess"
    monkeypatch.delenv("THYROCAD_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "thyrocad" / "cache" / "preprocess"


def _write_many(root: str, seed: int, rounds: int) -> int:
    """Worker: recompute and rewrite one shared key `rounds` times; count readable reads."""
    cache, pipe, counts = PreprocessCache(root), pipeline(), counts_image(seed)
    key = cache_key(counts, SPACING, pipe.config.config_hash())
    output = pipe.run(counts, SPACING).output
    readable = 0
    for _ in range(rounds):
        cache.put(key, output)
        readable += cache.get(key) is not None
    return readable


def test_concurrent_writers_of_one_key_leave_one_whole_entry(tmp_path):
    rounds, workers = 30, 4
    with mp.get_context("spawn").Pool(workers) as pool:
        readable = pool.starmap(_write_many, [(str(tmp_path), 7, rounds)] * workers)
    assert readable == [rounds] * workers  # a reader never saw a torn file
    [path] = entries(tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".npz"]
    cached = PreprocessCache(tmp_path).get(path.stem)
    np.testing.assert_array_equal(
        cached.network_input, pipeline().run(counts_image(7), SPACING).network_input
    )


def test_key_covers_the_preprocessing_code(monkeypatch):
    counts, config_hash = counts_image(), preset("default").config_hash()
    before = cache_key(counts, (2.2, 2.2), config_hash)
    assert len(cache_module.code_digest()) == 16
    monkeypatch.setattr(cache_module, "code_digest", lambda: "another-locator")
    assert cache_key(counts, (2.2, 2.2), config_hash) != before


def _preprocess_imports(name: str, seen: set[str]) -> set[str]:
    """The `thyrocad.preprocess` modules that module `name` imports, transitively."""
    tree = ast.parse(Path(importlib.import_module(name).__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "thyrocad.preprocess":
            found = {f"thyrocad.preprocess.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "thyrocad.preprocess."
        ):
            found = {node.module}
        else:
            continue
        for module in found - seen:
            seen.add(module)
            _preprocess_imports(module, seen)
    return seen


def test_digest_covers_every_module_the_pipeline_runs(monkeypatch):
    """A change to any module the pipeline computes with (e.g. the locator's hot-focus step)
    gives new cache keys; only the settings (`config`) are covered by the config hash."""
    digested: list[str] = []
    monkeypatch.setattr(
        cache_module, "source_digest", lambda *mods: digested.extend(m.__name__ for m in mods)
    )
    cache_module.code_digest.cache_clear()
    try:
        cache_module.code_digest()
    finally:
        cache_module.code_digest.cache_clear()
    used = _preprocess_imports("thyrocad.preprocess.pipeline", {"thyrocad.preprocess.pipeline"})
    assert used - {"thyrocad.preprocess.config"} <= set(digested)


@pytest.mark.parametrize("observer", ["uptake_ratio", "peak", "cho"])
def test_observer_feature_keys_cover_the_locator(observer):
    """The cached features of an observer that places its ROI on the located bed are keyed by
    every module of the locator, so a better locator is never served stale scores."""
    locator = _preprocess_imports(
        "thyrocad.preprocess.landmarks", {"thyrocad.preprocess.landmarks"}
    )
    assert locator <= {module.__name__ for module in OBSERVERS[observer][1]}
