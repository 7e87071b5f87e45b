"""Independent synthetic I-131 anterior neck scintigrams for testing the thyroid-bed locator.

Written without reference to thyroCAD's own phantom, preprocessing, locator or evaluation
code. "§n" cites /work/shared/PHANTOM_NUMBERS.md; the rest is this module's own estimate.

* Patient frame in mm: y cranial from the suprasternal notch (SSN), x to image right (the
  patient's left). Landmarks follow the §9.0/§9.1 chain times one shared stretch factor.
* Body: elliptic-section profiles (neck, jaw and skull, trunk with rounded shoulders),
  capsule arms, ellipsoid lungs and heart; soft-tissue emission c (1 - exp(-mu T)) / mu
  over thickness T, mu 0.09-0.11 /cm (§3); brain x0.5.
* Uptake in % of administered activity (%IA): remnants at §5 sites, 3-12 mm, 12-30 mm deep
  (§3), log-normal total with median 0.15 % so ~8 % are near-invisible (cf. 93 % planar
  visibility, §4.1); salivary glands, nose, stomach (§4.3, §9.3), mouth, liver (§9.7),
  oesophagus and contamination (§4.4), nodes (§4.5).
* Camera: sensitivity x time x attenuated activity (§2.3, §6); Gaussian PSF widening with
  distance (§2.2) plus motion; object scatter; six-spoke septal penetration, near-field
  skirt and broad high-energy halo (§2.4, §2.5); Poisson noise; useful-field masks (§9.6).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage, signal

SETTINGS: dict[str, str] = {
    "standard": "Broad mix of adult anatomy, field placement and camera set-ups.",
    "high_in_field": "Chin 10-20 % from the top of a large field: chest and stomach in view.",
    "low_in_field": "Chin 40-50 % from the top of a zoomed field: top of the head cut off.",
    "empty_bands": "Useful field smaller than the matrix: zero bands, round or small field.",
    "arms_up": "Arms raised beside the head.",
    "faint_glands": "Salivary glands x0.05-0.3, or absent.",
    "nodes": "1-2 iodine-avid cervical lymph nodes 1-5 cm lateral of the bed.",
    "saliva": "1-4 saliva contamination spots on skin, chin, collar or hair.",
    "tilted": "In-plane tilt 8-20 degrees and/or head turned 15-35 degrees.",
    "coarse": "128 matrix with 3.5-4.8 mm pixels.",
    "mixed": "Each of the other modifiers with probability 0.25.",
}
_MODIFIERS = tuple(k for k in SETTINGS if k not in ("standard", "mixed"))
# Remnant sites (§5): frequency weight, |x| range (mm), reference landmark, y offset range.
_SITES = {
    "berry": (0.87, (8, 18), "cric", (-10, 2)),
    "paratracheal": (0.67, (10, 20), "bed", (-25, 5)),
    "superior_pole": (0.79, (15, 25), "cric", (15, 30)),
    "isthmus": (0.54, (0, 4), "cric", (-15, 0)),
    "pyramidal": (0.46, (0, 5), "cric", (20, 60)),
}


@dataclass(frozen=True)
class IndependentView:
    """One anterior view; pixel (r, c) has its centre at coordinates (r, c)."""

    counts: np.ndarray
    pixel_mm: float
    bed_rc: tuple[float, float]
    foci_rc: tuple[tuple[float, float], ...]
    meta: dict


class _Src(NamedTuple):
    """A compact source: uniform ellipsoid (or its Gaussian equivalent) of activity act MBq."""

    x: float
    y: float
    ax: float
    ay: float
    az: float
    act: float
    depth: float  # tissue in front of it (mm), for attenuation
    dist: float  # distance from the collimator face (mm), for blur
    gauss: bool = False  # render as the Gaussian of equal second moments
    ang: float = 0.0


def _features(rng: np.random.Generator, setting: str) -> set[str]:
    """Modifiers active for this view."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose from {sorted(SETTINGS)}")
    if setting != "mixed":
        return {setting}
    feats = {m for m in _MODIFIERS if rng.random() < 0.25}
    if {"high_in_field", "low_in_field"} <= feats:
        feats.discard(str(rng.choice(["high_in_field", "low_in_field"])))
    return feats


