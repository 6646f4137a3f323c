"""Intracranial haemorrhage in the head-CT phantom: the five subtypes, their course and mass effect.

Each patient gets a list of `LesionPlan` s drawn once; a plan holds everything that changes over
the follow-up scans as one value per time point (density, size factor, oedema rim), so that
rendering a study is a pure function of the plan and the time point.

Shapes, in head coordinates (see `anatomy`):

* intraparenchymal: a union of a few spheres whose surface is perturbed by smooth waves (an
  irregular blob), deep (basal ganglia / thalamus) or lobar; perihaematomal oedema is a rim of
  10-20 HU parenchyma around it (label 2) that grows over the first week and then fades;
* subdural: a crescent between the inner table and the brain, thickest at its centre and tapering
  along the convexity, stopped at the falx;
* extradural: a biconvex lens against the inner table (steep margins, small extent, thick);
* subarachnoid: blood in the CSF of sulci, fissures or the basal cistern inside a patchy region;
* intraventricular: the dependent (posterior, the patient lies supine) part of a lateral
  ventricle, with a fluid level.

Label map values: 0 background, 1 haematoma (every subtype), 2 oedema.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxelwise.data.phantoms.anatomy import (
    PARENCHYMA,
    AnatomyImage,
    HeadAnatomy,
    HeadFrame,
    Tissue,
    skull_floor,
)

INTRAPARENCHYMAL = "intraparenchymal"
INTRAVENTRICULAR = "intraventricular"
SUBDURAL = "subdural"
EXTRADURAL = "extradural"
SUBARACHNOID = "subarachnoid"
SUBTYPES = (INTRAPARENCHYMAL, INTRAVENTRICULAR, SUBDURAL, EXTRADURAL, SUBARACHNOID)

HAEMATOMA, OEDEMA = 1, 2

_SIZE_RANGE_ML = {INTRAPARENCHYMAL: (0.4, 85.0), SUBDURAL: (2.0, 110.0),
                  EXTRADURAL: (3.0, 80.0)}
_SUBTYPE_WEIGHTS = {INTRAPARENCHYMAL: 0.34, SUBDURAL: 0.24, SUBARACHNOID: 0.16,
                    EXTRADURAL: 0.12, INTRAVENTRICULAR: 0.14}
_PAINT_ORDER = (SUBARACHNOID, INTRAVENTRICULAR, SUBDURAL, EXTRADURAL, INTRAPARENCHYMAL)
_MASS_SUBTYPES = (INTRAPARENCHYMAL, SUBDURAL, EXTRADURAL)
DEFAULT_ICH_FREE_FRACTION = 0.2


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class CaseMix:
    """What a patient's admission scan shows; planned over the whole study (see plan_case_mix)."""

    subtypes: tuple[str, ...]   # primary first; empty for a patient without haemorrhage
    size_quantile: float        # 0-1: where the primary lesion lies in its subtype's size range


def plan_case_mix(rng: np.random.Generator, patients: int,
                  free_fraction: float = DEFAULT_ICH_FREE_FRACTION) -> list[CaseMix]:
    """Spread lesions over patients so that even a small study shows every subtype and size.

    ``free_fraction`` of the patients (rounded; default 20%) have no haemorrhage; the primary
    subtypes of the others go through all five (intraparenchymal first) before repeating (then
    common ones more often); sizes are stratified from the smallest to the largest of each
    range; about a third have a second or third lesion.
    """
    free = set(rng.permutation(patients)[: int(round(free_fraction * patients))].tolist())
    with_lesion = patients - len(free)
    others = [subtype for subtype in SUBTYPES if subtype != INTRAPARENCHYMAL]
    primaries = [INTRAPARENCHYMAL, *rng.permutation(others)]  # the commonest first
    names, weights = list(_SUBTYPE_WEIGHTS), np.array(list(_SUBTYPE_WEIGHTS.values()))
    while len(primaries) < with_lesion:
        primaries.append(names[int(rng.choice(len(names), p=weights / weights.sum()))])
    quantiles = (rng.permutation(with_lesion) + rng.random(with_lesion)) / max(with_lesion, 1)
    mix, lesion_index = [], 0
    for patient in range(patients):
        if patient in free:
            mix.append(CaseMix((), 0.0))
            continue
        primary = str(primaries[lesion_index])
        others = [s for s in SUBTYPES if s != primary]
        extra = int(rng.choice(3, p=[0.65, 0.25, 0.10]))
        extras = [others[i] for i in rng.permutation(len(others))[:extra]]
        mix.append(CaseMix((primary, *extras), float(quantiles[lesion_index])))
        lesion_index += 1
    return mix


