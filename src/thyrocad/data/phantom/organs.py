"""The activity sources of one patient: physiological uptake, remnant foci, confounders.

Positions are in the patient frame of `geometry.py` (cricoid = 0, y caudal). Every function
takes the `PortableRandom` streams it draws from, so that the base stream makes the same
number of draws under every anatomy setting (paired patients across settings).
"""

from __future__ import annotations

from collections.abc import Callable

from thyrocad.data.phantom import portable
from thyrocad.data.phantom.config import PhantomConfig
from thyrocad.data.phantom.geometry import Body, Source, body_thickness_cm
from thyrocad.data.phantom.portable import PortableRandom
from thyrocad.data.phantom.variation import AnatomySetting

ToMbq = Callable[[float, float], float]  # (% IA at 24 h, half-time h) -> MBq at imaging

# Remnant sites relative to the cricoid (PN §5 [ESTIMATE] positions): |x| range, y range (mm).
SITES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "paratracheal": ((8.0, 20.0), (-5.0, 12.0)),  # Berry's ligament: at or just below
    "superior_pole": ((15.0, 25.0), (-40.0, -20.0)),  # 2-4 cm cranial
    "isthmus": ((0.0, 5.0), (0.0, 15.0)),  # midline, 0-1.5 cm caudal
    "pyramidal": ((0.0, 6.0), (-50.0, -20.0)),  # midline, 2-5 cm cranial (PN: up to 6)
}
_SITE_WEIGHTS = {"paratracheal": 0.55, "superior_pole": 0.30, "isthmus": 0.15}
_MIMIC_LATERAL_MM, _MIMIC_SIZE_MM = (18.0, 26.0), (12.0, 20.0)  # PN §9.2 lobe offsets


def physiological_sources(
    rng: PortableRandom,
    var: PortableRandom,
    cfg: PhantomConfig,
    setting: AnatomySetting,
    body: Body,
    to_mbq: ToMbq,
) -> list[Source]:
    """Salivary glands, mouth, nose, oesophagus band and (sometimes) stomach."""
    salivary = rng.log_uniform(*cfg.salivary_total_pct)
    absent = var.random() < setting.salivary_absent_prevalence
    factor = 0.0 if absent else var.uniform(*setting.salivary_scale)
    out: list[Source] = []
    for kind, share, lateral, (sx, sy, depth) in (
        ("parotid", cfg.parotid_share, cfg.parotid_lateral_mm, (10.0, 15.0, 8.0)),
        ("submandibular", 1.0 - cfg.parotid_share, cfg.submandibular_lateral_mm, (7.0, 7.0, 3.5)),
    ):
        for side in (-1.0, 1.0):
            gland = salivary * share / 2.0 * portable.exp(rng.normal(0.0, cfg.gland_asymmetry_sd))
            x = side * rng.uniform(*lateral)
            if kind == "parotid":
                y = body.submandibular_y_mm - rng.uniform(*cfg.parotid_above_submandibular_mm)
            else:
                y = body.submandibular_y_mm + rng.normal(0.0, 2.0)
            activity = to_mbq(gland * factor, cfg.salivary_half_time_h)
            out += _lobulated(rng, kind, x, y, sx, sy, depth, activity)
    mouth_y = body.chin_y_mm - 25.0
    oral = to_mbq(rng.log_uniform(*cfg.oral_pct), cfg.salivary_half_time_h)
    out += _lobulated(rng, "oral", 0.0, mouth_y, 17.0, 10.0, 4.0, oral)
    if rng.random() < cfg.nasal_prevalence:
        nasal = to_mbq(rng.log_uniform(*cfg.nasal_pct), cfg.salivary_half_time_h)
        out.append(Source("nasal", rng.normal(0, 2), mouth_y - 45.0, 8.0, 9.0, 0.0, 3.0, nasal))
    out += _oesophagus(rng, cfg, body, to_mbq)
    present = rng.random()
    stomach = to_mbq(rng.log_uniform(*cfg.stomach_pct), 24.0)
    y = body.notch_y_mm + rng.uniform(215.0, 270.0)
    x = rng.uniform(55.0, 95.0)
    prevalence = cfg.stomach_prevalence
    if setting.stomach_prevalence is not None:
        prevalence = setting.stomach_prevalence
    if present < prevalence:
        out.append(Source("stomach", x, y, 32.0, 26.0, 20.0, 8.0, stomach))
    return out