def _anatomy(rng: np.random.Generator) -> dict:
    """Landmark heights above the SSN and body sizes (mm)."""
    fem = bool(rng.random() < 0.7)  # differentiated thyroid cancer is mostly female
    k = int(fem)
    s = float(np.clip(rng.normal(1.0, 0.08), 0.8, 1.25))
    a = {"female": fem, "stretch": s}
    a["cric"] = max(20.0, 40.0 * s + rng.normal(0, 6))  # SSN -> lower cricoid 4 cm (§9.0)
    a["bed"] = a["cric"] - np.clip(rng.normal(7, 3), 1, 14)  # lobe centres (§9.0, §9.2)
    a["hyoid"] = a["cric"] + 55 * s + rng.normal(0, 5)  # §9.0, §9.1
    a["smg"] = a["hyoid"] + rng.normal(15, 5)  # SMG centroid above the hyoid (§9.3)
    a["chin"] = a["hyoid"] + np.clip(rng.normal(24, 5), 12, 40)  # mandible border (§9.3)
    a["gonion"] = a["chin"] + rng.normal(18, 6)
    a["tragion"] = a["gonion"] + rng.normal(40, 6)  # ~17-19 cm above the SSN (§9.1)
    a["vertex"] = a["tragion"] + rng.normal(130, 8)  # §9.1
    a["acromion"] = rng.normal(0, 13)  # §9.0
    a["neck_hw"] = rng.normal((65, 57)[k], 5)  # neck width 13 / 11.5 cm (§9.4)
    a["neck_ap"] = rng.normal((135, 122)[k], 10)  # §9.4, §3
    a["jaw_hw"] = rng.normal((57, 51)[k], 4)  # half bigonial width (§9.3)
    a["head_hw"] = rng.normal((77, 72)[k], 3)  # half bizygomatic + soft tissue (§9.3)
    a["biac"] = rng.normal((416, 365)[k], 19)  # biacromial (§9.4)
    a["arm_r"] = max(35.0, (rng.normal((510, 450)[k], 33) - a["biac"]) / 2)  # bideltoid
    a["asym"] = rng.normal(0, 0.04)
    a["mass_kg"] = float(np.clip(rng.normal((85, 70)[k], 12), 48, 130))
    return {key: (float(v) if isinstance(v, np.floating) else v) for key, v in a.items()}


def _field(rng: np.random.Generator, feats: set[str], a: dict) -> dict:
    """Matrix, pixel, patient pose and the image position of the chin."""
    if "coarse" in feats:
        n, px = 128, rng.uniform(3.5, 4.8)
    elif "low_in_field" in feats:
        n = int(rng.choice([128, 256]))
        px = max(1.2, rng.uniform(280, 420) / n)
    else:
        n = int(rng.choice([128, 256, 512], p=[0.25, 0.6, 0.15]))
        base = rng.choice([2.21, 2.35, 2.4]) * 256 / n  # GE, Philips, Siemens at zoom 1 (§9.6)
        zoom = 1.0 if "high_in_field" in feats else rng.choice([1, 1, 1, 1.33, 1.6, 2])
        px = float(np.clip(base / zoom, max(1.2, 250 / n), 4.8))
    tilt = np.clip(rng.normal(0, 4), -10, 10)
    yaw, roll = np.clip(rng.normal(0, 5), -15, 15), rng.normal(0, 3)
    if "tilted" in feats:
        mode = rng.integers(3)  # 0: body tilt, 1: head turned, 2: both
        if mode != 1:
            tilt = rng.choice([-1, 1]) * rng.uniform(8, 20)
        if mode != 0:
            yaw, roll = rng.choice([-1, 1]) * rng.uniform(15, 35), rng.normal(0, 6)
    th = np.radians(tilt)
    fov = n * px
    lo, hi = {"high_in_field": (0.1, 0.2), "low_in_field": (0.4, 0.5)}.get(
        next((f for f in feats if f.endswith("_in_field")), ""), (0.1, 0.5)
    )
    hi_ok = 0.92 - (a["chin"] - a["bed"]) * np.cos(th) / fov  # keep the bed in the field
    chin_f = rng.uniform(lo, min(hi, hi_ok)) if hi_ok > lo else hi_ok
    bed_cf = 0.5 + np.clip(rng.normal(0, 0.07), -0.2, 0.2)  # lateral offset of the patient
    u_bed = -(a["bed"] - a["chin"]) * np.sin(th)
    return {
        "n": n, "px": float(px), "pad": int(np.ceil(40 / px)), "th": float(th),
        "y0": a["chin"], "r0": chin_f * n - 0.5, "c0": bed_cf * n - 0.5 - u_bed / px,
        "yaw": float(np.radians(yaw)), "roll": float(np.radians(roll)),
        "chin_f": float(chin_f), "tilt_deg": float(tilt),
    }  # fmt: skip


