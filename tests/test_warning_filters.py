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
from thyrocad.warning_filters import filtered, quiet


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


class _QuietThread(threading.Thread):
    """A thread that enters `quiet`, waits for `go`, warns, sets `warned` and leaves the
    block when `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.go, self.warned, self.release = threading.Event(), threading.Event(), threading.Event()

    def run(self) -> None:
        with quiet():
            self.go.wait(10)
            warnings.warn("from the quiet thread", UserWarning, stacklevel=1)
            self.warned.set()
            self.release.wait(10)


def test_quiet_drops_its_own_threads_warnings_only():
    shown_before = warnings.showwarning
    with warnings.catch_warnings(record=True) as caught:  # one thread so far
        warnings.simplefilter("always")
        silent = _QuietThread()
        silent.start()
        silent.go.set()
        silent.warned.wait(10)
        warnings.warn("from the main thread", UserWarning, stacklevel=1)
        silent.release.set()
        silent.join()
    assert [str(w.message) for w in caught] == ["from the main thread"]
    assert warnings.showwarning is shown_before  # put back when no thread is quiet


def test_quiet_holds_no_lock_while_it_runs(tmp_path: Path):
    """A thread that builds DICOM results (quiet, about 0.1 s per object) must not make
    another thread's pixel decoding (a `filtered` block) wait for it (checked: with
    `filtered("ignore")` in place of `quiet` the decoding waits for the release)."""
    pixels = factory.write_dicom(factory.nm_dataset(), tmp_path / "rle.dcm", uid.RLELossless)
    silent = _QuietThread()
    silent.start()
    reader = threading.Thread(target=read_study, args=(pixels,))
    reader.start()
    reader.join(5)
    finished = not reader.is_alive()
    silent.go.set()
    silent.release.set()
    silent.join()
    reader.join()
    assert finished


def test_a_record_skips_a_quiet_threads_warnings():
    """A decoder's record made while another thread is quiet holds only its own warnings;
    the quiet thread's are dropped, neither recorded nor shown."""
    with warnings.catch_warnings(record=True) as shown:  # one thread so far
        warnings.simplefilter("always")
        silent = _QuietThread()
        silent.start()
        with filtered("always", UserWarning, record=True) as caught:
            silent.go.set()
            silent.warned.wait(10)
            warnings.warn("the decoder's own", UserWarning, stacklevel=1)
        silent.release.set()  # it leaves `quiet` once the record block has let go
        silent.join()
    assert silent.warned.is_set()
    assert [str(w.message) for w in caught] == ["the decoder's own"]
    assert not shown
