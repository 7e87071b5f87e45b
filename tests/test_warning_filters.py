"""Warning filters when threads interleave (`thyrocad.warning_filters`): the web app reads
studies and writes results in threads, and `warnings.catch_warnings` changes process-wide
state."""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import uid
from pydicom.dataset import Dataset

import dicom_factory as factory
from thyrocad.diagnosis.dicom_sr import reference_header
from thyrocad.io.read import read_study
from thyrocad.warning_filters import filtered


def _in_threads(*jobs: Callable[[], object], repeats: int) -> list[BaseException]:
    """Run each job `repeats` times in its own thread, all threads at once; their errors."""
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            for _ in range(repeats):
                job()
        except Exception as exc:  # collected: the test reports them
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: the races become likely
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    return errors


def _block(action: str) -> Callable[[], None]:
    def job() -> None:
        with filtered(action, UserWarning):
            time.sleep(0)  # let another thread run inside the block

    return job


def test_overlapping_blocks_leave_the_filters_as_they_were():
    """Unlocked, two threads' blocks restore each other's filters: one thread's "error"
    filter can outlive its block (checked: with `warnings.catch_warnings` in `_block` the
    filters differ afterwards)."""
    before = list(warnings.filters)
    assert not _in_threads(_block("ignore"), _block("always"), _block("error"), repeats=300)
    assert warnings.filters == before


def test_a_long_patient_name_while_another_thread_decodes_pixels(tmp_path: Path):
    """The web app's sentinel run (tests/test_patient_data.py) once answered 500: a patient
    name over 64 characters made pydicom warn while results were prepared, and the pixel
    decoder of another request's thread had turned UserWarning into an error (checked: the
    second job raises on the code before `filtered`)."""
    pixels = factory.write_dicom(factory.nm_dataset(), tmp_path / "rle.dcm", uid.RLELossless)
    with warnings.catch_warnings():  # one thread so far; pydicom warns about the name
        warnings.simplefilter("ignore")
        long_name = factory.nm_dataset(patient_name="ZZSENTINEL^" + "X" * 80)
        named = factory.write_dicom(long_name, tmp_path / "pacs.dcm")
    errors = _in_threads(lambda: read_study(pixels), lambda: reference_header(named), repeats=150)
    assert not errors, errors[:1]


def _unguarded_pydicom_warning() -> None:
    Dataset().PatientName = "ZZSENTINEL^" + "X" * 80  # pydicom validates and warns


@pytest.mark.filterwarnings("ignore:The PN component length")
def test_a_decoder_does_not_take_another_threads_warning_for_its_own(tmp_path: Path):
    """The decoder refuses a file when pydicom warns while decoding it; a pydicom warning that
    another thread raises outside any block meanwhile must not refuse a good file (checked:
    with a record of every thread's warnings, the decoding job fails)."""
    pixels = factory.write_dicom(factory.nm_dataset(), tmp_path / "rle.dcm", uid.RLELossless)
    errors = _in_threads(lambda: read_study(pixels), _unguarded_pydicom_warning, repeats=150)
    assert not errors, errors[:1]