def _to_rc(g: dict, x: float, y: float) -> tuple[float, float]:
    """Patient (x, y) in mm -> image (row, col) of the unpadded matrix."""
    c, s, dy = np.cos(g["th"]), np.sin(g["th"]), y - g["y0"]
    return g["r0"] - (x * s + dy * c) / g["px"], g["c0"] + (x * c - dy * s) / g["px"]


def _grid(g: dict) -> tuple[np.ndarray, np.ndarray]:
    """Patient coordinates (mm) of every pixel centre of the padded matrix."""
    idx = np.arange(-g["pad"], g["n"] + g["pad"], dtype=float)
    rr, cc = np.meshgrid(idx, idx, indexing="ij")
    u, v = (cc - g["c0"]) * g["px"], (g["r0"] - rr) * g["px"]
    c, s = np.cos(g["th"]), np.sin(g["th"])
    return u * c + v * s, -u * s + v * c + g["y0"]


def _head_pt(g: dict, a: dict, x: float, y: float, z: float) -> tuple[float, float]:
    """Where a head point (x, y, AP offset z) projects after head turn (yaw) and roll."""
    x1, py = x * np.cos(g["yaw"]) + z * np.sin(g["yaw"]), a["hyoid"] - 10
    c, s = np.cos(g["roll"]), np.sin(g["roll"])
    return float(c * x1 - s * (y - py)), float(s * x1 + c * (y - py) + py)


def _profile(X: np.ndarray, Y: np.ndarray, asym: float, knots: list) -> np.ndarray:
    """Thickness (mm) of a part with elliptic sections; knots are (y, half-width, AP)."""
    ys, hw, ap = np.array(sorted(knots)).T
    w = np.interp(Y, ys, hw, left=0.0, right=0.0) * (1 + asym * np.sign(X))
    q = np.clip(1 - (X / np.maximum(w, 1e-3)) ** 2, 0, None)
    return np.interp(Y, ys, ap, left=0.0, right=0.0) * np.sqrt(q)


def _ellipsoid(X, Y, x0, y0, ax, ay, az, ang=0.0) -> np.ndarray:
    """Chord length (mm) through an ellipsoid with in-plane semi-axes ax, ay and AP az."""
    c, s = np.cos(ang), np.sin(ang)
    u, v = (c * (X - x0) + s * (Y - y0)) / ax, (-s * (X - x0) + c * (Y - y0)) / ay
    return 2 * az * np.sqrt(np.clip(1 - u * u - v * v, 0, None))


def _capsule(X, Y, p0, p1, r) -> np.ndarray:
    """Chord length (mm) through a limb of radius r along the segment p0-p1."""
    d = np.subtract(p1, p0)
    t = np.clip(((X - p0[0]) * d[0] + (Y - p0[1]) * d[1]) / (d @ d), 0, 1)
    d2 = (X - p0[0] - t * d[0]) ** 2 + (Y - p0[1] - t * d[1]) ** 2
    return 2 * np.sqrt(np.clip(r * r - d2, 0, None))


