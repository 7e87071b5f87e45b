"""Loading and validating labelled cohorts, on real PNG and DICOM files written to tmp_path."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dicom_factory import counts_image, nm_dataset, view_code, write_dicom
from thyrocad import errors
from thyrocad.cli.main import app
from thyrocad.data.cohort import load_cohort, parse_label
from thyrocad.errors import CohortError
from thyrocad.files import thyrocad_home
from thyrocad.study import View


def _png(path: Path, seed: int, shape: tuple[int, int] = (64, 64)) -> Path:
    """A distinct 8-bit greyscale PNG (content depends on `seed`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _dicom(path: Path, views: tuple[View, ...], seed: int, spacing: float = 2.21) -> Path:
    """A real NM DICOM file with one frame per view in `views` (content depends on `seed`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [counts_image(seed=seed * 10 + i) for i in range(len(views))]
    ds = nm_dataset(frames, [view_code(v) for v in views], pixel_spacing=(spacing, spacing))
    return write_dicom(ds, path)


def _csv(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.csv").write_text(text)
    return root


def _problems(root: Path, **kwargs) -> list[str]:
    with pytest.raises(CohortError) as info:
        load_cohort(root, **kwargs)
    return info.value.problems


@pytest.fixture
def csv_cohort(tmp_path: Path) -> Path:
    """Three patients: A (two views, residual), B (residual), C (non-residual)."""
    root = tmp_path / "cohort"
    _png(root / "img" / "a_ant.png", 1)
    _png(root / "img" / "a_post.png", 2)
    _png(root / "img" / "b.png", 3)
    _png(root / "img" / "c.png", 4)
    return _csv(
        root,
        "path,label,patient_id,view,site,acquired\n"
        "img/c.png,non_residual,PID-C,anterior,north,day1\n"
        "img/a_ant.png,Residual,PID-A,anterior,south,day1\n"
        "img/a_post.png,residual,PID-A,posterior,south,day2\n"
        "img/b.png,1,PID-B,,north,day3\n",
    )


# --- the CSV layout ----------------------------------------------------------------------------


def test_csv_layout_patients_labels_files_and_attributes(csv_cohort: Path):
    cohort = load_cohort(csv_cohort, read=False)
    assert cohort.layout == "csv"
    assert cohort.root == csv_cohort
    assert cohort.patient_ids == ["PID-A", "PID-B", "PID-C"]
    assert cohort.labels.tolist() == [1, 1, 0]
    a, b, c = cohort.patients
    assert (a.label_name, c.label_name) == ("residual", "non_residual")
    assert a.files == (csv_cohort / "img/a_ant.png", csv_cohort / "img/a_post.png")
    assert [f.view_hint for f in a.cohort_files] == [View.ANTERIOR, View.POSTERIOR]
    assert b.cohort_files[0].view_hint is None
    # 'site' agrees across A's rows: a patient attribute; 'acquired' differs: per file only.
    assert dict(a.attributes) == {"site": "south"}
    assert [f.attributes["acquired"] for f in a.cohort_files] == ["day1", "day2"]
    assert dict(b.attributes) == {"site": "north", "acquired": "day3"}
    assert len(cohort.files) == 4
    assert a.views is None  # not read


def test_summary_counts(csv_cohort: Path):
    summary = load_cohort(csv_cohort, read=False).summary()
    assert summary["patients"] == 3
    assert summary["patients_per_class"] == {"residual": 2, "non_residual": 1}
    assert summary["files"] == 4
    assert summary["files_per_patient"] == {"1": 2, "2": 1}
    assert summary["views_per_patient"] is None
    assert len(summary["data_hash"]) == 64


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("residual", 1),
        (" RESIDUAL ", 1),
        ("1", 1),
        ("non_residual", 0),
        ("Non-Residual", 0),
        ("non residual", 0),
        ("0", 0),
        ("yes", None),
        ("", None),
        ("2", None),
    ],
)
def test_parse_label(text: str, label: int | None):
    assert parse_label(text) == label


# --- each problem type -------------------------------------------------------------------------


def test_unknown_label_is_reported_with_its_line(csv_cohort: Path):
    text = (csv_cohort / "labels.csv").read_text().replace("1,PID-B", "maybe,PID-B")
    _csv(csv_cohort, text)
    (problem,) = _problems(csv_cohort, read=False)
    assert problem.startswith("labels.csv line 5: unknown label 'maybe'")


def test_missing_columns_are_named_with_those_found(tmp_path: Path):
    _csv(tmp_path, "file,label,patient\nx.png,residual,P1\n")
    (problem,) = _problems(tmp_path, read=False)
    assert "missing column(s) path, patient_id" in problem
    assert "found 'file', 'label', 'patient'" in problem


def test_semicolon_separated_csv_gets_a_hint(tmp_path: Path):
    _csv(tmp_path, "path;label;patient_id\nx.png;residual;P1\n")
    (problem,) = _problems(tmp_path, read=False)
    assert "';' as separator" in problem


def test_repeated_column(tmp_path: Path):
    _csv(tmp_path, "path,label,patient_id,Label\nx.png,residual,P1,0\n")
    (problem,) = _problems(tmp_path, read=False)
    assert problem == "labels.csv line 1: column(s) label appear more than once"


@pytest.mark.parametrize("text", ["", "\n\n", "path,label,patient_id\n"])
def test_empty_csv(tmp_path: Path, text: str):
    _csv(tmp_path, text)
    (problem,) = _problems(tmp_path, read=False)
    assert problem.startswith("labels.csv: ")
    assert "empty" in problem or "no rows" in problem


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("img/b.png,residual\n", "labels.csv line 6: 2 fields, the header has 6"),
        ("img/b2.png,residual,,,x,y\n", "labels.csv line 6: empty patient_id"),
        (",residual,PID-E,,x,y\n", "labels.csv line 6: empty path"),
        ("img/b.png,residual,PID-B,lateral,x,y\n", "labels.csv line 6: unknown view 'lateral'"),
    ],
)
def test_malformed_rows(csv_cohort: Path, row: str, expected: str):
    _png(csv_cohort / "img" / "b2.png", 8)
    _csv(csv_cohort, (csv_cohort / "labels.csv").read_text() + row)
    problems = _problems(csv_cohort, read=False)
    assert problems[0].startswith(expected), problems


def test_csv_not_utf8(tmp_path: Path):
    (tmp_path / "labels.csv").write_bytes(
        "path,label,patient_id\nb\xe9.png,1,P\n".encode("latin-1")
    )
    (problem,) = _problems(tmp_path, read=False)
    assert problem.startswith("labels.csv: not UTF-8 text")


def test_missing_file(csv_cohort: Path):
    (csv_cohort / "img" / "b.png").unlink()
    (problem,) = _problems(csv_cohort, read=False)
    assert problem == "labels.csv line 5: 'img/b.png' does not exist"


@pytest.mark.parametrize("path", ["../outside.png", "img/../../outside.png", "/tmp/x.png"])
def test_path_outside_the_cohort_folder(csv_cohort: Path, path: str):
    _png(csv_cohort.parent / "outside.png", 9)
    text = (csv_cohort / "labels.csv").read_text() + f"{path},residual,PID-D,,x,y\n"
    _csv(csv_cohort, text)
    (problem,) = _problems(csv_cohort, read=False)
    assert problem.startswith("labels.csv line 6: path ")
    assert "outside the cohort folder" in problem or "absolute" in problem


def test_same_path_twice(csv_cohort: Path):
    text = (csv_cohort / "labels.csv").read_text() + "img/./b.png,residual,PID-E,,x,y\n"
    _csv(csv_cohort, text)
    (problem,) = _problems(csv_cohort, read=False)
    assert problem == "labels.csv lines 5, 6: the file 'img/b.png' is listed more than once"


def test_identical_content_under_two_names(csv_cohort: Path):
    (csv_cohort / "img" / "copy.png").write_bytes((csv_cohort / "img" / "c.png").read_bytes())
    text = (csv_cohort / "labels.csv").read_text() + "img/copy.png,residual,PID-E,,x,y\n"
    _csv(csv_cohort, text)
    (problem,) = _problems(csv_cohort, read=False)
    assert problem.startswith("labels.csv lines 2, 6: files 'img/c.png', 'img/copy.png' have")
    assert "identical content" in problem


def test_conflicting_labels_of_one_patient(csv_cohort: Path):
    text = (
        (csv_cohort / "labels.csv")
        .read_text()
        .replace("img/a_post.png,residual", "img/a_post.png,non_residual")
    )
    _csv(csv_cohort, text)
    (problem,) = _problems(csv_cohort, read=False)
    assert problem == (
        "labels.csv lines 3, 4: one patient with conflicting labels (non_residual, residual)"
    )
    assert "PID-A" not in problem


def test_one_class_cohort_needs_the_explicit_flag(tmp_path: Path, caplog):
    _png(tmp_path / "a.png", 1)
    _png(tmp_path / "b.png", 2)
    _csv(tmp_path, "path,label,patient_id\na.png,residual,P1\nb.png,residual,P2\n")
    (problem,) = _problems(tmp_path, read=False)
    assert "all 2 patients are residual" in problem
    with caplog.at_level(logging.WARNING, logger="thyrocad.data.cohort"):
        cohort = load_cohort(tmp_path, read=False, require_both_classes=False)
    assert cohort.labels.tolist() == [1, 1]
    assert "one-class cohort" in caplog.text


def test_every_problem_is_listed_not_just_the_first(csv_cohort: Path):
    """Four distinct problems in one CSV give four problems, each with its line."""
    _png(csv_cohort / "img" / "d.png", 5)
    text = (csv_cohort / "labels.csv").read_text()
    text = text.replace("img/b.png,1", "img/missing.png,1")  # line 5: missing file
    text = text.replace("img/c.png,non_residual", "img/c.png,unsure")  # line 2: unknown label
    text += "../d.png,non_residual,PID-D,,x,y\n"  # line 6: escapes the folder
    text += "img/d.png,non_residual,PID-A,,x,y\n"  # line 7: A is residual on lines 3, 4
    _csv(csv_cohort, text)
    problems = _problems(csv_cohort, read=False)
    assert len(problems) == 4, problems
    assert sorted(p.split(":")[0] for p in problems) == [
        "labels.csv line 2",
        "labels.csv line 5",
        "labels.csv line 6",
        "labels.csv lines 3, 4, 7",
    ]
    assert not [p for p in problems if "PID-" in p]  # patient IDs stay out of messages


def test_not_a_folder_and_no_layout(tmp_path: Path):
    with pytest.raises(CohortError, match="does not exist"):
        load_cohort(tmp_path / "nowhere")
    _png(tmp_path / "loose.png", 1)
    (problem,) = _problems(tmp_path, read=False)
    assert "neither labels.csv nor class folders" in problem


# --- reading the files (read=True) ------------------------------------------------------------


@pytest.fixture
def dicom_cohort(tmp_path: Path) -> Path:
    """A: anterior + posterior in one file; B: one file per view; C: a PNG with a view hint."""
    root = tmp_path / "cohort"
    _dicom(root / "a.dcm", (View.ANTERIOR, View.POSTERIOR), 1)
    _dicom(root / "b" / "ant.dcm", (View.ANTERIOR,), 2)
    _dicom(root / "b" / "post.dcm", (View.POSTERIOR,), 3)
    _png(root / "c.png", 4)
    return _csv(
        root,
        "path,label,patient_id,view\n"
        "a.dcm,residual,PID-A,\n"
        "b/ant.dcm,residual,PID-B,\n"
        "b/post.dcm,residual,PID-B,\n"
        "c.png,non_residual,PID-C,anterior\n",
    )


def test_read_records_views_and_load_study_merges_them(dicom_cohort: Path):
    cohort = load_cohort(dicom_cohort)
    a, b, c = cohort.patients
    assert a.views == (View.ANTERIOR, View.POSTERIOR)
    assert b.views == (View.ANTERIOR, View.POSTERIOR)
    assert c.views == (View.ANTERIOR,)
    assert cohort.summary()["views_per_patient"] == {"anterior": 1, "anterior+posterior": 2}
    study = b.load_study()
    assert study.views == (View.ANTERIOR, View.POSTERIOR)
    np.testing.assert_array_equal(study.image(View.ANTERIOR), counts_image(seed=20))
    np.testing.assert_array_equal(study.image(View.POSTERIOR), counts_image(seed=30))
    assert study.pixel_spacing_mm == pytest.approx((2.21, 2.21))
    assert load_cohort(dicom_cohort, read=False).data_hash() == cohort.data_hash()


def test_decoded_views_are_remembered_by_content(dicom_cohort: Path, monkeypatch):
    first = load_cohort(dicom_cohort)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr("thyrocad.data.cohort.validation.load_study", no_decoding)
    again = load_cohort(dicom_cohort)  # same files, same reader: nothing is decoded
    assert [p.views for p in again.patients] == [p.views for p in first.patients]
    assert again.summary() == first.summary()
    assert again.data_hash() == first.data_hash()
    monkeypatch.undo()
    _dicom(dicom_cohort / "a.dcm", (View.ANTERIOR,), 1)  # new content under the same name
    assert load_cohort(dicom_cohort).patients[0].views == (View.ANTERIOR,)
    for entry in (thyrocad_home() / "cache" / "cohorts-decoded").glob("*.json"):
        entry.write_text("{not json")  # a damaged cache entry is only a miss
    assert load_cohort(dicom_cohort).patients[0].views == (View.ANTERIOR,)


def test_unreadable_files_report_the_reader_error(dicom_cohort: Path):
    whole = (dicom_cohort / "a.dcm").read_bytes()
    (dicom_cohort / "a.dcm").write_bytes(whole[: len(whole) // 2])  # truncated
    (dicom_cohort / "c.png").write_text("not an image")
    problems = _problems(dicom_cohort)
    assert len(problems) == 2, problems
    assert problems[0].startswith("labels.csv line 2: 'a.dcm' cannot be read (")
    assert problems[1].startswith("labels.csv line 5: 'c.png' cannot be read (")
    for problem in problems:
        name = re.search(r"cannot be read \((\w+): ", problem).group(1)
        assert issubclass(getattr(errors, name), errors.InputError)
    assert not _problems_or_none(dicom_cohort, read=False)


def _problems_or_none(root: Path, **kwargs) -> list[str] | None:
    try:
        load_cohort(root, **kwargs)
    except CohortError as exc:
        return exc.problems
    return None


def test_two_anterior_views_of_one_patient(dicom_cohort: Path):
    _dicom(dicom_cohort / "b" / "post.dcm", (View.ANTERIOR,), 3)  # now both of B's are anterior
    (problem,) = _problems(dicom_cohort)
    assert problem == "labels.csv lines 3, 4: one patient with 2 anterior views"


def test_views_of_one_patient_at_different_spacings(dicom_cohort: Path):
    _dicom(dicom_cohort / "b" / "post.dcm", (View.POSTERIOR,), 3, spacing=4.42)
    (problem,) = _problems(dicom_cohort)
    assert problem == "labels.csv lines 3, 4: one patient's files have different pixel spacings"


# --- the class-folder layout -------------------------------------------------------------------


@pytest.fixture
def folder_cohort(tmp_path: Path) -> Path:
    root = tmp_path / "cohort"
    _png(root / "residual" / "P1.png", 1)
    _png(root / "residual" / "P2" / "anterior.png", 2)
    _png(root / "residual" / "P2" / "posterior.png", 3)
    _png(root / "Non-Residual" / "P3.png", 4)
    (root / "residual" / ".DS_Store").write_bytes(b"\0")
    (root / "README.txt").write_text("top-level files are ignored")
    return root


def test_folder_layout_files_and_patient_folders(folder_cohort: Path):
    cohort = load_cohort(folder_cohort, read=False)
    assert cohort.layout == "folders"
    assert cohort.patient_ids == ["P1", "P2", "P3"]
    assert cohort.labels.tolist() == [1, 1, 0]
    assert [f.relpath for f in cohort.patients[1].cohort_files] == [
        "residual/P2/anterior.png",
        "residual/P2/posterior.png",
    ]
    assert cohort.summary()["files_per_patient"] == {"1": 2, "2": 1}


def test_folder_layout_without_patients(tmp_path: Path):
    (tmp_path / "residual").mkdir()
    (tmp_path / "non_residual").mkdir()
    (problem,) = _problems(tmp_path, read=False)
    assert problem == "the cohort has no patients"


def test_folder_layout_problems(folder_cohort: Path):
    _png(folder_cohort / "non_residual" / "P1.png", 5)  # P1 is also residual
    (folder_cohort / "residual" / "P4").mkdir()  # empty patient folder
    _png(folder_cohort / "residual" / "P2" / "old" / "x.png", 6)  # nested folder
    _png(folder_cohort / "maybe" / "P5.png", 7)  # not a class folder
    problems = _problems(folder_cohort, read=False)
    assert len(problems) == 4, problems
    joined = "\n".join(problems)
    assert "maybe/: not a class folder" in joined
    assert "residual/P4/: patient folder without files" in joined
    assert "residual/P2/old/: folders inside a patient folder" in joined
    assert "non_residual/P1.png, residual/P1.png: one patient with conflicting labels" in joined


# --- data hash ---------------------------------------------------------------------------------


def test_data_hash_is_stable_and_independent_of_row_order(csv_cohort: Path):
    first = load_cohort(csv_cohort, read=False).data_hash()
    assert load_cohort(csv_cohort, read=False).data_hash() == first
    header, *rows = (csv_cohort / "labels.csv").read_text().splitlines()
    _csv(csv_cohort, "\n".join([header, *reversed(rows)]) + "\n")
    assert load_cohort(csv_cohort, read=False).data_hash() == first


def test_data_hash_changes_with_one_byte_or_one_label(csv_cohort: Path):
    before = load_cohort(csv_cohort, read=False).data_hash()
    target = csv_cohort / "img" / "b.png"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    after_byte = load_cohort(csv_cohort, read=False).data_hash()
    assert after_byte != before
    text = (csv_cohort / "labels.csv").read_text().replace("img/b.png,1", "img/b.png,0")
    _csv(csv_cohort, text)
    assert load_cohort(csv_cohort, read=False).data_hash() not in (before, after_byte)


# --- privacy -----------------------------------------------------------------------------------


def test_patient_ids_never_logged_at_info_or_above(csv_cohort: Path, caplog):
    with caplog.at_level(logging.DEBUG, logger="thyrocad"):
        load_cohort(csv_cohort, read=False)
        (csv_cohort / "img" / "b.png").unlink()
        with pytest.raises(CohortError):
            load_cohort(csv_cohort, read=False)
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert loud, "expected an INFO summary"
    assert not [m for m in loud if "PID-" in m]


# --- a generated phantom cohort ---------------------------------------------------------------


@pytest.fixture(scope="module")
def phantom_cohorts(tmp_path_factory) -> dict[str, Path]:
    """The same 4 simulated patients (2 residual) in each of the generator's three formats."""
    from thyrocad.data.phantom import PhantomConfig, generate_cohort

    config = PhantomConfig(n_patients=4, n_residual=2, seed=1)
    base = tmp_path_factory.mktemp("phantom")
    out = {}
    for fmt in ("multiframe", "per-view", "png"):
        out[fmt] = base / fmt
        generate_cohort(out[fmt], config, fmt=fmt, workers=1)
    return out


@pytest.mark.parametrize("fmt", ["multiframe", "per-view", "png"])
def test_loads_a_generated_phantom_cohort(phantom_cohorts: dict[str, Path], fmt: str):
    cohort = load_cohort(phantom_cohorts[fmt])
    summary = cohort.summary()
    assert summary["patients_per_class"] == {"residual": 2, "non_residual": 2}
    assert summary["files"] == (4 if fmt == "multiframe" else 8)
    assert summary["views_per_patient"] == {"anterior+posterior": 4}
    assert "n_foci" in cohort.patients[0].attributes
    study = cohort.patients[0].load_study()
    assert sorted(v.value for v in study.views) == ["anterior", "posterior"]


def test_per_view_files_merge_to_the_multiframe_study(phantom_cohorts: dict[str, Path]):
    multi = load_cohort(phantom_cohorts["multiframe"], read=False).patients[0].load_study()
    split = load_cohort(phantom_cohorts["per-view"], read=False).patients[0].load_study()
    for view in (View.ANTERIOR, View.POSTERIOR):
        np.testing.assert_array_equal(multi.image(view), split.image(view))
    assert multi.pixel_spacing_mm == split.pixel_spacing_mm


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_cohort_check_ok_and_with_problems(csv_cohort: Path):
    runner = CliRunner()
    ok = runner.invoke(app, ["cohort-check", str(csv_cohort), "--no-read"])
    assert ok.exit_code == 0, ok.output
    assert "non_residual" in ok.output
    assert "not read" in ok.output
    assert load_cohort(csv_cohort, read=False).data_hash() in ok.output
    (csv_cohort / "img" / "b.png").unlink()
    bad = runner.invoke(app, ["cohort-check", str(csv_cohort), "--no-read"])
    assert bad.exit_code == 1
    assert "1 problem(s)" in bad.output
    assert "img/b.png" in bad.output
    assert "does not exist" in bad.output


def test_cli_reads_views(dicom_cohort: Path):
    result = CliRunner().invoke(app, ["cohort-check", str(dicom_cohort)])
    assert result.exit_code == 0, result.output
    assert "anterior+posterior: 2" in result.output


# --- views and patients from file names ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "view", "patient"),
    [
        ("PH0001_anterior.png", View.ANTERIOR, "PH0001"),
        ("PH0001_posterior.png", View.POSTERIOR, "PH0001"),
        ("pt 12 - Post.jpg", View.POSTERIOR, "pt 12"),
        ("0042.ANT.dcm", View.ANTERIOR, "0042"),
        ("PH0001ANT.png", View.ANTERIOR, "PH0001"),
        ("smithPOST.png", View.POSTERIOR, "smith"),
        ("Anterior.png", View.ANTERIOR, ""),
        ("case-7_Ant.png", View.ANTERIOR, "case-7"),
    ],
)
def test_view_and_patient_from_a_file_name(name: str, view: View, patient: str):
    from thyrocad.io.names import view_from_name

    named = view_from_name(name)
    assert (named.view, named.patient) == (view, patient)