@dataclass(frozen=True)
class LesionPlan:
    """One bleed over all time points. Sizes in mm, densities in HU, volumes in mL.

    ``center`` is in head coordinates; for subdural and extradural lesions it is the point of the
    inner table under the lesion's centre. ``size_mm`` means: intraparenchymal, the scale of the
    blob (its parts are in units of it); subdural and extradural, the maximal thickness;
    subarachnoid, the radius of the region that holds blood; intraventricular, unused (``fill``
    is the fraction of the ventricle filled). Tuples hold one value per time point; a growth of 0
    means the bleed has resolved.
    """

    subtype: str
    side: int                                   # +1 patient's left, -1 right, 0 both / midline
    center: tuple[float, float, float]
    size_mm: float
    extent_deg: float = 0.0                     # angular half-extent of a subdural / extradural
    fill: float = 0.0
    parts: tuple[tuple[float, float, float, float], ...] = ()  # (du, dv, dw, radius) / size_mm
    waves: tuple[tuple[float, float, float, float], ...] = ()  # (ku, kv, kw, phase)
    hu: tuple[float, ...] = ()
    growth: tuple[float, ...] = ()
    oedema_mm: tuple[float, ...] = ()
    oedema_hu: tuple[float, ...] = ()
    planned_ml: tuple[float, ...] = ()          # haematoma + oedema, for the mass effect
    target_ml: float = 0.0                      # haematoma volume aimed at on admission


def _random_waves(rng: np.random.Generator, count: int, wavelength: tuple[float, float]
                  ) -> tuple[tuple[float, float, float, float], ...]:
    waves = []
    for _ in range(count):
        direction = rng.normal(size=3)
        k = 2 * np.pi / rng.uniform(*wavelength) * direction / np.linalg.norm(direction)
        waves.append((float(k[0]), float(k[1]), float(k[2]), float(rng.uniform(0, 2 * np.pi))))
    return tuple(waves)