def _body(X, Y, g: dict, a: dict, arms_up: bool, mu: float) -> np.ndarray:
    """Soft-tissue emission per unit area, in mm of unattenuated tissue equivalent."""
    nk, acr, ap = a["neck_hw"], a["acromion"], a["neck_ap"]
    base = min(acr + 25, a["bed"] - 8)
    neck = _profile(X, Y, a["asym"], [
        (acr - 40, nk + 40, ap + 40), (base, nk + 12, ap + 10), (a["bed"], nk, ap),
        (a["hyoid"], 0.96 * nk, ap), (a["gonion"], a["jaw_hw"], ap + 30)])  # fmt: skip
    py, c, s = a["hyoid"] - 10, np.cos(g["roll"]), np.sin(g["roll"])
    xh = c * X + s * (Y - py) - 20 * np.sin(g["yaw"])
    yh = -s * X + c * (Y - py) + py
    t = np.linspace(0, 1, 8)
    top = a["tragion"] + 30 + t * (a["vertex"] - a["tragion"] - 30)
    cap = np.sqrt(1 - t**2)
    head = _profile(xh, yh, 0.0, [
        (a["chin"] - 8, 20, 40), (a["chin"] + 6, 0.6 * a["jaw_hw"], 120),
        (a["gonion"], a["jaw_hw"], 170), (a["tragion"], a["head_hw"], 185),
        *zip(top, a["head_hw"] * cap, 185 * cap, strict=True)])  # fmt: skip
    sh = a["biac"] / 2
    arc = np.linspace(0, np.pi / 2, 7)  # rounded deltoid and trapezius outline
    trunk = _profile(X, Y, a["asym"], [(-2000, sh - 25, 220), (acr - 100, sh - 25, 220), *zip(
        acr - 40 + 85 * np.sin(arc), nk + 5 + (sh - nk) * np.cos(arc), 60 + 140 * np.cos(arc),
        strict=True)])  # fmt: skip
    r, arms = a["arm_r"], np.zeros_like(X)
    for sgn in (-1, 1):
        p1 = (sgn * (a["head_hw"] + r + 15), a["vertex"] + 20) if arms_up else (
            sgn * (sh + 45), acr - 330)  # fmt: skip
        arms = np.maximum(arms, _capsule(X, Y, (sgn * (sh - 5), acr - 20), p1, r))
    T = np.maximum.reduce([neck, head, trunk, arms])
    lungs = sum(_ellipsoid(X, Y, k * 0.5 * sh, acr - 140, 0.4 * sh, 170, 80) for k in (-1, 1))
    tissue = np.clip(T - 0.75 * lungs, 0, None)  # lungs are ~25 % tissue by density
    brain = np.clip((yh - a["tragion"]) / 40, 0, 1) * (head > 0)  # iodide stays out of brain
    heart = _ellipsoid(X, Y, 25, acr - 190, 65, 60, 55) * np.exp(-mu * 60)  # blood pool x2
    return (1 - np.exp(-mu * tissue)) / mu * (1 - 0.5 * brain) + heart


def _window(g: dict, shape, x: float, y: float, rad: float):
    """Slices of the padded grid within rad mm of (x, y), or None if outside."""
    r, c = _to_rc(g, x, y)
    p, k = g["pad"], rad / g["px"] + 1
    r0, r1 = max(0, int(r + p - k)), min(shape[0], int(r + p + k) + 1)
    c0, c1 = max(0, int(c + p - k)), min(shape[1], int(c + p + k) + 1)
    return (slice(r0, r1), slice(c0, c1)) if r0 < r1 and c0 < c1 else None


def _render(srcs, X, Y, g: dict, ph: dict) -> np.ndarray:
    """Geometrically blurred expected image (MBq-equivalent per pixel) of compact sources."""
    out, layers, area = np.zeros_like(X), {}, g["px"] ** 2
    for s in srcs:
        sig = _sigma(s.dist, ph)
        sl = _window(g, X.shape, s.x, s.y, 4 * sig + 2 * max(s.ax, s.ay))
        if sl is None:
            continue
        amp, x, y = s.act * np.exp(-ph["mu"] * s.depth) * area, X[sl], Y[sl]
        if s.gauss:  # uniform ellipsoid -> Gaussian of equal second moments, then blurred
            sx, sy = np.hypot(s.ax / 5**0.5, sig), np.hypot(s.ay / 5**0.5, sig)
            c, sn = np.cos(s.ang), np.sin(s.ang)
            u, v = (c * (x - s.x) + sn * (y - s.y)) / sx, (-sn * (x - s.x) + c * (y - s.y)) / sy
            out[sl] += amp * np.exp(-0.5 * (u * u + v * v)) / (2 * np.pi * sx * sy)
        else:
            lay = layers.setdefault(round(sig / g["px"] * 4) / 4, np.zeros_like(X))
            vol = 4 / 3 * np.pi * s.ax * s.ay * s.az
            lay[sl] += amp / vol * _ellipsoid(x, y, s.x, s.y, s.ax, s.ay, s.az, s.ang)
    for sig_px, lay in layers.items():
        out += ndimage.gaussian_filter(lay, sig_px, mode="constant")
    return out