def _lobulated(
    rng: PortableRandom,
    kind: str,
    x: float,
    y: float,
    sx: float,
    sy: float,
    depth: float,
    activity: float,
) -> list[Source]:
    """An organ as three jittered Gaussian lobes (looks less like a perfect disc)."""
    return [
        Source(
            kind,
            x + rng.normal(0.0, sx * 0.35),
            y + rng.normal(0.0, sy * 0.35),
            sx * rng.uniform(0.6, 0.9),
            sy * rng.uniform(0.6, 0.9),
            rng.uniform(0.0, 180.0),
            depth + rng.normal(0.0, 0.3),
            activity * w,
        )
        for w in rng.dirichlet([4.0, 4.0, 4.0])
    ]


def _oesophagus(rng: PortableRandom, cfg: PhantomConfig, body: Body, to_mbq: ToMbq):
    """A patchy midline band from the pharynx down into the chest (swallowed saliva)."""
    n = 61  # blobs every 6 mm from 45 mm above the cricoid
    noise = [rng.normal() for _ in range(n + 4)]
    patch = [sum(noise[i : i + 5]) / 5.0 for i in range(n)]
    raw = [portable.exp(1.6 * p) for p in patch]
    total_raw = sum(raw)
    total = to_mbq(rng.log_uniform(*cfg.oesophagus_pct), 12.0)
    dx, out = 0.0, []
    for i, w in enumerate(raw):
        y = -45.0 + 6.0 * i
        dx += rng.normal(0.0, 0.6)
        depth = 4.5 if y < body.notch_y_mm else 4.5 + min(3.5, (y - body.notch_y_mm) / 40.0)
        out.append(Source("oesophagus", 3.0 + dx, y, 5.0, 4.5, 0.0, depth, total * w / total_raw))
    return out


def remnant_sources(
    rng: PortableRandom,
    var: PortableRandom,
    cfg: PhantomConfig,
    setting: AnatomySetting,
    to_mbq: ToMbq,
) -> tuple[list[Source], list[dict]]:
    """1-4 foci in the thyroid bed (sometimes a pyramidal lobe) and their ground truth; under
    a gland-mimic setting, the same total uptake as a large symmetric bilateral pair."""
    weights = cfg.foci_count_weights
    n = rng.choice(list(range(1, len(weights) + 1)), p=weights)
    names = list(_SITE_WEIGHTS)
    sites = [rng.choice(names, p=[_SITE_WEIGHTS[k] for k in names]) for _ in range(n)]
    if rng.random() < cfg.pyramidal_prevalence:
        sites = [*sites[: min(n, 3)], "pyramidal"]
    spread = portable.power(cfg.remnant_uptake_gsd, rng.normal())
    total = min(cfg.remnant_uptake_cap_pct, cfg.remnant_median_pct * spread)
    shares = rng.dirichlet([1.5] * len(sites))
    foci = []
    for site, share in zip(sites, shares, strict=True):
        (ax0, ax1), ys = SITES[site]
        x = rng.sign() * rng.uniform(ax0, ax1)
        size = rng.log_uniform(*cfg.focus_size_mm)
        depth = rng.uniform(*cfg.bed_depth_cm) + (0.5 if site == "superior_pole" else 0.0)
        foci.append((site, x, rng.uniform(*ys), size, depth, total * share))
    if var.random() < setting.gland_mimic_prevalence:
        foci = _mimic_pair(var, cfg, total)
    sources, truth = [], []
    for i, (site, x, y, size, depth, uptake) in enumerate(foci):
        elong = 1.3 if site in ("superior_pole", "pyramidal") else 1.0
        activity = to_mbq(uptake, cfg.remnant_half_life_h)
        sigma = size / 2.355
        sources.append(Source("remnant", x, y, sigma, sigma * elong, 0.0, depth, activity, i))
        truth.append(
            {
                "site": site,
                "size_mm": size,
                "uptake_pct_24h": uptake,
                "activity_mbq": activity,
                "depth_cm": depth,
            }
        )
    return sources, truth


def _mimic_pair(var: PortableRandom, cfg: PhantomConfig, total: float) -> list[tuple]:
    """Two large foci at the same level either side of the trachea (both lobes' remnants)."""
    y, lateral = var.uniform(-25.0, 5.0), var.uniform(*_MIMIC_LATERAL_MM)
    share = var.uniform(0.4, 0.6)
    return [
        (
            "paratracheal",
            side * (lateral + var.uniform(-2.0, 2.0)),
            y + var.uniform(-4.0, 4.0),
            var.uniform(*_MIMIC_SIZE_MM),
            var.uniform(*cfg.bed_depth_cm),
            total * part,
        )
        for side, part in ((-1.0, share), (1.0, 1.0 - share))
    ]


