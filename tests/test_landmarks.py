"""The thyroid-bed locator: on every anatomy setting of the phantom (against its ground truth),
on real public scintigrams nobody here made (hand-drawn lobe boxes), on real whole-body
files cut to a neck field, and its confidence and flags on hard cases."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from scipy import ndimage

from independent_helpers import independent_phantom
from thyrocad.data.phantom import ANATOMY_NAMES, PhantomConfig, simulate_patient
from thyrocad.data.phantom.cohort import ground_truth
from thyrocad.preprocess import Flag, Pipeline, landmarks
from thyrocad.preprocess.config import CropConfig
from thyrocad.preprocess.landmarks import (
    _UNCONFIRMED,
    CONFIDENT,
    SHOULDER_TO_NOTCH_MM,
    SMG_TO_BED_MM,
    locate_thyroid_bed,
)
from thyrocad.preprocess.outline import body_outline, fill_holes, useful_field
from thyrocad.preprocess.shoulders import shoulder_rows, tilt_deg
from thyrocad.preprocess.steps import crop_box
from thyrocad.preprocess.truth import points_in_box
from thyrocad.study import View

REFDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "refdata"
REALDATA = Path(__file__).resolve().parents[1] / "realdata"  # see realdata/MANIFEST.md
PER_SETTING = 6  # residual patients per anatomy setting (12 views)


def _views(name: str):
    cfg = PhantomConfig(anatomy=name, seed=31)
    for i in range(PER_SETTING):
        sim = simulate_patient(cfg, i, residual=True)
        truth = ground_truth(cfg, sim)
        for view in (View.ANTERIOR, View.POSTERIOR):
            yield sim.counts[view], truth, view


@pytest.mark.parametrize("anatomy", ANATOMY_NAMES)
def test_crop_holds_every_remnant_focus_on_each_anatomy_setting(anatomy):
    """The crop the pipeline uses (larger when flagged uncertain) holds every focus centre in
    at least 11 of 12 views; benchmarks/bench_anatomy.py measures the full rates."""
    pipeline = Pipeline()
    held, errors = [], []
    for counts, truth, view in _views(anatomy):
        mm = truth["pixel_mm"]
        result = pipeline.run(counts, (mm, mm))
        foci = [(f[view.value]["row_px"], f[view.value]["col_px"]) for f in truth["foci"]]
        held.append(points_in_box(foci, result.crop_box))
        assert (Flag.BED_UNCERTAIN in result.flags) == (result.bed_confidence < CONFIDENT)
        if Flag.BED_UNCERTAIN not in result.flags:
            true = truth["thyroid_bed_center"][view.value]
            d_row, d_col = (
                (result.bed_center_rc[0] - true["row_px"]) * mm,
                (result.bed_center_rc[1] - true["col_px"]) * mm,
            )
            errors.append(np.hypot(d_row, d_col))
    assert sum(held) >= len(held) - 1, f"{anatomy}: crop held all foci in {sum(held)}/{len(held)}"
    if errors:
        assert np.median(errors) < 20.0  # mm, confident views


def _real_image(row: dict) -> tuple[np.ndarray, tuple[float, float] | None]:
    path = REALDATA / row["file"]
    if path.suffix == ".dcm":
        ds = pydicom.dcmread(path)
        return ds.pixel_array.astype(np.float32), tuple(float(v) for v in ds.PixelSpacing)
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32), None


def _boxes() -> list[dict]:
    with (REALDATA / "bboxes.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_real_scintigrams_crop_holds_both_lobes_or_is_flagged():
    """The native-thyroid Tc-99m scan in realdata/, as DICOM and as an 8-bit export without
    spacing: the crop holds the hand-drawn box around both lobes, or the view is flagged
    uncertain."""
    pipeline = Pipeline()
    for row in _boxes():
        counts, spacing = _real_image(row)
        _check_crop(pipeline, row, counts, spacing)
        export = np.round(255 * counts / counts.max()).astype(np.float32)  # display values
        _check_crop(pipeline, row, export, None)


def _check_crop(pipeline, row, counts, spacing) -> None:
    result = pipeline.run(counts, spacing)
    r0, c0, r1, c1 = (int(row[k]) for k in ("bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1"))
    holds = points_in_box([(r0, c0), (r1, c1)], result.crop_box)
    assert holds or Flag.BED_UNCERTAIN in result.flags, row["file"]
    if spacing is None:  # no spacing: never confident, crop sized from the neck width
        assert Flag.BED_UNCERTAIN in result.flags
        assert "spacing" in result.bed_reason or Flag.BED_NOT_FOUND in result.flags


def test_real_dicom_thyroid_is_located_and_flagged_for_its_unconfirmed_glands():
    """The real native Tc-99m scan: glands and shoulders agree, but no parotid pair above
    confirms the glands, so the location (0.94) is under the 98 % crop target: flagged, with
    that reason, and the enlarged crop holds both lobes (`test_real_scintigrams...`)."""
    row = next(r for r in _boxes() if r["file"].endswith(".dcm"))
    counts, spacing = _real_image(row)
    bed = locate_thyroid_bed(counts, spacing)
    assert bed.found and bed.method == "submandibular+shoulders", bed
    assert bed.uncertain and bed.reason == _UNCONFIRMED
    box_row = (int(row["bbox_row0"]) + int(row["bbox_row1"])) / 2
    assert abs(bed.center_rc[0] - box_row) * spacing[0] < 25.0  # mm from the lobes' centre


def test_neck_fields_cut_from_real_whole_body_sweeps():
    """Tc-99m whole-body sweeps (head at the top) cut to a 256-row neck field: the pipeline
    returns a crop inside the field with a confidence, flagged when uncertain."""
    files = sorted((REFDATA / "nm-dicom" / "wg04").glob("NM1_*"))
    files = [f for f in files if f.name != "NM1_JPLY"]  # no installed decoder reads it
    if not files:
        pytest.skip("../shared/refdata/nm-dicom (real NM files) is not available")
    for path in [*files, REFDATA / "nm-dicom" / "openrem" / "NM-NmIm-Siemens.dcm"]:
        ds = pydicom.dcmread(path)
        frames = ds.pixel_array.astype(np.float32).reshape(-1, ds.Rows, ds.Columns)
        mm = float(ds.PixelSpacing[0])
        for frame in frames:
            rows = np.flatnonzero(frame.sum(axis=1) > 0.05 * frame.sum(axis=1).max())
            field = np.clip(frame[rows[0] : rows[0] + 256], 0, None)
            result = Pipeline().run(field, (mm, mm))
            assert 0 <= result.bed_center_rc[0] < field.shape[0], path.name
            assert 0.0 <= result.bed_confidence <= 1.0
            assert (Flag.BED_UNCERTAIN in result.flags) == (result.bed_confidence < CONFIDENT)


def test_absent_glands_give_an_uncertain_bed_and_a_larger_crop():
    cfg = PhantomConfig(anatomy="faint_glands", seed=31)
    sim = next(
        s
        for s in (simulate_patient(cfg, i, True) for i in range(40))
        if not any(src.kind == "submandibular" for src in s.patient.sources)
    )
    result = Pipeline().run(sim.counts[View.ANTERIOR], (2.2, 2.2))
    assert Flag.BED_UNCERTAIN in result.flags and Flag.BED_NOT_FOUND not in result.flags
    assert result.bed_reason == "bed_uncertain: glands not found"
    assert result.bed_method == "shoulders" and result.bed_confidence < CONFIDENT
    assert result.crop_box.shape == (round(180 / 2.2), round(180 / 2.2))  # 1.5 x 120 mm


def test_a_view_without_landmarks_is_not_found_and_cropped_on_the_neck():
    """A neck-shaped blood pool without glands or shoulders (a smooth column): bed_not_found,
    the crop on the neck, larger."""
    img = np.zeros((256, 256))
    img[:, 100:156] = 40.0
    result = Pipeline().run(ndimage.gaussian_filter(img, 3), (2.2, 2.2))
    assert {Flag.BED_NOT_FOUND, Flag.BED_UNCERTAIN} <= set(result.flags)
    assert result.bed_reason.startswith("bed_not_found: neither the shoulders")
    assert 100 <= result.bed_center_rc[1] <= 156 and result.bed_confidence == 0.0


def test_bed_set_by_user_overrides_the_locator():
    sim = simulate_patient(PhantomConfig(seed=4), 1, residual=False)
    result = Pipeline().run(sim.counts[View.ANTERIOR], (2.2, 2.2), bed_rc=(100.0, 120.0))
    assert result.bed_center_rc == (100.0, 120.0) and result.bed_reason == "bed set by user"
    assert Flag.BED_SET_BY_USER in result.flags and Flag.BED_UNCERTAIN not in result.flags
    assert result.bed_confidence == 1.0 and result.bed_method == "user"


def test_bed_found_without_spacing_from_the_neck_width():
    cfg = PhantomConfig(seed=4)
    sim = simulate_patient(cfg, 1, residual=False)
    truth = ground_truth(cfg, sim)["thyroid_bed_center"]["anterior"]
    bed = locate_thyroid_bed(sim.counts[View.ANTERIOR], None)
    assert bed.found and bed.confidence < CONFIDENT and "spacing" in bed.reason
    assert abs(bed.scale_mm - 2.2) < 0.5  # mm per pixel, from the neck width
    assert np.hypot(bed.center_rc[0] - truth["row_px"], bed.center_rc[1] - truth["col_px"]) < 15


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros((256, 256)), "empty"),
        (np.ones(256), "2-D"),
        (np.full((256, 256), np.nan), "empty"),
    ],
)
def test_unusable_images_are_reported_not_raised(image, reason):
    bed = locate_thyroid_bed(image, (2.2, 2.2))
    assert not bed.found and reason in bed.reason and bed.confidence == 0.0


def test_featureless_image_is_not_found():
    rng = np.random.default_rng(0)
    bed = locate_thyroid_bed(rng.poisson(2.0, (256, 256)).astype(float), (2.2, 2.2))
    assert not bed.found and bed.reason


def test_fill_holes_equals_scipy():
    rng = np.random.default_rng(0)
    for i in range(200):
        mask = ndimage.binary_dilation(rng.random((40, 56)) < 0.3, iterations=int(i % 3))
        np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def _shoulder_error_mm(cfg: PhantomConfig, index: int, view: View) -> tuple[float, dict]:
    """Located shoulder line against the true notch (`SHOULDER_TO_NOTCH_MM` above it)."""
    sim = simulate_patient(cfg, index, residual=True)
    truth = ground_truth(cfg, sim)
    mm = truth["pixel_mm"]
    marks = locate_thyroid_bed(sim.counts[view], (mm, mm)).landmarks
    notch = truth["landmarks"]["notch"][view.value]["row_px"]
    return (marks["shoulder_row"] - notch) * mm + SHOULDER_TO_NOTCH_MM, marks


@pytest.mark.parametrize(("index", "view"), [(32, View.ANTERIOR), (52, View.POSTERIOR)])
def test_hot_node_halo_does_not_pass_for_the_shoulders(index, view):
    """Two hot_nodes patients (seed 0) whose node halo once widened the neck into a false
    shoulder line in the head (85-180 mm too high, the crop missing the foci): the shoulder
    line is now within 2.5 spreads of the true one and the crop holds every focus."""
    cfg = PhantomConfig(anatomy="hot_nodes", seed=0)
    error, _ = _shoulder_error_mm(cfg, index, view)
    assert abs(error) < 2.5 * 17.5
    sim = simulate_patient(cfg, index, residual=True)
    truth = ground_truth(cfg, sim)
    result = Pipeline().run(sim.counts[view], (truth["pixel_mm"],) * 2)
    foci = [(f[view.value]["row_px"], f[view.value]["col_px"]) for f in truth["foci"]]
    assert points_in_box(foci, result.crop_box)


def test_raised_arms_are_recognised_and_lift_the_notch_estimate():
    """Arms raised beside the head are recognised from the outline (never on the default
    anatomy), and the notch is then placed lower below the lifted shoulder line."""
    raised = [
        _shoulder_error_mm(PhantomConfig(anatomy="arms_up", seed=31), i, View.ANTERIOR)
        for i in range(4)
    ]
    down = [_shoulder_error_mm(PhantomConfig(seed=31), i, View.ANTERIOR) for i in range(4)]
    assert all(m["arms_raised"] == 1.0 for _, m in raised)
    assert all(m["arms_raised"] == 0.0 for _, m in down)
    for _, marks in raised:
        lifted = marks["notch_row"] - marks["shoulder_row"]
        assert lifted > 1.2 * SHOULDER_TO_NOTCH_MM / 2.2  # pixels at 2.2 mm


def test_unconfirmed_glands_do_not_displace_shoulders_under_raised_arms():
    """An `arms_up` patient (seed 0, posterior view) whose only shoulder line, under raised
    arms, places the bed 10 mm off at 0.77, while an unconfirmed pair found without the
    shoulders (0.79) lies 101 mm off: only confirmed glands may displace such shoulders. (On
    the held-out seed 1 unconfirmed pairs took 6 of the 400 residual views 104-177 mm off.)"""
    cfg = PhantomConfig(anatomy="arms_up", seed=0, n_patients=200, n_residual=100)
    sim = simulate_patient(cfg, 10, residual=True)
    truth = ground_truth(cfg, sim)
    mm = truth["pixel_mm"]
    bed = locate_thyroid_bed(sim.counts[View.POSTERIOR], (mm, mm))
    true = truth["thyroid_bed_center"][View.POSTERIOR.value]
    assert bed.method == "shoulders" and bed.landmarks["arms_raised"] == 1.0
    assert np.hypot(bed.center_rc[0] - true["row_px"], bed.center_rc[1] - true["col_px"]) * mm < 20


def test_confirmed_glands_in_the_neck_win_a_disagreement():
    """A default patient (seed 0) whose shoulder line was misjudged, the bed placed 51-56 mm
    off: the confirmed glands disagree with it and only their estimate lies where the outline
    is a neck, so the bed is taken from them (within 15 mm), still flagged uncertain. (The
    other such patient, 134, now has a second shoulder-line candidate that agrees with its
    glands: the next test.)"""
    cfg = PhantomConfig(seed=0)
    sim = simulate_patient(cfg, 151, residual=True)
    truth = ground_truth(cfg, sim)
    mm = truth["pixel_mm"]
    bed = locate_thyroid_bed(sim.counts[View.ANTERIOR], (mm, mm))
    true = truth["thyroid_bed_center"][View.ANTERIOR.value]
    assert bed.method.startswith("submandibular") and bed.uncertain
    assert "landmarks disagree" in bed.reason
    error = np.hypot(bed.center_rc[0] - true["row_px"], bed.center_rc[1] - true["col_px"]) * mm
    assert error < 15.0


def test_a_shoulder_line_candidate_that_agrees_with_the_glands_wins():
    """Default patient 134 (seed 0): the lowest widening of the outline, taken alone as the
    shoulder line, disagreed with the confirmed glands (the bed then came from the glands,
    flagged). A second candidate 15 mm higher agrees with them: the search from it is the
    more confident, so it is taken, unflagged, within 15 mm of the true bed."""
    cfg = PhantomConfig(seed=0)
    sim = simulate_patient(cfg, 134, residual=False)
    truth = ground_truth(cfg, sim)
    mm = truth["pixel_mm"]
    counts = sim.counts[View.ANTERIOR]
    candidates = shoulder_rows(body_outline(counts.astype(float), mm).width_mm, mm)
    bed = locate_thyroid_bed(counts, (mm, mm))
    assert len(candidates) >= 2 and bed.landmarks["shoulder_row"] != candidates[0]
    assert bed.method == "submandibular+shoulders" and not bed.uncertain
    true = truth["thyroid_bed_center"][View.ANTERIOR.value]
    error = np.hypot(bed.center_rc[0] - true["row_px"], bed.center_rc[1] - true["col_px"]) * mm
    assert error < 15.0


def test_the_jaw_of_a_real_bone_sweep_does_not_win_a_disagreement():
    """On the real Tc-99m whole-body sweep wg04/NM1_UNC the confirmed 'gland pair' is the jaw's
    bone uptake, 62 mm above what the shoulders give: the jaw is not neck-like, so the
    shoulders' estimate stands, over 40 mm below the 'glands'' one."""
    path = REFDATA / "nm-dicom" / "wg04" / "NM1_UNC"
    if not path.exists():
        pytest.skip("../shared/refdata/nm-dicom (real NM files) is not available")
    ds = pydicom.dcmread(path)
    frame = ds.pixel_array.astype(np.float32).reshape(-1, ds.Rows, ds.Columns)[0]
    rows = np.flatnonzero(frame.sum(axis=1) > 0.05 * frame.sum(axis=1).max())
    mm = float(ds.PixelSpacing[0])
    bed = locate_thyroid_bed(np.clip(frame[rows[0] : rows[0] + 256], 0, None), (mm, mm))
    assert bed.landmarks["glands_confirmed"] == 1.0 and "landmarks disagree" in bed.reason
    assert bed.method.startswith("shoulders")
    from_glands = bed.landmarks["submandibular_row"] + SMG_TO_BED_MM / mm
    assert bed.center_rc[0] > from_glands + 40.0 / mm


def test_landmarks_found_only_as_the_view_lies_are_taken_and_flagged(monkeypatch):
    """A residual `stomach` patient (seed 1, as in the anatomy table) who lies 4.5 degrees from
    straight. Fitted to the neck alone, the tilt was misjudged at 21 degrees (a remnant's halo
    bent the midline), the deskewed view gave no landmark, and the bed fell back 89 mm beside
    the neck. Fitted over the whole body it is under the deskew threshold: located, confident,
    within 15 mm. With the tilt misjudged as before (forced here), the view as it lies still
    gives both landmarks: taken, flagged, within 15 mm."""
    cfg = PhantomConfig(n_patients=320, n_residual=200, seed=1, anatomy="stomach")
    sim = simulate_patient(cfg, 3, residual=True)
    truth = ground_truth(cfg, sim)
    mm = truth["pixel_mm"]
    counts = sim.counts[View.ANTERIOR].astype(np.float64)
    true = truth["thyroid_bed_center"][View.ANTERIOR.value]
    assert abs(tilt_deg(body_outline(counts, mm), mm)) < 4.0
    bed = locate_thyroid_bed(counts, (mm, mm))
    assert bed.method == "submandibular+shoulders" and not bed.uncertain
    assert np.hypot(bed.center_rc[0] - true["row_px"], bed.center_rc[1] - true["col_px"]) * mm < 15
    monkeypatch.setattr(landmarks, "tilt_deg", lambda outline, mm: 21.0)
    bed = locate_thyroid_bed(counts, (mm, mm))
    assert bed.found and "+deskew" not in bed.method
    assert bed.landmarks["tilt_rejected_deg"] == 21.0
    assert bed.uncertain and "found only without deskewing" in bed.reason
    error = np.hypot(bed.center_rc[0] - true["row_px"], bed.center_rc[1] - true["col_px"]) * mm
    assert error < 15.0


@pytest.mark.parametrize("index", [18, 106, 144, 198])
def test_the_chest_below_the_lungs_does_not_pass_for_the_shoulders(index):
    """Four residual views of the independent phantom (`high_in_field`, seed 0: the chest and
    upper abdomen in the field, the lungs fainter than the blood pool between them). The
    outline's lowest widening lies over 200 mm below the bed, under that column; taken as
    the shoulder line it put the bed there (200-236 mm off), the glands outside its window
    and a focus outside the crop. From the higher widening the glands agree: confident, and
    the crop holds every focus (the centre within 30 mm of that phantom's bed, which it
    defines at the lobes' centre, 17 mm below the region centre the locator aims at)."""
    view = independent_phantom().simulate(0, index, True, "high_in_field")
    mm = view.pixel_mm
    candidates = shoulder_rows(body_outline(view.counts, mm).width_mm, mm)
    assert (candidates[0] - view.bed_rc[0]) * mm > 200.0
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method.startswith("submandibular+shoulders") and not bed.uncertain
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 30.0
    result = Pipeline().run(view.counts, (mm, mm))
    assert points_in_box(list(view.foci_rc), result.crop_box)


@pytest.mark.parametrize("index", [0, 1, 39, 132])
def test_over_faint_lungs_the_shoulders_show_in_the_whole_body_mask(index):
    """Four residual views of the independent phantom (`high_in_field`, seed 0) whose lungs
    are fainter than half the body level: the run through the midline is the column of
    blood pool between them down to the chest, so its every widening lies over 200 mm below
    the bed, and the search from each found only the shoulders there (crop off the bed).
    The whole body mask widens at the real shoulders: from there the glands agree,
    confident, within 30 mm of that phantom's bed, and the crop holds every focus."""
    view = independent_phantom().simulate(0, index, True, "high_in_field")
    mm = view.pixel_mm
    outline = body_outline(view.counts, mm)
    below_bed = (np.array(shoulder_rows(outline.width_mm, mm)) - view.bed_rc[0]) * mm
    assert below_bed.size and below_bed.min() > 200.0
    in_body = (np.array(shoulder_rows(outline.body_width_mm, mm)) - view.bed_rc[0]) * mm
    assert np.abs(in_body).min() < 20.0
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert _agree(bed)
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 30.0
    result = Pipeline().run(view.counts, (mm, mm))
    assert points_in_box(list(view.foci_rc), result.crop_box)


def _agree(bed) -> bool:
    """Glands and shoulders agree: confident, or flagged only because no parotids confirm
    the glands."""
    return bed.method.startswith("submandibular+shoulders") and bed.reason in ("", _UNCONFIRMED)


def test_glands_at_odds_with_the_shoulders_keep_the_whole_body_mask_out():
    """Default patient 211 (seed 0), posterior view: the glands and the shoulders disagree by
    42 mm, so the shoulders place the bed, flagged, 18 mm off. The glands were found, so the
    whole body mask's widenings are not tried: one lies in the head, and the search from it
    (shoulders alone, more confident than a disagreement) put the bed 151 mm off."""
    cfg = PhantomConfig(seed=0)
    sim = simulate_patient(cfg, 211, residual=True)
    truth = ground_truth(cfg, sim)
    mm = truth["pixel_mm"]
    bed = locate_thyroid_bed(sim.counts[View.POSTERIOR], (mm, mm))
    assert bed.method.startswith("shoulders") and "landmarks disagree" in bed.reason
    true = truth["thyroid_bed_center"][View.POSTERIOR.value]
    error = np.hypot(bed.center_rc[0] - true["row_px"], bed.center_rc[1] - true["col_px"]) * mm
    assert error < 25.0


@pytest.mark.parametrize(("setting", "index"), [("standard", 165), ("high_in_field", 163)])
def test_glands_in_a_head_fainter_than_half_the_chest_are_paired_on_the_body_midline(
    setting, index
):
    """Two residual views of the independent phantom (seed 0) with the chest in the field:
    the head is fainter than half the body level, so the outline's run through the midline
    is empty at the glands' rows and a pair there had no midline to straddle; the bed came
    from the shoulders alone, in the chest, off the crop. The whole body mask's midline
    pairs them: glands and shoulders agree, within 10 mm of that phantom's bed."""
    view = independent_phantom().simulate(0, index, True, setting)
    mm = view.pixel_mm
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method == "submandibular+shoulders" and _agree(bed)
    outline = body_outline(view.counts, mm)
    assert np.isnan(outline.centre[round(bed.landmarks["submandibular_row"])])
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 10.0
    result = Pipeline().run(view.counts, (mm, mm))
    assert points_in_box(list(view.foci_rc), result.crop_box)


@pytest.mark.parametrize(
    ("setting", "index"),
    [("mixed", 70), ("mixed", 87), ("empty_bands", 192), ("mixed", 36), ("arms_up", 65)],
)
def test_glands_alone_that_put_the_bed_outside_a_neck_are_not_trusted(setting, index):
    """Five residual views of the independent phantom (seed 0) without a shoulder line,
    whose 'gland pair' lay in the chest or below the field's edge (no pair higher up puts
    the bed in a neck): the bed went 64-440 mm off at up to 0.98, unflagged. There neither
    the run through the midline nor the whole body is as narrow as a neck (or there is no
    body): half the confidence, flagged, and the reason says so. (Two earlier examples,
    `empty_bands` 18 and 80, now take a higher pair: the test below.)"""
    view = independent_phantom().simulate(0, index, True, setting)
    mm = view.pixel_mm
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method == "submandibular"
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm > 60.0
    assert bed.confidence < 0.5 and "glands put the bed" in bed.reason
    assert Flag.BED_UNCERTAIN in Pipeline().run(view.counts, (mm, mm)).flags


@pytest.mark.parametrize(("seed", "index"), [(0, 18), (0, 80), (2, 115)])
def test_of_gland_pairs_alone_the_lowest_that_puts_the_bed_in_a_neck(seed, index):
    """Three residual views of the independent phantom (`empty_bands`) without a shoulder
    line: the lowest confirmed pair, in the chest or at the field's edge, put the bed
    61-181 mm off (flagged, at half the confidence). Of the pairs found, the lowest whose
    bed lies in a neck is taken: within 30 mm, the crop holds every focus."""
    view = independent_phantom().simulate(seed, index, True, "empty_bands")
    mm = view.pixel_mm
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method == "submandibular" and bed.reason == "shoulders not found"
    outline = body_outline(view.counts, mm)
    row = round(bed.center_rc[0])
    assert 0 < min(outline.width_mm[row], outline.body_width_mm[row]) <= 230.0
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 30.0
    assert points_in_box(list(view.foci_rc), Pipeline().run(view.counts, (mm, mm)).crop_box)


@pytest.mark.parametrize(("seed", "setting", "index"), [(1, "standard", 67), (1, "saliva", 140)])
def test_confirmed_glands_without_shoulders_are_flagged(seed, setting, index):
    """Two residual views of the independent phantom where a confirmed pair without a
    shoulder line put the bed over 80 mm off, unflagged at the modelled 0.98; over seeds 0-2
    such locations held every focus in 95.6 % of 206 views. Nothing checks that the pair is
    the glands: one landmark alone is flagged."""
    view = independent_phantom().simulate(seed, index, True, setting)
    mm = view.pixel_mm
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method.startswith("submandibular") and "shoulders" not in bed.method
    assert bed.landmarks["glands_confirmed"] == 1.0 and "shoulder_row" not in bed.landmarks
    assert bed.uncertain and bed.reason.startswith("shoulders not found")
    cfg = CropConfig()
    small, _ = crop_box(view.counts.shape, (mm, mm), bed.center_rc, cfg)
    assert not points_in_box(list(view.foci_rc), small)
    assert Flag.BED_UNCERTAIN in Pipeline().run(view.counts, (mm, mm)).flags


@pytest.mark.parametrize(
    ("seed", "setting", "index"), [(0, "arms_up", 124), (0, "mixed", 189), (1, "high_in_field", 18)]
)
def test_shoulders_read_with_raised_arms_give_way_to_the_glands_alone(seed, setting, index):
    """Three residual views of the independent phantom where the only shoulder lines found,
    read as lifted by raised arms (the chest or the abdomen beside faint lungs), put the bed
    180-284 mm off at 0.77, with no glands at their height. Confirmed glands alone, now tried
    too, are more confident and put it within 30 mm: the crop holds every focus."""
    view = independent_phantom().simulate(seed, index, True, setting)
    mm = view.pixel_mm
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method.startswith("submandibular") and "shoulder_row" not in bed.landmarks
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 30.0
    assert bed.uncertain and bed.reason.startswith("shoulders not found")
    result = Pipeline().run(view.counts, (mm, mm))
    assert points_in_box(list(view.foci_rc), result.crop_box)


@pytest.mark.parametrize(("seed", "index"), [(0, 171), (1, 133), (2, 40)])
def test_glands_between_raised_arms_are_paired_on_the_whole_body_midline(seed, index):
    """Three residual views of the independent phantom (`arms_up`): the arms raised beside the
    head join its run through the midline on one side, whose centre at the glands' row lies
    59-74 mm aside, so the glands made no pair; the bed came from a 'shoulder line' in the
    head, 140-210 mm off. Where that run is wider than a neck, pairs are also taken about
    the whole body's midline; and with the neck hidden by the arms, confirmed glands alone
    keep their confidence: within 15 mm, the crop holds every focus."""
    view = independent_phantom().simulate(seed, index, True, "arms_up")
    mm = view.pixel_mm
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method == "submandibular" and bed.landmarks["glands_confirmed"] == 1.0
    outline = body_outline(view.counts, mm)
    row = round(bed.landmarks["submandibular_row"])
    assert outline.width_mm[row] > 230.0
    assert abs(outline.centre[row] - bed.landmarks["submandibular_col"]) * mm > 50.0
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 15.0
    assert bed.uncertain and bed.reason == "shoulders not found"
    assert points_in_box(list(view.foci_rc), Pipeline().run(view.counts, (mm, mm)).crop_box)


@pytest.mark.parametrize(
    ("setting", "index", "misjudged"),
    [("standard", 170, 25.0), ("high_in_field", 72, -23.0)],
)
def test_a_misjudged_tilt_loses_to_the_view_as_it_lies(monkeypatch, setting, index, misjudged):
    """Two residual views of the independent phantom (seed 0, lying within 4 degrees of
    straight) whose tilt, fitted to the neck above a shoulder line found in the chest, came
    out at 23-25 degrees: deskewed by it, the search found the shoulders alone or glands
    alone, 199-316 mm off. Fitted over the whole body, the tilt is within 3 degrees. With the
    misjudged tilt forced, the view as it lies shows glands and shoulders that agree: the
    more confident location wins, within 30 mm of the bed."""
    view = independent_phantom().simulate(0, index, True, setting)
    mm = view.pixel_mm
    measured = tilt_deg(body_outline(view.counts, mm), mm)
    assert abs(measured + view.meta["tilt_deg"]) < 3.0  # the phantom's angle has the other sign
    monkeypatch.setattr(landmarks, "tilt_deg", lambda outline, mm: misjudged)
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method == "submandibular+shoulders"
    assert bed.landmarks["tilt_rejected_deg"] == misjudged and not bed.uncertain
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 30.0
    assert points_in_box(list(view.foci_rc), Pipeline().run(view.counts, (mm, mm)).crop_box)


@pytest.mark.parametrize("index", [11, 22, 85, 113])
def test_the_edge_of_a_small_useful_field_is_not_a_gland_pair(index):
    """Four non-residual views of the independent phantom (`empty_bands`, seed 0: a round
    field or empty bands at the top and bottom of the matrix, the shoulders cut off). Smoothed
    together with the empty band beside it, the field's lower edge stood out as a pair of
    blobs, and as the lowest pair it was taken for the glands: the bed 109-254 mm off at
    confidence 0.98. Blobs are now measured over the useful field only."""
    view = independent_phantom().simulate(0, index, False, "empty_bands")
    mm = view.pixel_mm
    field = useful_field(view.counts, mm)
    assert 0.3 < field.mean() < 0.8 and field[view.counts > 0].all()  # counts only inside
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method.startswith("submandibular")
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 30.0


@pytest.mark.parametrize(("setting", "index"), [("tilted", 116)])
def test_glands_no_parotids_confirm_are_flagged_and_get_the_larger_crop(setting, index):
    """A residual view of the independent phantom (seed 0) where unconfirmed glands (the
    parotids of a turned head) agree with shoulders found too high: the bed over 55 mm above
    that phantom's, at confidence 0.94, and the 120 mm crop
    missed a focus, unflagged. Under the 98 % crop target such a location is flagged, and
    the larger fallback crop holds every focus."""
    view = independent_phantom().simulate(0, index, True, setting)
    mm = view.pixel_mm
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method.startswith("submandibular+shoulders") and bed.reason == _UNCONFIRMED
    assert (view.bed_rc[0] - bed.center_rc[0]) * mm > 40.0
    cfg = CropConfig()
    small, _ = crop_box(view.counts.shape, (mm, mm), bed.center_rc, cfg)
    assert not points_in_box(list(view.foci_rc), small)
    result = Pipeline().run(view.counts, (mm, mm))
    assert Flag.BED_UNCERTAIN in result.flags and _UNCONFIRMED in result.bed_reason
    assert points_in_box(list(view.foci_rc), result.crop_box)


@pytest.mark.parametrize(("setting", "index"), [("faint_glands", 186), ("mixed", 109)])
def test_of_shoulder_lines_alike_the_one_below_a_neck_in_the_whole_mask(setting, index):
    """Two residual views of the independent phantom (seed 0) without glands found, whose
    run through the midline widens both at the shoulders and, over 150 mm lower, at the
    chest below lungs fainter than half the body level. From either the shoulders alone
    place the bed, equally confident; the lower one was taken and the crop missed the bed.
    Above the chest's widening the whole body mask is the torso, wider than the narrowest
    shoulders: the other is taken, within 50 mm of that phantom's bed, and the crop holds
    every focus."""
    view = independent_phantom().simulate(0, index, True, setting)
    mm = view.pixel_mm
    below_bed = (
        np.array(shoulder_rows(body_outline(view.counts, mm).width_mm, mm)) - view.bed_rc[0]
    ) * mm
    assert below_bed.max() > 150.0 and np.abs(below_bed).min() < 50.0
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method.startswith("shoulders") and bed.reason == "glands not found"
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 50.0
    result = Pipeline().run(view.counts, (mm, mm))
    assert points_in_box(list(view.foci_rc), result.crop_box)


@pytest.mark.parametrize("index", [16, 53, 171])
def test_a_tilt_misjudged_is_found_by_trial_tilts(monkeypatch, index):
    """Three residual views of the independent phantom (`tilted`, seed 0) lying 18-20 deg
    from straight: the shoulder line is spread over so many rows that no shoulders are
    found. The tilt fitted to the neck above them was 0, and nothing was found (the crop on
    the middle of the neck missed the bed). Fitted over the whole body, it comes within 8
    degrees, and the deskewed view gives glands and shoulders that agree, within 35 mm.
    With the tilt misjudged as before (forced to 0), a trial tilt finds them: taken,
    flagged, at half the confidence, within 35 mm of that phantom's bed, and the crop holds
    every focus."""
    view = independent_phantom().simulate(0, index, True, "tilted")
    mm = view.pixel_mm
    outline = body_outline(view.counts, mm)
    assert shoulder_rows(outline.width_mm, mm) == []
    assert abs(tilt_deg(outline, mm) + view.meta["tilt_deg"]) < 8.0
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.method == "submandibular+shoulders+deskew" and "trial" not in bed.reason
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 35.0
    monkeypatch.setattr(landmarks, "tilt_deg", lambda outline, mm: 0.0)
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.found and bed.method == "submandibular+shoulders+deskew"
    assert "trial" in bed.reason and bed.confidence <= 0.5
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 35.0
    result = Pipeline().run(view.counts, (mm, mm))
    assert Flag.BED_UNCERTAIN in result.flags and Flag.BED_NOT_FOUND not in result.flags
    assert points_in_box(list(view.foci_rc), result.crop_box)