def _sigma(dist: float, ph: dict) -> float:
    """Gaussian sigma (mm) of the system PSF at a distance from the collimator (§2.2)."""
    geo = ph["g0"] + ph["slope"] * dist
    return float(np.sqrt((geo**2 + ph["intr"] ** 2) / 8 / np.log(2) + ph["motion"] ** 2))


def _physics(rng: np.random.Generator, mass_kg: float) -> dict:
    """Activity, timing, count scale, attenuation, clearance and camera parameters."""
    act, hours = rng.uniform(74, 185), int(rng.choice([24, 48, 72], p=[0.35, 0.5, 0.15]))
    ret = np.clip(rng.lognormal(np.log(0.15), 0.4), 0.05, 0.3) * 2 ** (-(hours - 48) / 24)
    secs = rng.uniform(300, 600)  # 5-10 min per view (scope of PHANTOM_NUMBERS)
    sens = rng.uniform(25, 50) * (1.45 if rng.random() < 0.4 else 1.0)  # 3/8 or 5/8 in (§2.3)
    return {
        "act": act, "hours": hours, "secs": secs, "k": sens * secs,  # counts per MBq
        "mu": rng.uniform(0.009, 0.011),  # /mm, broad to narrow beam at 364 keV (§3)
        "conc": rng.uniform(0.4, 0.6) * ret * act / (mass_kg * 1e6),  # MBq/mm^3 (§4.2)
        "pct": act / 100,  # MBq per %IA
        "blood": 2 ** (-(hours - 24) / 24),  # glands, saliva, stomach follow the iodide pool
        "rem": 2 ** (-(hours - 24) / 40),  # remnant effective half-life 40 h (§4.2)
        "gap": rng.uniform(20, 80),  # collimator to neck skin; chin and chest hold it off
        "g0": rng.uniform(4.0, 4.8), "slope": rng.uniform(0.065, 0.075),  # PSF (§2.2)
        "intr": rng.uniform(3.2, 4.3), "motion": rng.uniform(0, 2.5),  # §2.2; own estimate
        "p_pen": rng.uniform(0.10, 0.20), "p_halo": rng.uniform(0.20, 0.30),  # §2.4
        "lam_spoke": rng.uniform(50, 150), "lam_halo": rng.uniform(100, 250),  # §2.5; own
        "spoke0": np.radians(rng.choice([0, 15, 30])),  # vendor hole orientation (§2.5)
        "p_sc": rng.uniform(0.05, 0.15), "lam_sc": rng.uniform(15, 30),  # own estimate
    }  # fmt: skip