def confounder_sources(
    seed: int, index: int, cfg: PhantomConfig, setting: AnatomySetting, body: Body, to_mbq: ToMbq
) -> tuple[list[Source], list[str]]:
    """Nodes, contamination and oesophageal retention, each from its own stream."""
    scale = cfg.confounder_scale
    node_prev = cfg.node_prevalence * scale
    if setting.node_prevalence is not None:
        node_prev = setting.node_prevalence
    spot_prev = cfg.contamination_prevalence * scale
    if setting.contamination_prevalence is not None:
        spot_prev = setting.contamination_prevalence
    sources: list[Source] = []
    names: list[str] = []
    rng = PortableRandom([seed, index, 4])
    if rng.random() < node_prev:
        sources += _node_sources(rng, cfg, setting, to_mbq)
        names.append("node")
    rng = PortableRandom([seed, index, 5])
    if rng.random() < spot_prev:
        sources += _contamination_sources(rng, cfg, body, to_mbq)
        names.append("contamination")
    rng = PortableRandom([seed, index, 6])
    if rng.random() < cfg.oesophageal_retention_prevalence * scale:
        y = rng.uniform(-5.0, 110.0)
        pct = rng.log_uniform(0.01, 0.3)
        sources.append(
            Source("oesophageal_retention", 3.0, y, 5.0, 8.0, 0.0, 4.5, to_mbq(pct, 12.0))
        )
        names.append("oesophageal_retention")
    return sources, names


def _node_sources(
    rng: PortableRandom, cfg: PhantomConfig, setting: AnatomySetting, to_mbq: ToMbq
) -> list[Source]:
    """1-2 lateral cervical lymph-node metastases (levels II-IV), outside the bed; with the
    setting's bilateral prevalence, a pair at about the same level on both sides."""
    pct_range = setting.node_pct or cfg.node_pct
    bilateral = rng.random() < setting.node_bilateral_prevalence
    side = rng.sign()
    level = rng.uniform(-50.0, 40.0)
    out = []
    for k in range(2 if bilateral else rng.integers(1, 3)):
        x = (side if not bilateral or k == 0 else -side) * rng.uniform(32.0, 55.0)
        y = level + rng.normal(0.0, 5.0) if bilateral else rng.uniform(-50.0, 40.0)
        sigma = rng.uniform(4.0, 12.0) / 2.355
        activity = to_mbq(rng.log_uniform(*pct_range), cfg.remnant_half_life_h)
        out.append(Source("node", x, y, sigma, sigma, 0.0, rng.uniform(1.5, 4.0), activity))
    return out


def _contamination_sources(
    rng: PortableRandom, cfg: PhantomConfig, body: Body, to_mbq: ToMbq
) -> list[Source]:
    """Saliva on skin, collar or hair: small irregular hot spots, on a body surface."""
    regions = (
        ((-30.0, 30.0), (body.chin_y_mm - 10.0, body.chin_y_mm + 25.0)),  # chin, drooling
        ((-50.0, 50.0), (body.hyoid_y_mm, body.notch_y_mm + 20.0)),  # neck skin
        ((-130.0, 130.0), (body.notch_y_mm + 20.0, body.notch_y_mm + 100.0)),  # collar
        ((-70.0, 70.0), (body.head_center_y_mm - 100.0, body.head_center_y_mm - 60.0)),  # hair
    )
    xs, ys = regions[rng.integers(0, len(regions))]
    x, y = rng.uniform(*xs), rng.uniform(*ys)
    thick = float(body_thickness_cm(body, x, y))
    depth = 0.0 if rng.random() < 0.7 else thick
    activity = to_mbq(rng.log_uniform(*cfg.contamination_pct), 1e6)
    out = []
    for w in rng.dirichlet([2.0] * rng.integers(1, 4)):
        s = rng.uniform(1.5, 4.0)
        out.append(
            Source(
                "contamination",
                x + rng.normal(0, 4),
                y + rng.normal(0, 4),
                s,
                s,
                0.0,
                depth,
                activity * w,
            )
        )
    return out
