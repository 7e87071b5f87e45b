"""Reading synthetic NM DICOM files and PNG/JPEG exports (thyrocad.io.dicom, thyrocad.io.read)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import uid
from pydicom.encaps import encapsulate, generate_frames

import dicom_factory as factory
from thyrocad import errors
from thyrocad.io.dicom import METADATA_KEYS, read_dicom, view_from_code
from thyrocad.io.dicom_codes import VIEW_CODES
from thyrocad.io.exports import read_image_export
from thyrocad.io.read import merge_studies, read_study, sniff
from thyrocad.study import Study, View, ViewImage

ANT, POST = factory.view_code(View.ANTERIOR), factory.view_code(View.POSTERIOR)

LOSSLESS_SYNTAXES = factory.LOSSLESS_SYNTAXES


def _stored_frames(bits: int, signed: bool) -> list[np.ndarray]:
    """Two different count images spanning the stored range of the pixel type."""
    low = -(2 ** (bits - 1)) if signed else 0
    high = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    images = [factory.counts_image(seed=s, peak=min(high, 3000)) for s in (1, 2)]
    images[0][0, :2] = (low, high)  # extremes survive every lossless syntax
    return [np.clip(im, low, high) for im in images]


def _assert_clean(study) -> None:
    assert set(study.metadata) <= set(METADATA_KEYS)
    text = repr(study.metadata) + study.source + study.spacing_note
    assert factory.SENTINEL_NAME not in text and factory.SENTINEL_ID not in text


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("syntax", LOSSLESS_SYNTAXES, ids=lambda u: u.name)
@pytest.mark.parametrize(("bits", "signed"), [(16, False), (16, True), (8, False), (8, True)])
def test_lossless_round_trip(tmp_path: Path, syntax: str, bits: int, signed: bool) -> None:
    frames = _stored_frames(bits, signed)
    ds = factory.nm_dataset(frames, bits_allocated=bits, signed=signed)
    study = read_study(factory.write_dicom(ds, tmp_path / "nm.dcm", syntax))
    assert study.views == (View.ANTERIOR, View.POSTERIOR)
    for image, frame in zip(study.images, frames, strict=True):
        assert image.counts.dtype == np.float32
        np.testing.assert_array_equal(image.counts, frame.astype(np.float32))
    assert study.pixel_spacing_mm == (2.21, 2.21)
    assert study.spacing_note == ""
    assert study.frame_duration_ms == 600_000
    assert study.metadata["transfer_syntax"] == uid.UID(syntax).name
    assert study.metadata["bits_allocated"] == str(bits)
    assert study.metadata["signed"] == str(signed).lower()
    assert study.metadata["radionuclide"] == "^131^Iodine"
    assert study.metadata["energy_window"] == "327.6-400.4 keV"
    _assert_clean(study)


@pytest.mark.parametrize(
    ("syntax", "options", "max_error"),
    [(uid.JPEGLSNearLossless, {"jls_error": 2}, 2), (uid.JPEG2000, {"j2k_cr": [4]}, 40)],
    ids=["jpeg-ls-near", "jpeg2000-lossy"],
)
def test_lossy_round_trip_stays_close(tmp_path, syntax, options, max_error) -> None:
    ds = factory.nm_dataset()
    study = read_study(factory.write_dicom(ds, tmp_path / "nm.dcm", syntax, **options))
    stored = ds.pixel_array.astype(np.float32)
    for image, frame in zip(study.images, stored, strict=True):
        error = np.abs(image.counts - frame)
        assert 0 < error.max() <= max_error  # lossy, but only by what was asked


def test_rescale_slope_and_intercept_are_applied(tmp_path: Path) -> None:
    ds = factory.nm_dataset(rescale=(0.5, 10.0))
    study = read_study(factory.write_dicom(ds, tmp_path / "nm.dcm"))
    np.testing.assert_allclose(study.images[0].counts, ds.pixel_array[0] * 0.5 + 10.0)
    assert study.metadata["rescale"] == "slope 0.5, intercept 10"


def test_single_frame_posterior(tmp_path: Path) -> None:
    frame = factory.counts_image(seed=7)
    ds = factory.nm_dataset([frame], [POST])
    study = read_study(factory.write_dicom(ds, tmp_path / "post.dcm"))
    assert study.views == (View.POSTERIOR,)
    np.testing.assert_array_equal(study.image(View.POSTERIOR), frame)


def test_views_follow_detector_vector_not_frame_order(tmp_path: Path) -> None:
    ds = factory.nm_dataset()  # detector 1 anterior, detector 2 posterior
    ds.DetectorVector = [2, 1]  # frame 1 now comes from the posterior detector
    study = read_study(factory.write_dicom(ds, tmp_path / "nm.dcm"))
    assert study.views == (View.POSTERIOR, View.ANTERIOR)
    np.testing.assert_array_equal(study.image(View.POSTERIOR), ds.pixel_array[0])


def test_top_level_view_code_of_a_single_frame(tmp_path: Path) -> None:
    ds = factory.nm_dataset([factory.counts_image()], [None])
    del ds.DetectorInformationSequence
    ds.ViewCodeSequence = factory.nm_dataset([factory.counts_image()], [ANT])[
        "DetectorInformationSequence"
    ][0].ViewCodeSequence
    assert read_study(factory.write_dicom(ds, tmp_path / "nm.dcm")).views == (View.ANTERIOR,)


def test_missing_view_code_is_unknown_and_logged(tmp_path: Path, caplog) -> None:
    ds = factory.nm_dataset(view_codes=(None, POST))
    with caplog.at_level(logging.DEBUG):  # every logger, every level
        study = read_study(factory.write_dicom(ds, tmp_path / "nm.dcm"))
    assert study.views == (View.UNKNOWN, View.POSTERIOR)
    assert "frame 1 view unknown" in caplog.text
    assert factory.SENTINEL_NAME not in caplog.text and factory.SENTINEL_ID not in caplog.text


@pytest.mark.parametrize(
    ("code", "view"),
    [
        (VIEW_CODES[View.ANTERIOR], View.ANTERIOR),
        (VIEW_CODES[View.POSTERIOR], View.POSTERIOR),
        (("G-5215", "SRT", "Anterior projection"), View.ANTERIOR),
        (("G-5216", "SRT", "Posterior projection"), View.POSTERIOR),
        (("R VENTRAL L FRUE", "99NMG", "R VENTRAL L FRUEH"), View.ANTERIOR),
        (("L DORSAL R FRUEH", "99NMG", "L DORSAL R FRUEH"), View.POSTERIOR),
        (("ANT", "99LOCAL", ""), View.ANTERIOR),
        (("X1", "99LOCAL", "post"), View.POSTERIOR),
        (("399074003", "SCT", "Left anterior oblique"), View.UNKNOWN),
        (("399118008", "SCT", "Left lateral projection"), View.UNKNOWN),
        (("X2", "99LOCAL", "anterior and posterior"), View.UNKNOWN),
        (("", "", ""), View.UNKNOWN),
    ],
)
def test_view_from_code(code: tuple[str, str, str], view: View) -> None:
    assert view_from_code(*code) is view


def test_view_codes_are_cid26() -> None:
    # pydicom ships DICOM's CID 26 table: our codes must match it.
    from pydicom.sr.codedict import codes

    for view, concept in (
        (View.ANTERIOR, codes.cid26.AnteriorProjection),
        (View.POSTERIOR, codes.cid26.PosteriorProjection),
    ):
        assert VIEW_CODES[view][:2] == (concept.value, concept.scheme_designator)


def _two_window_dataset():
    frames = [factory.counts_image(seed=s) for s in range(4)]
    ds = factory.nm_dataset(frames, [ANT, POST, ANT, POST])
    ds.DetectorVector = [1, 2, 1, 2]
    ds.EnergyWindowVector = [1, 1, 2, 2]
    ds.NumberOfDetectors, ds.NumberOfEnergyWindows = 2, 2
    ds.DetectorInformationSequence = ds.DetectorInformationSequence[:2]
    ds.EnergyWindowInformationSequence.append(ds.EnergyWindowInformationSequence[0])
    return ds, frames


@pytest.mark.parametrize(("window", "first_frame"), [(None, 0), (1, 0), (2, 2)])
def test_energy_window_selection(tmp_path: Path, window, first_frame) -> None:
    ds, frames = _two_window_dataset()
    study = read_dicom(factory.write_dicom(ds, tmp_path / "nm.dcm"), energy_window=window)
    assert study.views == (View.ANTERIOR, View.POSTERIOR)
    np.testing.assert_array_equal(study.image(View.ANTERIOR), frames[first_frame])
    np.testing.assert_array_equal(study.image(View.POSTERIOR), frames[first_frame + 1])


def test_energy_window_absent_is_refused(tmp_path: Path) -> None:
    ds, _ = _two_window_dataset()
    with pytest.raises(errors.InconsistentHeaderError, match="energy window 3"):
        read_dicom(factory.write_dicom(ds, tmp_path / "nm.dcm"), energy_window=3)


# --- refusals -------------------------------------------------------------------------------


def _write_modified(tmp_path: Path, syntax: str = uid.ExplicitVRLittleEndian, **changes) -> Path:
    ds = factory.encoded(factory.nm_dataset(), syntax)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path = tmp_path / "bad.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"Modality": "PT"}, errors.NotNuclearMedicineError, "Modality is PT"),
        ({"SOPClassUID": uid.CTImageStorage}, errors.NotNuclearMedicineError, "CT Image"),
        (
            {"ImageType": ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]},
            errors.NotPlanarError,
            "tomographic",
        ),
        ({"FrameIncrementPointer": [0x00540080]}, errors.NotPlanarError, "tomographic"),
        (
            {"ImageType": ["ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"]},
            errors.NotPlanarError,
            "whole-body",
        ),
        (
            {"ImageType": ["ORIGINAL", "PRIMARY", "DYNAMIC", "EMISSION"]},
            errors.NotPlanarError,
            "dynamic",
        ),
        ({"Rows": 16, "Columns": 256}, errors.NotPlanarError, "whole-body sweep"),
        # bounds are checked on the header, before the (too short) pixel data is touched
        ({"Rows": 60000, "Columns": 60000}, errors.ImageSizeError, "60000x60000"),
        ({"NumberOfFrames": 5000}, errors.ImageSizeError, "5000 frame"),
        ({"BitsAllocated": 32}, errors.UnsupportedPixelFormatError, "BitsAllocated 32"),
        (
            {"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"},
            errors.UnsupportedPixelFormatError,
            "RGB",
        ),
        ({"Rows": None}, errors.MalformedDicomError, "Rows is missing"),
        ({"NumberOfFrames": 0}, errors.InconsistentHeaderError, "NumberOfFrames is 0"),
        ({"DetectorVector": [1, 2, 2]}, errors.InconsistentHeaderError, "DetectorVector has 3"),
        ({"DetectorVector": [1, 3]}, errors.InconsistentHeaderError, "detector 3"),
        ({"NumberOfDetectors": 1}, errors.InconsistentHeaderError, "NumberOfDetectors"),
        ({"RescaleSlope": "0"}, errors.InconsistentHeaderError, "RescaleSlope"),
        ({"PixelData": None}, errors.NoPixelDataError, "no Pixel Data"),
        ({"PixelData": b""}, errors.NoPixelDataError, "empty"),
    ],
    ids=lambda v: str(v)[:40] if not isinstance(v, type) else v.__name__,
)
def test_bad_header_is_refused(tmp_path: Path, changes, error, match) -> None:
    with pytest.raises(error, match=match):
        read_study(_write_modified(tmp_path, **changes))


@pytest.mark.parametrize("number_of_frames", [1, None, 3])
def test_frame_count_contradicting_pixel_data_is_refused(tmp_path, number_of_frames) -> None:
    # pydicom alone would trim the posterior frame with only a warning (PITFALLS 1.3)
    changes = {"NumberOfFrames": number_of_frames, "DetectorVector": None}
    changes |= {"EnergyWindowVector": None, "NumberOfDetectors": None}
    with pytest.raises(errors.InconsistentHeaderError, match="Pixel Data holds"):
        read_study(_write_modified(tmp_path, **changes))


@pytest.mark.parametrize("syntax", [uid.RLELossless, uid.JPEG2000Lossless, uid.JPEGLSLossless])
@pytest.mark.parametrize("frames", [1, 3])
def test_compressed_frame_count_mismatch_is_refused(tmp_path, syntax, frames) -> None:
    changes = {"NumberOfFrames": frames, "DetectorVector": [1] * frames}
    changes |= {"EnergyWindowVector": [1] * frames, "NumberOfDetectors": frames}
    with pytest.raises(errors.InconsistentHeaderError, match="frame"):
        read_study(_write_modified(tmp_path, syntax, **changes))


@pytest.mark.parametrize("syntax", [uid.RLELossless, uid.JPEG2000Lossless, uid.JPEGLSLossless])
def test_extra_frame_without_offset_table_is_refused(tmp_path: Path, syntax: str) -> None:
    # pydicom would decode only the first codestream of a "1 frame" object: the posterior
    # view would vanish without a word (PITFALLS 1.3).
    ds = factory.encoded(factory.nm_dataset(), syntax)
    frames = list(generate_frames(ds.PixelData, number_of_frames=2))
    ds.PixelData = encapsulate(frames, has_bot=False)
    ds.NumberOfFrames, ds.DetectorVector, ds.EnergyWindowVector = 1, [1], [1]
    ds.NumberOfDetectors = 1
    ds.save_as(tmp_path / "nm.dcm", enforce_file_format=True)
    with pytest.raises(errors.InconsistentHeaderError, match="holds 2 codestreams"):
        read_study(tmp_path / "nm.dcm")


def test_a_frame_split_over_fragments_is_accepted(tmp_path: Path) -> None:
    ds = factory.encoded(factory.nm_dataset(), uid.JPEG2000Lossless)
    frames = list(generate_frames(ds.PixelData, number_of_frames=2))
    halves = [part for f in frames for part in (f[:100], f[100:])]
    ds.PixelData = encapsulate(halves, has_bot=False)
    ds.save_as(tmp_path / "nm.dcm", enforce_file_format=True)
    study = read_study(tmp_path / "nm.dcm")
    np.testing.assert_array_equal(study.image(View.POSTERIOR), factory.nm_dataset().pixel_array[1])


def test_a_warning_while_decoding_is_an_error(tmp_path: Path) -> None:
    # pydicom's RLE decoder only warns about a segment longer than the frame; we refuse it.
    ds = factory.encoded(factory.nm_dataset([factory.counts_image()], [ANT]), uid.RLELossless)
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    ds.PixelData = encapsulate([frame + bytes([3, 7, 7, 7, 7])])  # one extra literal run
    ds.save_as(tmp_path / "nm.dcm", enforce_file_format=True)
    with pytest.raises(errors.PixelDecodeError, match="padding"):
        read_study(tmp_path / "nm.dcm")


def test_corrupt_compressed_stream_is_refused(tmp_path: Path) -> None:
    ds = factory.encoded(factory.nm_dataset(), uid.JPEG2000Lossless)
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(200)] * 2)
    ds.save_as(tmp_path / "bad.dcm", enforce_file_format=True)
    with pytest.raises(errors.PixelDecodeError, match="cannot be decoded"):
        read_study(tmp_path / "bad.dcm")


def test_unsupported_transfer_syntax_is_refused_before_decoding(tmp_path: Path) -> None:
    ds = factory.nm_dataset()
    ds.PixelData = encapsulate([bytes(100), bytes(100)])
    ds.file_meta.TransferSyntaxUID = uid.MPEG2MPML
    ds.save_as(tmp_path / "mpeg.dcm", enforce_file_format=True)
    with pytest.raises(errors.UnsupportedTransferSyntaxError, match="MPEG2"):
        read_study(tmp_path / "mpeg.dcm")


def test_truncated_pixel_data_is_refused(tmp_path: Path) -> None:
    data = factory.dicom_bytes(factory.nm_dataset())
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) - 1000])
    with pytest.raises(errors.TruncatedFileError, match="ends inside the pixel data"):
        read_study(tmp_path / "cut.dcm")


def test_file_without_preamble_is_not_dicom(tmp_path: Path) -> None:
    (tmp_path / "raw.dcm").write_bytes(factory.dicom_bytes(factory.nm_dataset())[132:])
    with pytest.raises(errors.NotDicomError, match="neither DICOM"):
        read_study(tmp_path / "raw.dcm")
    with pytest.raises(errors.NotDicomError, match="DICM"):
        read_dicom(tmp_path / "raw.dcm")


@pytest.mark.parametrize("content", [b"", b"hello, not an image\n" * 20])
def test_other_content_is_not_dicom(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x.png").write_bytes(content)  # the extension is not trusted
    with pytest.raises(errors.NotDicomError):
        read_study(tmp_path / "x.png")


def test_missing_file_and_folder_are_refused(tmp_path: Path) -> None:
    for path in (tmp_path / "absent.dcm", tmp_path):
        with pytest.raises(errors.FileAccessError):
            read_study(path)


def test_file_too_large_is_refused_before_reading(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("thyrocad.io.dicom.MAX_FILE_BYTES", 1000)
    with pytest.raises(errors.ImageSizeError, match="bytes"):
        read_study(factory.write_dicom(factory.nm_dataset(), tmp_path / "nm.dcm"))


# --- caller-given view ----------------------------------------------------------------------


def test_caller_view_fills_an_unknown_dicom_view(tmp_path: Path) -> None:
    path = factory.write_dicom(factory.nm_dataset([factory.counts_image()], [None]), tmp_path / "a")
    assert read_study(path, view=View.ANTERIOR).views == (View.ANTERIOR,)


def test_caller_view_conflicting_with_the_file_is_refused(tmp_path: Path) -> None:
    path = factory.write_dicom(factory.nm_dataset(), tmp_path / "nm.dcm")
    assert read_study(path).views == (View.ANTERIOR, View.POSTERIOR)
    with pytest.raises(errors.ViewConflictError, match="anterior\\+posterior"):
        read_study(path, view=View.POSTERIOR)


# --- PNG / JPEG exports ---------------------------------------------------------------------


def _gradient(dtype: str, high: int) -> np.ndarray:
    return (np.arange(48 * 40).reshape(48, 40) * high // (48 * 40 - 1)).astype(dtype)


@pytest.mark.parametrize(("dtype", "high"), [("uint8", 255), ("uint16", 65535)])
def test_gray_png_export(tmp_path: Path, dtype: str, high: int) -> None:
    pixels = _gradient(dtype, high)
    path = tmp_path / "export.dcm"  # misleading extension on purpose: content decides
    Image.fromarray(pixels).save(path, format="PNG")
    assert sniff(path) == "PNG"
    study = read_study(path, view=View.POSTERIOR)
    assert study.views == (View.POSTERIOR,)
    np.testing.assert_array_equal(study.image(View.POSTERIOR), pixels.astype(np.float32))
    assert study.pixel_spacing_mm is None
    assert "no pixel spacing" in study.spacing_note
    assert study.metadata["source_format"] == "PNG"
    assert set(study.metadata) <= set(METADATA_KEYS)


def test_rgb_png_export_is_converted_to_gray(tmp_path: Path) -> None:
    gray = _gradient("uint8", 255)
    rgb = np.stack([gray, gray // 2, np.zeros_like(gray)], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    counts = read_study(tmp_path / "rgb.png").images[0].counts
    expected = 0.299 * gray + 0.587 * (gray // 2)
    np.testing.assert_allclose(counts, expected, rtol=1e-5)
    assert read_study(tmp_path / "rgb.png").views == (View.UNKNOWN,)


def test_jpeg_export(tmp_path: Path) -> None:
    pixels = _gradient("uint8", 255)
    Image.fromarray(pixels).save(tmp_path / "export.jpg", quality=95)
    study = read_study(tmp_path / "export.jpg")
    assert study.metadata["source_format"] == "JPEG"
    assert np.abs(study.images[0].counts - pixels).max() <= 4  # JPEG is lossy, but barely


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    Image.fromarray(factory.counts_image().astype(np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises((errors.TruncatedFileError, errors.PixelDecodeError)):
        read_study(tmp_path / "a.png")


def test_whole_body_shaped_export_is_refused_unless_asked(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((400, 100), np.uint8)).save(tmp_path / "wb.png")
    with pytest.raises(errors.NotPlanarError):
        read_study(tmp_path / "wb.png")
    study = read_image_export(tmp_path / "wb.png", planar_only=False)
    assert study.images[0].counts.shape == (400, 100)


def test_huge_export_is_refused_before_decoding(tmp_path: Path) -> None:
    Image.new("L", (5000, 5000)).save(tmp_path / "big.png")
    with pytest.raises(errors.ImageSizeError, match="5000x5000"):
        read_study(tmp_path / "big.png")


# --- merging the files of one study --------------------------------------------------------------


def _one_view(tmp_path: Path, name: str, code, seed: int, **options) -> Study:
    ds = factory.nm_dataset([factory.counts_image(seed=seed)], [code], **options)
    return read_study(factory.write_dicom(ds, tmp_path / name))


def test_merge_joins_one_file_per_view(tmp_path: Path) -> None:
    ant = _one_view(tmp_path, "a.dcm", ANT, 1)
    post = _one_view(tmp_path, "p.dcm", POST, 2, frame_duration_ms=300_000)
    merged = merge_studies([ant, post])
    assert merged.views == (View.ANTERIOR, View.POSTERIOR)
    np.testing.assert_array_equal(merged.image(View.ANTERIOR), ant.image(View.ANTERIOR))
    np.testing.assert_array_equal(merged.image(View.POSTERIOR), post.image(View.POSTERIOR))
    assert merged.pixel_spacing_mm == ant.pixel_spacing_mm
    assert merged.frame_duration_ms is None  # the files disagree: no single duration
    assert merged.source == f"{ant.source}; {post.source}"
    assert set(merged.metadata.items()) == set(ant.metadata.items()) & set(post.metadata.items())
    assert merge_studies([ant]) is ant


def test_merge_refuses_different_spacings(tmp_path: Path) -> None:
    ant = _one_view(tmp_path, "a.dcm", ANT, 1)
    post = _one_view(tmp_path, "p.dcm", POST, 2, pixel_spacing=(3.0, 3.0))
    with pytest.raises(errors.StudyMergeError, match="different pixel spacings"):
        merge_studies([ant, post])


def test_merge_refuses_a_repeated_view(tmp_path: Path) -> None:
    ant = _one_view(tmp_path, "a.dcm", ANT, 1)
    again = _one_view(tmp_path, "a2.dcm", ANT, 2)
    both = read_study(factory.write_dicom(factory.nm_dataset(), tmp_path / "both.dcm"))
    post = _one_view(tmp_path, "p.dcm", POST, 3)
    with pytest.raises(errors.StudyMergeError, match="give each view once"):
        merge_studies([ant, again])
    with pytest.raises(errors.StudyMergeError, match="anterior, posterior, posterior"):
        merge_studies([both, post])  # a two-view file, then the posterior once more
    assert issubclass(errors.StudyMergeError, errors.InputError)


def test_merge_accepts_several_views_without_a_name() -> None:
    image = ViewImage(View.UNKNOWN, np.ones((8, 8), np.float32))
    exports = [Study((image,), None, source=f"{i}.png") for i in range(2)]
    assert merge_studies(exports).views == (View.UNKNOWN, View.UNKNOWN)