@pytest.mark.parametrize(
    "name", ["GRANT.png", "elephant.png", "PH0001.png", "scan_a.png", "postop.png", "antrum.png"]
)
def test_names_without_a_view_token(name: str):
    from thyrocad.io.names import view_from_name

    assert view_from_name(name) is None


def test_read_study_takes_a_view_from_the_name_only_where_the_content_states_none(tmp_path):
    from thyrocad.io.read import read_study

    png = _png(tmp_path / "PH7_post.png", 1)
    assert read_study(png).views == (View.POSTERIOR,)
    assert read_study(png, name_views=False).views == (View.UNKNOWN,)
    assert read_study(png, view=View.ANTERIOR).views == (View.ANTERIOR,)  # the caller's word
    dcm = _dicom(tmp_path / "PH7_post.dcm", (View.ANTERIOR,), 2)
    assert read_study(dcm).views == (View.ANTERIOR,)  # the header wins over the name


@pytest.fixture
def named_folder_cohort(tmp_path: Path) -> Path:
    """Class folders of PNG exports named PATIENT_view, as a researcher's export tool writes
    them: 3 residual and 2 non-residual patients, both views each, one unnamed stray file."""
    root = tmp_path / "cohort"
    seed = 0
    for label, patients in (("residual", ("R1", "R2", "R3")), ("non_residual", ("N1", "N2"))):
        for patient in patients:
            for token in ("ANT", "_posterior"):
                seed += 1
                _png(root / label / f"{patient}{token}.png", seed)
    _png(root / "residual" / "scan7.png", 99)
    return root