def _physiology(rng, g: dict, a: dict, feats: set[str], ph: dict) -> list[_Src]:
    """Salivary glands, mouth, nose and stomach (§4.3, §9.3)."""
    # All four glands; §4.3 estimates 0.1-0.4 %IA, raised here so they stand out clinically.
    gl, gap = rng.uniform(0.2, 0.6) * ph["pct"] * ph["blood"], ph["gap"]
    fac = rng.lognormal(0, 0.25, 4)  # left-right asymmetry
    if "faint_glands" in feats:
        fac = np.zeros(4) if rng.random() < 0.3 else rng.uniform(0.05, 0.3, 4)
    share = rng.uniform(0.5, 0.7)  # parotids brighter in total than the SMGs (§4.3)
    par, smg = gl * share / 2, gl * (1 - share) / 2
    out = []
    for i, sgn in enumerate((-1, 1)):
        x, y = _head_pt(g, a, sgn * rng.uniform(52, 62), a["tragion"] - rng.normal(28, 4), -10)
        ang = sgn * rng.uniform(0, 0.25) + g["roll"]
        out.append(_Src(x, y, 15, 25, 16, par * fac[i], 40, gap + 80, False, ang))
        x, y = _head_pt(g, a, sgn * rng.uniform(35, 45), a["smg"], 20)  # §9.3
        out.append(_Src(x, y, 11, 14, 16, smg * fac[2 + i], 25, gap + 30, False, g["roll"]))
    mouth_y, oral = a["chin"] + rng.normal(42, 5), ph["pct"] * ph["blood"]
    x, y, act = *_head_pt(g, a, 0, mouth_y, 70), rng.uniform(0.01, 0.12) * oral  # saliva
    out.append(_Src(x, y, 22, 9, 20, act, 35, gap + 40, False, g["roll"]))
    if rng.random() < 0.95:  # nasal activity in 95 % (§4.3)
        x, y = _head_pt(g, a, 0, mouth_y + rng.normal(35, 5), 90)
        out.append(_Src(x, y, 12, 12, 15, rng.uniform(0.01, 0.06) * oral, 20, gap + 15))
    x, y = rng.uniform(80, 130), a["acromion"] - rng.uniform(250, 320)  # stomach (§4.3)
    out.append(_Src(x, y, 45, 60, 45, rng.uniform(0.5, 2) * oral, 60, gap + 90, False, -0.3))
    return out


def _remnants(rng, a: dict, ph: dict, uptake_pct: float) -> list[_Src]:
    """1-4 remnant foci at the §5 sites sharing uptake_pct (%IA at 24 h)."""
    names = list(_SITES)
    w = np.array([_SITES[k][0] for k in names])
    n = int(rng.choice([1, 2, 3, 4], p=[0.45, 0.3, 0.15, 0.1]))  # §5: 1-3 typical
    out = []
    for share in rng.dirichlet(np.full(n, 1.5)):
        _, (xl, xh), ref, (dl, dh) = _SITES[names[rng.choice(len(names), p=w / w.sum())]]
        r, depth = rng.uniform(1.5, 4.5), rng.uniform(12, 30)  # 3-12 mm (§5), depth (§3)
        x, y = rng.choice([-1, 1]) * rng.uniform(xl, xh), a[ref] + rng.uniform(dl, dh)
        act = share * uptake_pct * ph["pct"] * ph["rem"]
        out.append(_Src(x, y, r, r * rng.uniform(1, 1.8), r, act, depth, ph["gap"] + depth, True))
    return out


def _confounders(rng, g: dict, a: dict, feats: set[str], ph: dict, conf: list) -> list[_Src]:
    """Liver, oesophagus, diffuse bed, nodes and contamination; names them in conf."""
    out, gap, oral = [], ph["gap"], ph["pct"] * ph["blood"]
    if rng.random() < 0.12:  # liver seen on 12 % of diagnostic scans (§9.7)
        conf.append("liver")
        act = rng.uniform(1, 3) * ph["conc"] * 4 / 3 * np.pi * 130 * 100 * 80
        out.append(_Src(-70, a["acromion"] - 330, 130, 100, 80, act, 50, gap + 100))
    if rng.random() < 0.05:  # oesophageal retention, 1.5 % (§4.4) enriched x3
        conf.append("oesophagus")
        act, top = rng.uniform(0.005, 0.05) * oral, a["hyoid"] - 10
        if rng.random() < 0.5:
            out.append(_Src(4, (top - 250) / 2, 7, (top + 250) / 2, 7, act, 60, gap + 70))
        else:
            out.append(_Src(4, rng.uniform(-150, a["bed"] + 15), 5, 9, 5, act, 60, gap + 60, True))
    if rng.random() < 0.3:  # faint diffuse post-surgical bed activity, any patient
        act = 10 ** rng.uniform(-2.7, -2) * ph["pct"] * ph["rem"]
        out.append(_Src(0, a["bed"], 18, 22, 10, act, 20, gap + 20))
    if "nodes" in feats or rng.random() < 0.08:  # nodal foci in 5-15 % (§4.5)
        conf.append("nodes")
        for _ in range(int(rng.integers(1, 3)) if "nodes" in feats else 1):
            r, depth = rng.uniform(2.5, 7.5), rng.uniform(15, 40)
            x, y = rng.choice([-1, 1]) * rng.uniform(10, 50), a["bed"] + rng.uniform(-15, 60)
            act = 10 ** rng.uniform(-2, -0.3) * ph["pct"] * ph["rem"]  # 0.01-0.5 %IA (§4.5)
            out.append(_Src(x, y, r, r, r, act, depth, gap + depth, True))
    if "saliva" in feats or rng.random() < 0.02:  # contamination in 2 % (§4.4)
        conf.append("contamination")
        out += _contamination(rng, g, a, oral, gap)
    return out


