"""Input-domain flags on real scans and on phantom views: what each check says, and the
measures behind its threshold (head-and-neck share of the field width, total counts).

Real scans: every DICOM in realdata/ (see realdata/MANIFEST.md), every DICOM and PNG in a
folder given with `--scans` (figure exports you hold but may not redistribute), and four
whole-body files in ../shared/refdata/nm-dicom (their neck fields). Phantom: the default cohort
(`ensure_default_cohort`), or a fresh one of `--patients` patients. Prints markdown tables and
writes benchmarks/results/input_domain.json.

Usage: python benchmarks/input_domain.py [--patients N] [--refdata ../shared/refdata] [--scans DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from thyrocad.data.phantom import PhantomConfig, ensure_default_cohort, generate_cohort
from thyrocad.errors import InputError
from thyrocad.intake import load_study
from thyrocad.intake.domain import head_neck_share

ROOT = Path(__file__).resolve().parents[1]
WHOLE_BODY = ("wg04/NM1_UNC", "wg04/NM1_J2KI", "wg04/NM1_JLSN", "openrem/NM-NmIm-Siemens.dcm")


def measure(path: Path, base: Path) -> list[dict]:
    """One record per view: flags, head-and-neck share, total counts (`file` relative to
    `base`)."""
    study = load_study(path)
    return [
        {
            "file": str(path.relative_to(base)),
            "view": im.view.value,
            "share": head_neck_share(im.counts),  # None: no body outline
            "counts": float(im.counts.sum(dtype=np.float64)),
            "flags": list(im.flags),
        }
        for im in study.images
    ]


def real_scans(refdata: Path, extra: Path | None) -> list[dict]:
    records = [
        r for path in sorted((ROOT / "realdata").rglob("*.dcm")) for r in measure(path, ROOT)
    ]
    if extra is not None:
        scans = sorted(p for p in extra.rglob("*") if p.suffix.lower() in {".dcm", ".png"})
        records += [r for path in scans for r in measure(path, extra.parent)]
    if refdata.is_dir():
        scans = [refdata / "nm-dicom" / name for name in WHOLE_BODY]
        records += [r for path in scans for r in measure(path, refdata)]
    return records


def phantom_views(patients: int | None) -> tuple[str, list[dict]]:
    if patients is None:
        folder = ensure_default_cohort()
        return f"default cohort {folder.name}", _cohort_views(folder)
    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(tmp, PhantomConfig(n_patients=patients, n_residual=patients // 2))
        return f"fresh cohort of {patients} patients (seed 0)", _cohort_views(Path(tmp))


def _cohort_views(folder: Path) -> list[dict]:
    records = []
    for path in sorted((folder / "images").glob("*.dcm")):
        try:
            records.extend(measure(path, folder))
        except InputError as exc:  # a phantom file the reader refuses: report, do not hide
            records.append({"file": path.name, "error": f"{type(exc).__name__}: {exc}"})
    return records


def _share(record: dict) -> str:
    return "no outline" if record["share"] is None else f"{record['share']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, help="a fresh phantom cohort of N patients")
    parser.add_argument("--refdata", type=Path, default=ROOT.parent / "shared" / "refdata")
    parser.add_argument("--scans", type=Path, help="a folder of further real scans or exports")
    args = parser.parse_args()
    real = real_scans(args.refdata, args.scans)
    print("| scan | view | head/neck share | counts | flags |\n|---|---|---|---|---|")
    for r in real:
        name = r["file"]
        flags = "; ".join(r["flags"]) or "none"
        print(f"| {name} | {r['view']} | {_share(r)} | {r['counts']:.3g} | {flags} |")
    what, phantom = phantom_views(args.patients)
    views = [r for r in phantom if "error" not in r]
    flagged = [r for r in views if r["flags"]]
    shares = [r["share"] for r in views if r["share"] is not None]
    counts = [r["counts"] for r in views]
    print(f"\nphantom, {what}: {len(views)} views, {len(flagged)} flagged")
    print(f"  head/neck share {min(shares):.3f}-{max(shares):.3f}", end="")
    print(f" ({len(views) - len(shares)} views without a body outline)")
    print(f"  counts per view {min(counts):.3g}-{max(counts):.3g}")
    for r in flagged[:10]:
        print(f"  flagged: {Path(r['file']).name} {r['view']}: {'; '.join(r['flags'])}")
    errors = [r for r in phantom if "error" in r]
    for r in errors:
        print(f"  error: {Path(r['file']).name}: {r['error']}")
    out = ROOT / "benchmarks" / "results" / "input_domain.json"
    phantom_summary = {
        "cohort": what,
        "views": len(views),
        "flagged": flagged,
        "errors": errors,
        "share_range": [min(shares), max(shares)],
        "counts_range": [min(counts), max(counts)],
    }
    out.write_text(json.dumps({"real": real, "phantom": phantom_summary}, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
