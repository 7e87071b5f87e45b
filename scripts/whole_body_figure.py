"""Figure of the neck field thyrocad cuts out of each real whole-body sweep (docs/inputs.md).

    python scripts/whole_body_figure.py [REFDATA_NM_DICOM] [--out FILE.png]

For every whole-body file in ../shared/refdata/nm-dicom: the sweep (scaled to 3/8) with the
neck field outlined in red, and below it the neck field itself (scaled to 1/2), as
`thyrocad.intake.load_study` gives it to the diagnosis. Prints one markdown table row per view
(neck field rows, head top and shoulder rows, flags). Needs only the reference files; writes
docs/figures/whole_body_neck_fields.png unless --out says otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from thyrocad.errors import InputError
from thyrocad.intake import find_neck_field, load_study
from thyrocad.io.read import read_study

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFDATA = ROOT.parent / "shared" / "refdata" / "nm-dicom"
FILES = (
    "wg04/NM1_UNC", "wg04/NM1_J2KR", "wg04/NM1_J2KI", "wg04/NM1_JLSL", "wg04/NM1_JLSN",
    "wg04/NM1_JPLL", "wg04/NM1_JPLY", "wg04/NM1_RLE", "pydicom/JPGExtended.dcm",
    "openrem/NM-NmIm-Siemens.dcm",
)  # fmt: skip
SWEEP_SCALE, FIELD_SCALE = 0.375, 0.5
COLUMN, LABEL = 136, 44


def display(counts: np.ndarray) -> np.ndarray:
    """8-bit display: square root, white at the 99.5th percentile."""
    white = max(float(np.percentile(counts, 99.5)), 1e-6)
    return (255 * np.sqrt(np.clip(counts, 0, white) / white)).astype(np.uint8)


def scaled(image: np.ndarray, scale: float) -> Image.Image:
    rows, cols = image.shape
    size = (round(cols * scale), round(rows * scale))
    return Image.fromarray(display(image)).resize(size, Image.Resampling.BILINEAR)


def panels(refdata: Path) -> list[tuple[str, Image.Image | None, Image.Image | None, str]]:
    """(label, sweep with box, neck field, note) per view; no images for an unreadable file."""
    out = []
    for name in FILES:
        try:
            sweep = read_study(refdata / name, whole_body=True)
            study = load_study(refdata / name)
        except InputError as exc:
            out.append((f"{name}/", None, None, type(exc).__name__))
            continue
        for full, field in zip(sweep.images, study.images, strict=True):
            found = find_neck_field(full.counts, sweep.pixel_spacing_mm)
            image = scaled(full.counts, SWEEP_SCALE).convert("RGB")
            r0, c0, r1, c1 = (round(v * SWEEP_SCALE) for v in field.box_in_file())
            ImageDraw.Draw(image).rectangle([c0, r0, c1 - 1, r1 - 1], outline=(255, 0, 0))
            flags = ", ".join(f for f in field.flags if f != "from_whole_body")
            print(
                f"| {name} | {field.view.value} | {found.row0}-{found.row1 - 1} | "
                f"{found.head_top_row} | {found.shoulder_row} | {flags} |"
            )
            label = f"{name}/{field.view.value}"
            out.append((label, image, scaled(field.counts, FIELD_SCALE), ""))
    return out


def figure(items: list[tuple[str, Image.Image | None, Image.Image | None, str]]) -> Image.Image:
    sweep_h = round(1024 * SWEEP_SCALE)
    height = LABEL + sweep_h + 8 + round(256 * FIELD_SCALE) + 8
    canvas = Image.new("RGB", (COLUMN * len(items), height), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, sweep, field, note) in enumerate(items):
        x = i * COLUMN
        for line, text in enumerate(label.split("/")):
            draw.text((x + 4, 2 + 13 * line), text, fill="black")
        if sweep is None:
            draw.text((x + 4, LABEL + 20), f"not readable:\n{note}", fill="red")
            continue
        canvas.paste(sweep, (x + (COLUMN - sweep.width) // 2, LABEL))
        canvas.paste(field, (x + (COLUMN - field.width) // 2, LABEL + sweep_h + 8))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("refdata", nargs="?", type=Path, default=DEFAULT_REFDATA)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "figures" / "whole_body_neck_fields.png"
    )
    args = parser.parse_args()
    print("| file | view | neck field rows | head top row | shoulder row | flags |")
    print("|---|---|---|---|---|---|")
    items = panels(args.refdata)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure(items).quantize(colors=64).save(args.out, optimize=True)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