def _contamination(rng, g: dict, a: dict, act: float, gap: float) -> list[_Src]:
    """Saliva spots on the chin, neck skin, collar line or hair/pillow."""
    out = []
    for _ in range(int(rng.integers(1, 5))):
        kind, sgn = rng.integers(4), rng.choice([-1, 1])
        if kind == 0:
            x, y = _head_pt(g, a, rng.uniform(-40, 40), a["chin"] + rng.uniform(-15, 25), 70)
        elif kind == 1:
            x, y = rng.uniform(-1, 1) * a["neck_hw"], rng.uniform(a["acromion"], a["hyoid"])
        elif kind == 2:
            x, y = sgn * (a["neck_hw"] + rng.uniform(-10, 80)), a["acromion"] + rng.uniform(10, 50)
        else:
            x = sgn * (a["head_hw"] + rng.uniform(-10, 40))
            x, y = _head_pt(g, a, x, a["tragion"] + rng.uniform(-30, 60), 0)
        r = rng.uniform(1.5, 7.5)
        out.append(_Src(x, y, r, r, r, act * 10 ** rng.uniform(-2.7, -1), 0, gap, True))
    return out


def _pen_kernel(q: float, ph: dict) -> np.ndarray:
    """Septal penetration (6 spokes + skirt, §2.4/§2.5) mixed with object scatter, sum 1."""
    n = int(min(3 * ph["lam_spoke"], 250) / q)
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1] * q
    r, ang = np.hypot(xx, yy), np.arctan2(yy, xx)
    w = max(2.5, 0.6 * q)
    spokes = sum(
        np.exp(-0.5 * (r * np.sin(ang - ph["spoke0"] - j * np.pi / 3) / w) ** 2) for j in range(3)
    ) * np.exp(-r / ph["lam_spoke"])  # fmt: skip
    parts = [(spokes, 0.6 * ph["p_pen"]), (np.exp(-r / 15), 0.4 * ph["p_pen"]),
             (np.exp(-r / ph["lam_sc"]), ph["p_sc"])]  # fmt: skip
    k = sum(p / p.sum() * wt for p, wt in parts)
    return k / k.sum()