def _wave_field(waves: tuple[tuple[float, float, float, float], ...], u: np.ndarray,
                v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Sum of cosines normalised to unit variance: a smooth random field."""
    total = sum(np.cos(ku * u + kv * v + kw * w + phase) for ku, kv, kw, phase in waves)
    return total * np.float32(np.sqrt(2.0 / len(waves)))


def _blob_field(plan: LesionPlan, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Normalised distance to an irregular blob (< 1 inside) at points in units of size_mm."""
    distance = None
    for du, dv, dw, radius in plan.parts:
        part = np.sqrt((u - du) ** 2 + (v - dv) ** 2 + (w - dw) ** 2) / radius
        distance = part if distance is None else np.minimum(distance, part)
    return distance + 0.12 * _wave_field(plan.waves, u, v, w)


def _unit_blob_volume(plan: LesionPlan) -> float:
    """Volume of the blob for size_mm = 1 (estimated on a 48^3 grid)."""
    axis = np.linspace(-2.4, 2.4, 48, dtype=np.float32)
    step = float(axis[1] - axis[0])
    u, v, w = np.meshgrid(axis, axis, axis, indexing="ij", sparse=True)
    return float((_blob_field(plan, u, v, w) < 1.0).sum()) * step**3


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _direction(side: int, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector: azimuth from the lateral axis towards posterior, elevation to the vertex."""
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.array([side * np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)])


def _course(days: list[int], first: float, half_life_days: float, start_day: int = 3
            ) -> tuple[float, ...]:
    """Size factor per time point: 1 on admission, ``first`` after a day or more, then shrinking."""
    return tuple(1.0 if day == 0 else first * 0.5 ** (max(day - start_day, 0) / half_life_days)
                 for day in days)


def _densities(days: list[int], hu0: float, rate: float) -> tuple[float, ...]:
    """Acute density falling ``rate`` HU a day towards subacute, no lower than 35 HU."""
    return tuple(max(hu0 - rate * day, 35.0) for day in days)


def _sample_intraparenchymal(rng: np.random.Generator, head: HeadAnatomy, volume_ml: float,
                             days: list[int]) -> LesionPlan:
    parts = [(0.0, 0.0, 0.0, 1.0)]
    for _ in range(int(rng.integers(1, 4))):
        offset = _unit(rng.normal(size=3)) * rng.uniform(0.3, 0.6)
        parts.append((*(float(x) for x in offset), float(rng.uniform(0.45, 0.75))))
    shape = LesionPlan(INTRAPARENCHYMAL, 0, (0.0, 0.0, 0.0), 1.0, parts=tuple(parts),
                       waves=_random_waves(rng, 4, (0.8, 1.4)))
    scale = (volume_ml * 1000.0 / _unit_blob_volume(shape)) ** (1 / 3)
    reach = scale * max(np.linalg.norm(p[:3]) + p[3] for p in parts)
    side, center = _intracerebral_site(rng, head, reach)

    expands = rng.random() < 0.35
    growth = _course(days, rng.uniform(1.3, 1.8) if expands else rng.uniform(0.92, 1.05),
                     rng.uniform(14.0, 28.0))
    radius = (3 * volume_ml * 1000.0 / (4 * np.pi)) ** (1 / 3)
    base, peak, peak_day = rng.uniform(1.5, 3.0), rng.uniform(3.0, 6.0), rng.uniform(4.0, 7.0)
    rim = tuple(base + peak * min(np.sqrt(radius / 12.0), 1.5) * (d / peak_day)
                * np.exp(1 - d / peak_day) for d in days)
    oedema_hu0 = rng.uniform(14.5, 18.0)
    planned = tuple(volume_ml * g * (1 + r / (radius * g ** (1 / 3))) ** 3
                    for g, r in zip(growth, rim, strict=True))
    return LesionPlan(
        INTRAPARENCHYMAL, side, center, scale, parts=shape.parts, waves=shape.waves,
        hu=_densities(days, rng.uniform(60.0, 80.0), rng.uniform(1.0, 1.5)), growth=growth,
        oedema_mm=rim, oedema_hu=tuple(max(oedema_hu0 - 0.3 * d, 11.0) for d in days),
        planned_ml=planned, target_ml=volume_ml)


def _intracerebral_site(rng: np.random.Generator, head: HeadAnatomy, reach: float
                        ) -> tuple[int, tuple[float, float, float]]:
    """A lobar site whose blob stays inside the brain, else a deep (basal ganglia) one."""
    side = int(rng.choice([-1, 1]))
    if rng.random() < 0.55:
        for _ in range(30):
            m = _direction(side, rng.uniform(-80, 80), rng.uniform(-5, 45))
            distance = float(head.inner_distance(m)[0]) - head.csf_rim_mm - 0.9 * reach - 5.0
            center = m * distance
            floor = float(skull_floor(center[0], center[1]))
            if distance > 12.0 and center[2] - reach > floor + 3.0:
                return side, (float(center[0]), float(center[1]), float(center[2]))
    return side, (side * float(rng.uniform(16, 26)), float(rng.uniform(-14, 8)),
                  float(rng.uniform(-6, 8)))


def _sample_extra_axial(rng: np.random.Generator, head: HeadAnatomy, subtype: str,
                        volume_ml: float, days: list[int]) -> LesionPlan:
    """A subdural crescent or an extradural lens over the convexity."""
    side = int(rng.choice([-1, 1]))
    if subtype == SUBDURAL:
        m = _direction(side, rng.uniform(-60, 40), rng.uniform(5, 45))
        extent, mean_profile, limits = rng.uniform(35, 55), 1 / 1.8, (2.0, 28.0)
        first, half_life, hu0 = rng.uniform(0.95, 1.3), rng.uniform(25, 50), rng.uniform(55, 78)
    else:
        m = _direction(side, rng.uniform(-40, 40), rng.uniform(-5, 35))
        extent, mean_profile, limits = rng.uniform(20, 32), 2 / 3, (6.0, 45.0)
        expands = rng.random() < 0.25
        first = rng.uniform(1.2, 1.6) if expands else rng.uniform(0.95, 1.05)
        half_life, hu0 = rng.uniform(20, 40), rng.uniform(62, 85)
    inner = float(head.inner_distance(m)[0])
    area = 2 * np.pi * inner**2 * (1 - np.cos(np.deg2rad(extent)))
    thickness = float(np.clip(volume_ml * 1000.0 / (area * mean_profile), *limits))
    growth = _course(days, first, half_life)
    planned = area * mean_profile * thickness / 1000.0
    return LesionPlan(subtype, side, tuple(float(x) for x in m * inner), thickness,
                      extent_deg=float(extent), hu=_densities(days, hu0, rng.uniform(1.0, 1.5)),
                      growth=growth, planned_ml=tuple(planned * g for g in growth),
                      target_ml=volume_ml)


def _sample_subarachnoid(rng: np.random.Generator, head: HeadAnatomy, quantile: float,
                         days: list[int]) -> LesionPlan:
    side = int(rng.choice([-1, 1]))
    kind = rng.random()
    if kind < 0.5:  # convexity sulci
        m = _direction(side, rng.uniform(-70, 70), rng.uniform(10, 55))
        center = m * (float(head.inner_distance(m)[0]) - 6.0)
    elif kind < 0.8:  # Sylvian fissure
        center = np.array([side * 40.0, -8.0, -12.0])
    else:  # basal cistern
        side, center = 0, np.array([0.0, -4.0, -24.0])
    half_time = rng.uniform(1.5, 3.0)
    growth = tuple(0.0 if (g := 0.5 ** (d / half_time)) < 0.2 else g for d in days)
    return LesionPlan(SUBARACHNOID, side, tuple(float(x) for x in center),
                      15.0 + 30.0 * quantile, waves=_random_waves(rng, 5, (12.0, 20.0)),
                      hu=_densities(days, rng.uniform(55, 75), 2.0),
                      growth=growth, planned_ml=tuple(0.0 for _ in days))


def _sample_intraventricular(rng: np.random.Generator, quantile: float, days: list[int]
                             ) -> LesionPlan:
    side = 0 if quantile > 0.65 else int(rng.choice([-1, 1]))
    half_time = rng.uniform(5.0, 10.0)
    growth = tuple(0.0 if (g := 0.5 ** (d / half_time)) < 0.2 else g for d in days)
    return LesionPlan(INTRAVENTRICULAR, side, (0.0, 20.0, 0.0), 0.0, fill=0.12 + 0.5 * quantile,
                      hu=_densities(days, rng.uniform(55, 75), 2.0), growth=growth,
                      planned_ml=tuple(0.0 for _ in days))


def sample_lesions(rng: np.random.Generator, head: HeadAnatomy, mix: CaseMix, days: list[int]
                   ) -> list[LesionPlan]:
    """The lesions of one patient over all time points (``days`` since admission)."""
    plans = []
    for position, subtype in enumerate(mix.subtypes):
        quantile = mix.size_quantile if position == 0 else 0.6 * rng.random()
        if subtype in _SIZE_RANGE_ML:
            low, high = _SIZE_RANGE_ML[subtype]
            volume_ml = low * (high / low) ** quantile
            if subtype == INTRAPARENCHYMAL:
                plans.append(_sample_intraparenchymal(rng, head, volume_ml, days))
            else:
                plans.append(_sample_extra_axial(rng, head, subtype, volume_ml, days))
        elif subtype == SUBARACHNOID:
            plans.append(_sample_subarachnoid(rng, head, quantile, days))
        else:
            plans.append(_sample_intraventricular(rng, quantile, days))
    return plans


def septum_shift_mm(plans: list[LesionPlan], timepoint: int, compliance: float) -> float:
    """Signed midline shift (mm, + towards the patient's left) that the masses cause.

    The lateralised mass (haematoma + oedema of intraparenchymal, subdural and extradural
    bleeds, signed by side) pushes the midline to the other side by
    ``min(0.28 * |mass mL| ** 0.85 * compliance, 18)`` mm.
    """
    net = sum(p.side * p.planned_ml[timepoint] for p in plans if p.subtype in _MASS_SUBTYPES)
    magnitude = min(0.28 * abs(net) ** 0.85 * compliance, 18.0)
    return float(-np.sign(net) * magnitude)


# ----------------------------------------------------------------------------- rendering


@dataclass
class LesionTruth:
    """What one lesion looks like on one scan (volumes measured on the label map)."""

    subtype: str
    side: str
    haematoma_ml: float
    oedema_ml: float
    density_hu: float
    centroid_lps: tuple[float, float, float] | None


def render_lesions(plans: list[LesionPlan], timepoint: int, frame: HeadFrame,
                   anatomy: AnatomyImage) -> tuple[np.ndarray, list[LesionTruth]]:
    """Paint the lesions of one time point into ``anatomy.hu``; return the label map and truth."""
    label = np.zeros(frame.grid.shape, np.uint8)
    owner = np.zeros(frame.grid.shape, np.uint8)
    order = sorted(range(len(plans)), key=lambda i: _PAINT_ORDER.index(plans[i].subtype))
    for index in order:
        plan = plans[index]
        if plan.growth[timepoint] <= 0:
            continue
        painted = _PAINTERS[plan.subtype](plan, timepoint, frame, anatomy)
        if painted is None:
            continue
        box, haematoma, oedema, texture = painted
        hu, labels, owners = anatomy.hu[box], label[box], owner[box]
        if oedema is not None:
            oedema &= labels == 0
            hu[oedema] = plan.oedema_hu[timepoint]
            labels[oedema], owners[oedema] = OEDEMA, index + 1
        hu[haematoma] = plan.hu[timepoint] + (texture[haematoma] if texture is not None else 0)
        labels[haematoma], owners[haematoma] = HAEMATOMA, index + 1
    return label, _measure(plans, timepoint, frame, label, owner)


def _measure(plans: list[LesionPlan], timepoint: int, frame: HeadFrame, label: np.ndarray,
             owner: np.ndarray) -> list[LesionTruth]:
    voxel_ml = frame.grid.voxel_volume_ml
    truths = []
    haematoma_counts = np.bincount(owner[label == HAEMATOMA], minlength=len(plans) + 1)
    oedema_counts = np.bincount(owner[label == OEDEMA], minlength=len(plans) + 1)
    for index, plan in enumerate(plans):
        count = int(haematoma_counts[index + 1])
        if count == 0:
            continue
        where = np.argwhere((owner == index + 1) & (label == HAEMATOMA)).mean(axis=0)
        dz, dy, dx = frame.grid.spacing
        x0, y0, z0 = frame.grid.origin
        centroid = (x0 + dx * where[2], y0 + dy * where[1], z0 + dz * where[0])
        truths.append(LesionTruth(
            subtype=plan.subtype, side={1: "left", -1: "right", 0: "midline"}[plan.side],
            haematoma_ml=round(count * voxel_ml, 6),
            oedema_ml=round(int(oedema_counts[index + 1]) * voxel_ml, 6),
            density_hu=float(plan.hu[timepoint]),
            centroid_lps=tuple(round(float(c), 2) for c in centroid)))
    return truths


Painted = tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray | None, np.ndarray | None]


def _paint_intraparenchymal(plan: LesionPlan, timepoint: int, frame: HeadFrame,
                            anatomy: AnatomyImage) -> Painted | None:
    threshold = plan.growth[timepoint] ** (1 / 3)
    oedema_threshold = threshold + plan.oedema_mm[timepoint] / plan.size_mm
    reach = plan.size_mm * max(np.linalg.norm(p[:3]) + p[3] * (oedema_threshold + 0.4)
                               for p in plan.parts)
    center = np.asarray(plan.center)
    box = frame.box(tuple(center - reach), tuple(center + reach))
    if box is None:
        return None
    u, v, w = frame.coords(box)
    scale = np.float32(1.0 / plan.size_mm)
    blob = _blob_field(plan, (u - center[0]) * scale, (v - center[1]) * scale,
                       (w - center[2]) * scale)
    hemisphere = (anatomy.depth[box] >= 0) & (u * plan.side > 0)  # does not cross the falx
    haematoma = (blob < threshold) & hemisphere
    parenchyma = np.isin(anatomy.tissue[box], PARENCHYMA)
    oedema = (blob < oedema_threshold) & ~haematoma & parenchyma & hemisphere
    texture = 3.0 * (blob < threshold * 0.7) - 2.0 * (blob > threshold * 0.9)
    return box, haematoma, oedema, texture.astype(np.float32)


def _cap_box(plan: LesionPlan, frame: HeadFrame) -> tuple[slice, slice, slice] | None:
    """Index box around a cap of the convexity (points sampled over its angular extent)."""
    m0 = _unit(np.asarray(plan.center))
    helper = np.array([0.0, 0.0, 1.0]) if abs(m0[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = _unit(np.cross(m0, helper))
    e2 = np.cross(m0, e1)
    theta = np.deg2rad(np.linspace(0, plan.extent_deg, 6))[:, None]
    phi = np.linspace(0, 2 * np.pi, 16, endpoint=False)[None, :]
    directions = (np.cos(theta)[..., None] * m0 + np.sin(theta)[..., None]
                  * (np.cos(phi)[..., None] * e1 + np.sin(phi)[..., None] * e2)).reshape(-1, 3)
    radius = np.linalg.norm(plan.center)
    points = np.concatenate([directions * (radius + 4.0),
                             directions * (radius - plan.size_mm * 1.8 - 4.0)])
    return frame.box(tuple(points.min(axis=0)), tuple(points.max(axis=0)))


def _paint_extra_axial(plan: LesionPlan, timepoint: int, frame: HeadFrame,
                       anatomy: AnatomyImage) -> Painted | None:
    box = _cap_box(plan, frame)
    if box is None:
        return None
    u, v, w = frame.coords(box)
    m0 = _unit(np.asarray(plan.center)).astype(np.float32)
    radius = np.sqrt(u * u + v * v + w * w) + np.float32(1e-3)
    cosine = (u * m0[0] + v * m0[1] + w * m0[2]) / radius
    fraction = np.clip(1.0 - (1.0 - cosine) / (1.0 - np.cos(np.deg2rad(plan.extent_deg))), 0, 1)
    if plan.subtype == SUBDURAL:
        profile = fraction**0.8 * plan.size_mm * plan.growth[timepoint]
    else:
        profile = np.sqrt(fraction) * plan.size_mm * plan.growth[timepoint]
    depth = anatomy.depth[box]
    haematoma = (depth >= 0) & (depth < profile)
    if plan.subtype == SUBDURAL:  # the falx stops a subdural at the midline
        haematoma &= (u * plan.side) > 1.0
    return box, haematoma, None, None


def _paint_subarachnoid(plan: LesionPlan, timepoint: int, frame: HeadFrame,
                        anatomy: AnatomyImage) -> Painted | None:
    radius = plan.size_mm * plan.growth[timepoint] ** (1 / 3)
    center = np.asarray(plan.center)
    box = frame.box(tuple(center - radius), tuple(center + radius))
    if box is None:
        return None
    u, v, w = frame.coords(box)
    du, dv, dw = u - center[0], v - center[1], w - center[2]
    inside = du * du + dv * dv + dw * dw < radius * radius
    patchy = _wave_field(plan.waves, du, dv, dw) > -0.5
    haematoma = inside & patchy & (anatomy.tissue[box] == Tissue.CSF)
    return box, haematoma, None, None


def _paint_intraventricular(plan: LesionPlan, timepoint: int, frame: HeadFrame,
                            anatomy: AnatomyImage) -> Painted | None:
    box = frame.box((-60.0, -70.0, -50.0), (60.0, 75.0, 40.0))
    if box is None:
        return None
    _, v, _ = frame.coords(box)
    v = np.broadcast_to(v, anatomy.tissue[box].shape)
    tissue = anatomy.tissue[box]
    fill = min(plan.fill * plan.growth[timepoint], 0.95)
    sides = {1: (Tissue.VENTRICLE_LEFT,), -1: (Tissue.VENTRICLE_RIGHT,),
             0: (Tissue.VENTRICLE_LEFT, Tissue.VENTRICLE_RIGHT)}[plan.side]
    if fill > 0.45:
        sides = (*sides, Tissue.VENTRICLE_MIDLINE)
    haematoma = np.zeros(tissue.shape, bool)
    for ventricle in sides:
        cavity = tissue == ventricle
        if not cavity.any():
            continue
        level = np.quantile(v[cavity], 1.0 - fill)  # blood settles posteriorly (dependent)
        haematoma |= cavity & (v >= level)
    return box, haematoma, None, None


_PAINTERS = {
    INTRAPARENCHYMAL: _paint_intraparenchymal,
    SUBDURAL: _paint_extra_axial,
    EXTRADURAL: _paint_extra_axial,
    SUBARACHNOID: _paint_subarachnoid,
    INTRAVENTRICULAR: _paint_intraventricular,
}
