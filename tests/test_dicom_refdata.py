"""Every real public NM/PT file in ../shared/refdata/nm-dicom loads correctly or is refused.

Expected values come from the folder's MANIFEST.md (decoded there with pydicom 3.0.2 and
several plugins, cross-checked). `read_study` must refuse all 15 (none is a planar neck view);
`read_dicom(planar_only=False)` must decode every NM file that has decodable pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thyrocad import errors
from thyrocad.io.dicom import read_dicom
from thyrocad.io.read import read_study
from thyrocad.study import View

REFDATA = Path(__file__).resolve().parents[1].parent / "shared" / "refdata" / "nm-dicom"

pytestmark = pytest.mark.skipif(
    not REFDATA.is_dir(), reason=f"reference DICOM folder {REFDATA} is absent (clone ../shared)"
)

WG04_LOSSLESS = ["wg04/NM1_J2KR", "wg04/NM1_JLSL", "wg04/NM1_JPLL", "wg04/NM1_RLE"]
# file -> (stored min, stored max, max |difference| from NM1_UNC) for the lossy encodings
WG04_LOSSY = {
    "wg04/NM1_J2KI": (-30, 245, 101),
    "wg04/NM1_JLSN": (0, 275, 4),
    "pydicom/JPGExtended.dcm": (0, 264, 36),
}
PET = ["orthanc/Issue94.dcm", "orthanc/2021-02-19-MalaterreCP246.dcm", "fo-dicom/GH184.dcm"]

# What read_study (planar neck views only) does with each of the 15 files.
READ_STUDY_REFUSAL: dict[str, type[errors.InputError]] = {
    "wg04/NM1_UNC": errors.NotPlanarError,  # whole-body bone scan, 1024x256
    **dict.fromkeys(WG04_LOSSLESS, errors.NotPlanarError),
    **dict.fromkeys(WG04_LOSSY, errors.NotPlanarError),
    "wg04/NM1_JPLY": errors.NotPlanarError,  # refused on its header, before its bad stream
    "dcm4che/NM-MONO2-16-13x-heart": errors.NotPlanarError,  # RECON TOMO, SliceVector
    "openrem/NM-NmIm-Siemens.dcm": errors.NotPlanarError,  # WHOLE BODY, 2 detectors
    "openrem/NM-NmIm-Siemens-s1-1.dcm": errors.NotPlanarError,  # TOMO (and no pixels)
    **dict.fromkeys(PET, errors.NotNuclearMedicineError),
}


def test_the_table_covers_every_file() -> None:
    on_disk = {str(p.relative_to(REFDATA)) for p in REFDATA.rglob("*") if p.is_file()}
    assert on_disk - {"MANIFEST.md"} == set(READ_STUDY_REFUSAL)
    assert len(READ_STUDY_REFUSAL) == 15


@pytest.mark.parametrize("name", sorted(READ_STUDY_REFUSAL))
def test_read_study_refuses_with_a_specific_error(name: str) -> None:
    with pytest.raises(READ_STUDY_REFUSAL[name]) as caught:
        read_study(REFDATA / name)
    assert type(caught.value) is READ_STUDY_REFUSAL[name]
    assert name.split("/")[-1] in str(caught.value)  # the message names the file


@pytest.fixture(scope="module")
def nm1_unc() -> np.ndarray:
    study = read_dicom(REFDATA / "wg04/NM1_UNC", planar_only=False)
    return study.images[0].counts


def test_nm1_unc_decodes_with_manifest_values(nm1_unc: np.ndarray) -> None:
    study = read_dicom(REFDATA / "wg04/NM1_UNC", planar_only=False)
    assert study.views == (View.UNKNOWN,)  # Secondary Capture: no detector information
    assert nm1_unc.shape == (1024, 256)
    assert (nm1_unc.min(), nm1_unc.max()) == (0, 278)
    assert study.pixel_spacing_mm == (2.26, 2.26)
    assert "Secondary Capture" in study.spacing_note
    assert study.metadata["signed"] == "true"


@pytest.mark.parametrize("name", WG04_LOSSLESS)
def test_lossless_encodings_decode_bit_exact(name: str, nm1_unc: np.ndarray) -> None:
    study = read_dicom(REFDATA / name, planar_only=False)
    np.testing.assert_array_equal(study.images[0].counts, nm1_unc)


@pytest.mark.parametrize("name", sorted(WG04_LOSSY))
def test_lossy_encodings_decode_close(name: str, nm1_unc: np.ndarray) -> None:
    low, high, max_diff = WG04_LOSSY[name]
    counts = read_dicom(REFDATA / name, planar_only=False).images[0].counts
    assert counts.shape == (1024, 256)
    assert (counts.min(), counts.max()) == (low, high)
    assert np.abs(counts - nm1_unc).max() == max_diff


def test_malformed_jpeg_extended_is_a_decode_error() -> None:
    with pytest.raises(errors.PixelDecodeError, match="NM1_JPLY"):
        read_dicom(REFDATA / "wg04/NM1_JPLY", planar_only=False)


def test_siemens_two_detector_views_come_from_detector_information() -> None:
    study = read_dicom(REFDATA / "openrem/NM-NmIm-Siemens.dcm", planar_only=False)
    assert study.views == (View.ANTERIOR, View.POSTERIOR)  # 99NMG "R VENTRAL" / "L DORSAL"
    assert all(im.counts.shape == (1024, 256) for im in study.images)
    assert max(im.counts.max() for im in study.images) == 143
    assert min(im.counts.min() for im in study.images) == 0
    assert study.metadata["radionuclide"] == "99m Technetium"
    assert study.frame_duration_ms == 265485
    assert study.metadata.get("manufacturer") == "SIEMENS NM"
    assert "REMOVED" not in repr(study.metadata)  # de-identified fields are never copied


def test_spect_reconstruction_decodes_as_frames_when_asked() -> None:
    study = read_dicom(REFDATA / "dcm4che/NM-MONO2-16-13x-heart", planar_only=False)
    assert len(study.images) == 13
    assert set(study.views) == {View.UNKNOWN}
    stack = np.stack([im.counts for im in study.images])
    assert stack.shape == (13, 64, 64)
    assert (stack.min(), stack.max()) == (0, 141)


def test_stripped_pixels_are_no_pixel_data() -> None:
    with pytest.raises(errors.NoPixelDataError, match="empty"):
        read_dicom(REFDATA / "openrem/NM-NmIm-Siemens-s1-1.dcm", planar_only=False)


@pytest.mark.parametrize("name", PET)
def test_pet_is_never_read(name: str) -> None:
    with pytest.raises(errors.NotNuclearMedicineError, match="Modality is PT"):
        read_dicom(REFDATA / name, planar_only=False)
