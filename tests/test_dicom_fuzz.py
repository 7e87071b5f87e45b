"""Mutated files (truncated, bit-flipped, overwritten, spliced, padded) never crash the reader.

`read_study` must return a valid Study or raise a `thyrocad.errors.InputError` subclass, let
no library warning escape (pydicom's warnings may quote header values such as names), and
never put the patient's name or ID into an error message.
"""

from __future__ import annotations

import gc
import tempfile
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import dicom_factory as factory
from thyrocad.errors import InputError
from thyrocad.io.read import read_study

SYNTAXES = factory.LOSSLESS_SYNTAXES


@cache
def _originals() -> tuple[bytes, ...]:
    """One valid file per transfer syntax, plus a 16-bit PNG export."""
    ds = factory.nm_dataset([factory.counts_image(32, 32, seed=s) for s in (0, 1)])
    files = [factory.dicom_bytes(ds, syntax) for syntax in SYNTAXES]
    with tempfile.TemporaryDirectory() as folder:
        png = Path(folder) / "export.png"
        Image.fromarray(factory.counts_image(32, 32).astype(np.uint16)).save(png)
        files.append(png.read_bytes())
    return tuple(files)


@st.composite
def mutated_file(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_originals())))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "splice", "insert"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(chunk)] = chunk
        elif kind == "splice":
            del data[at : at + draw(st.integers(1, 512))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        if not data:
            break
    return bytes(data)


@pytest.fixture(autouse=True)
def _no_earlier_garbage() -> None:
    """Collect an earlier test's garbage first: an unclosed socket warns when collected."""
    gc.collect()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=mutated_file())
def test_mutated_files_give_a_study_or_an_input_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "mutated"
    path.write_bytes(data)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        try:
            study = read_study(path)
        except InputError as exc:
            message = str(exc)
            assert factory.SENTINEL_NAME not in message
            assert factory.SENTINEL_ID not in message
        else:
            assert study.images
            for image in study.images:
                assert image.counts.ndim == 2 and image.counts.dtype == np.float32
    assert [str(w.message) for w in escaped] == []