def test_class_folder_files_are_grouped_by_the_name_before_the_view_token(named_folder_cohort):
    from thyrocad.data.cohort import cohort_warnings, ungrouped_files
    from thyrocad.data.splits import stratified_splits

    cohort = load_cohort(named_folder_cohort)
    assert cohort.patient_ids == ["N1", "N2", "R1", "R2", "R3", "scan7"]
    r1 = cohort.patients[2]
    assert [f.relpath for f in r1.cohort_files] == [
        "residual/R1ANT.png",
        "residual/R1_posterior.png",
    ]
    assert r1.views == (View.ANTERIOR, View.POSTERIOR)
    assert r1.load_study().views == (View.ANTERIOR, View.POSTERIOR)  # as training reads it
    assert [f.facts.view_source for f in r1.cohort_files] == ["file name", "file name"]
    summary = cohort.summary()
    assert summary["grouping"] == {"file": 1, "name": 10}
    assert summary["views_per_class"] == {
        "residual": {"anterior": 3, "posterior": 3, "unknown": 1},
        "non_residual": {"anterior": 2, "posterior": 2},
    }
    assert summary["image_sizes"] == {"64x64": 11}
    assert summary["pixel_spacings"] == {"none": 11}
    assert summary["pixels"] == {"8-bit gray levels": 11}
    assert ungrouped_files(cohort) == ["residual/scan7.png"]
    warnings = "\n".join(cohort_warnings(cohort))
    assert "1 file(s) in the class folders have no view token" in warnings
    assert "11 of 11 file(s) carry no pixel spacing" in warnings  # once, not per file
    assert "not counts" in warnings
    assert "1 file(s) have no recognised view (residual/scan7.png)" in warnings
    # both views of a patient always land on the same side of a split
    for split in stratified_splits(cohort.patient_ids, cohort.labels, 3, 0.5, seed=0):
        assert not set(split.train) & set(split.test)
        assert {"R1", "R2", "R3"} & set(split.test)