def _conv_binned(img: np.ndarray, b: int, kernel: np.ndarray) -> np.ndarray:
    """Convolve a b x b binned copy of img with kernel; return it at full size."""
    h, w = img.shape
    hp, wp = -(-h // b) * b, -(-w // b) * b
    small = np.pad(img, ((0, hp - h), (0, wp - w))).reshape(hp // b, b, wp // b, b).sum((1, 3))
    out = signal.fftconvolve(small, kernel, mode="same")
    big = np.repeat(np.repeat(out, b, 0), b, 1) / b**2
    return (ndimage.uniform_filter(big, b) if b > 1 else big)[:h, :w]


def _camera(core: np.ndarray, g: dict, ph: dict) -> np.ndarray:
    """Add penetration, scatter and halo to the geometric image (all in counts)."""
    b = max(1, int(2.4 // g["px"]))
    fine = _conv_binned(core, b, _pen_kernel(g["px"] * b, ph))
    bh = max(1, round(8 / g["px"]))
    m = int(min(3 * ph["lam_halo"], 1.2 * g["n"] * g["px"]) / (g["px"] * bh))
    yy, xx = np.mgrid[-m : m + 1, -m : m + 1] * g["px"] * bh
    halo = np.exp(-np.hypot(xx, yy) / ph["lam_halo"])
    far = _conv_binned(core, bh, halo / halo.sum())
    p_fine = ph["p_pen"] + ph["p_sc"]
    return (1 - p_fine - ph["p_halo"]) * core + p_fine * fine + ph["p_halo"] * far


def _mask(rng, n: int, bed_rc: tuple[float, float]) -> tuple[np.ndarray, str]:
    """Useful field of view smaller than the matrix, always containing the bed (§9.6)."""
    kind = str(rng.choice(["bands_tb", "bands_lr", "circle", "rect"]))
    rr, cc = np.mgrid[0:n, 0:n].astype(float)
    br, bc = bed_rc
    if kind == "circle":
        cy, cx = (n - 1) / 2 + rng.normal(0, 0.03 * n, 2)
        rad = max(n / 2 * rng.uniform(0.8, 1.0), np.hypot(br - cy, bc - cx) + 0.1 * n)
        return np.hypot(rr - cy, cc - cx) <= rad, kind
    t, btm, lft, rgt = rng.uniform(0.03, 0.2, 4) * n * {  # 40 cm detector axis: ~14 % bands
        "bands_tb": (1, 1, 0, 0), "bands_lr": (0, 0, 1, 1)}.get(kind, np.ones(4))  # fmt: skip
    t, btm = min(t, br - 0.08 * n), min(btm, n - br - 0.08 * n)
    lft, rgt = min(lft, bc - 0.08 * n), min(rgt, n - bc - 0.08 * n)
    return (rr >= t) & (rr < n - btm) & (cc >= lft) & (cc < n - rgt), kind


def simulate(seed: int, index: int, residual: bool, setting: str = "standard") -> IndependentView:
    """Draw one anterior I-131 neck view; deterministic in (seed, index, setting)."""
    rng = np.random.default_rng([seed, index, zlib.crc32(setting.encode())])
    feats = _features(rng, setting)
    a = _anatomy(rng)
    g = _field(rng, feats, a)
    ph, conf, n = _physics(rng, a["mass_kg"]), [], g["n"]
    srcs = _physiology(rng, g, a, feats, ph) + _confounders(rng, g, a, feats, ph, conf)
    bed_rc = tuple(float(v) for v in _to_rc(g, 0.0, a["bed"]))
    fov_mask, band = _mask(rng, n, bed_rc) if "empty_bands" in feats else (1.0, "none")
    uptake = 10 ** np.clip(rng.normal(np.log10(0.15), 0.7), -2.7, 0.9)  # %IA at 24 h
    foci = _remnants(rng, a, ph, uptake) if residual else []  # paired views differ from here
    X, Y = _grid(g)
    body = _body(X, Y, g, a, "arms_up" in feats, ph["mu"]) * ph["conc"] * g["px"] ** 2
    bg = ndimage.gaussian_filter(body, _sigma(ph["gap"] + 60, ph) / g["px"], mode="constant")
    expected = _camera(ph["k"] * (bg + _render(srcs + foci, X, Y, g, ph)), g, ph)
    p = g["pad"]
    counts = rng.poisson(np.clip(expected[p : p + n, p : p + n], 0, None) * fov_mask)
    meta = {
        "setting": setting, "modifiers": sorted(feats), "residual": bool(residual),
        "matrix": n, "pixel_mm": g["px"], "fov_mm": n * g["px"], "chin_row_frac": g["chin_f"],
        "tilt_deg": g["tilt_deg"], "head_yaw_deg": float(np.degrees(g["yaw"])),
        "head_roll_deg": float(np.degrees(g["roll"])), "female": a["female"],
        "neck_stretch": a["stretch"],
        "neck_length_mm": a["chin"] - a["acromion"], "chin_above_ssn_mm": a["chin"],
        "bed_above_ssn_mm": a["bed"], "neck_width_mm": 2 * a["neck_hw"],
        "activity_mbq": float(ph["act"]), "hours": ph["hours"], "acq_s": float(ph["secs"]),
        "remnant_uptake_pct": float(uptake) if residual else 0.0, "n_foci": len(foci),
        "counts_total": int(counts.sum()), "confounders": conf, "useful_field": band,
    }  # fmt: skip
    foci_rc = tuple(tuple(float(v) for v in _to_rc(g, f.x, f.y)) for f in foci)
    return IndependentView(counts.astype(np.float64), g["px"], bed_rc, foci_rc, meta)