def test_mixed_sizes_and_spacings_and_disagreeing_names_are_warned(tmp_path: Path):
    from thyrocad.data.cohort import cohort_warnings

    root = tmp_path / "cohort"
    _dicom(root / "A_posterior.dcm", (View.ANTERIOR,), 1)  # named posterior, header anterior
    _dicom(root / "B.dcm", (View.ANTERIOR, View.POSTERIOR), 2, spacing=4.42)
    _png(root / "C_ant.png", 3, shape=(80, 64))
    _csv(
        root,
        "path,label,patient_id\nA_posterior.dcm,residual,A\nB.dcm,non_residual,B\n"
        "C_ant.png,residual,C\n",
    )
    cohort = load_cohort(root)
    a, _, c = cohort.patients
    assert a.views == (View.ANTERIOR,) and a.cohort_files[0].facts.view_source == "header"
    assert c.views == (View.ANTERIOR,) and c.cohort_files[0].facts.view_source == "file name"
    summary = cohort.summary()
    assert summary["pixel_spacings"] == {"2.21 x 2.21 mm": 1, "4.42 x 4.42 mm": 1, "none": 1}
    assert summary["pixels"] == {"16-bit counts": 2, "8-bit gray levels": 1}
    warnings = cohort_warnings(cohort)
    assert any(w.startswith("pixel spacings differ: ") for w in warnings)
    assert any(w.startswith("image sizes differ: ") for w in warnings)
    assert any("mixes them with DICOM counts" in w for w in warnings)
    assert any("named for one view but their header states the other (A_posterior.dcm)" in w
               for w in warnings)  # fmt: skip
    assert any(w.startswith("2 of 3 patient(s) have one view only") for w in warnings)


def test_a_cohort_of_two_view_dicom_counts_has_no_warnings(dicom_cohort: Path):
    from thyrocad.data.cohort import cohort_warnings

    text = (
        (dicom_cohort / "labels.csv").read_text().replace("c.png,non_residual,PID-C,anterior\n", "")
    )
    _dicom(dicom_cohort / "c.dcm", (View.ANTERIOR, View.POSTERIOR), 4)
    _csv(dicom_cohort, text + "c.dcm,non_residual,PID-C,\n")
    assert cohort_warnings(load_cohort(dicom_cohort)) == []


def test_cli_cohort_check_shows_the_grouping_and_warnings_at_80_columns(named_folder_cohort):
    result = CliRunner().invoke(
        app, ["cohort-check", str(named_folder_cohort)], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "6: 4 residual, 2 non_residual" in out
    assert "3 anterior, 3 posterior, 1 unknown" in out
    assert "residual/R1ANT.png (anterior) + residual/R1_posterior.png" in out
    assert "not grouped: residual/scan7.png" in out
    assert out.count("no pixel spacing") == 1
    assert "counts" not in out.split("warning:")[0]  # 8-bit exports are not called counts
    assert "8-bit gray levels: 11" in out
