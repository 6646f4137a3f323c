"""Midline shift from a head CT: the ideal midline from the skull, the actual one at the septum.

Method (on the CT image in HU, reoriented to the canonical axial frame):

1. **Ideal midline** (the sagittal plane the brain would lie on without mass effect): per axial
   slice, the cranial cavity is the region enclosed by bone (> 300 HU). Its symmetry axis is
   found by iterating: chords perpendicular to the current axis are cut through the cavity, a
   line is fitted to their midpoints, and the axis moves onto that line. The slices with the
   largest cavities give a median angle and offset. A skull need not be mirror-symmetric about
   the brain's midline, so this axis only starts the search for the falx: the falx's ridge
   (a dense sheet in the interhemispheric fissure) within 8 mm of each slice's anterior and
   posterior inner table, where a mass hardly displaces it, is summed over slices, and the
   straight line through the most ridge peaks (an exhaustive search over angle, and over
   offsets within 1.5 mm or a pixel of the cavities' centroid: a Hough transform) is the ideal
   midline. Without a visible falx the skull's axis is kept.
2. **Actual midline**: on lines perpendicular to the ideal midline, the smoothed image is cut
   into CSF runs (< 15 HU). The septum pellucidum is the narrow (0.5-6 mm) non-CSF gap between
   two CSF runs of at least 3 mm (the lateral ventricles) within 30 mm of the ideal midline.
   Its offset is taken per row along the septum and median-filtered; the slice whose septum is
   longest (the level of the foramen of Monro, where shift is measured) gives the shift, the
   75th percentile of the rows' offsets on the side of their median.

Signed values are along LPS x' (the ideal midline's normal pointing to the patient's left):
positive means displaced towards the left. `MidlineEstimate.lateral_mm` gives the signed
distance of any LPS point from the ideal midline, which is how lesions get their hemisphere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from voxelwise.errors import InputError
from voxelwise.imaging.resample import reorient
from voxelwise.imaging.volume import Volume

BONE_HU = 300.0
CSF_HU = 15.0
MIN_CAVITY_MM2 = 2500.0
_SEARCH_MM = 30.0
_GAP_MM = (0.5, 6.0)
_MIN_RUN_MM = 3.0
_ANCHOR_MM = 1.5
"""The falx line may pass at most this far (or one pixel) from the cranial cavity's centroid,
which lies on the midline of a symmetric skull to about a millimetre; the falx gives the angle
(chosen on a handful of phantom scans: see benchmarks/midline.py, not a validated constant)."""
_RIDGE_HU = 20.0
_FALX_REACH_MM = 8.0       # the parts of the falx used: this near the cavity's AP ends
_FALX_CORRIDOR_MM = 26.0   # half-width of the strip searched around the skull's axis
_FALX_SEARCH_DEG = 12.0    # the falx line's angle, +- this from the skull's axis
_FALX_MIN_FRACTION = 0.05
"""Weighted fraction of rows with a falx ridge on the best line below which the falx is taken
as not seen (the median line scores about 0.04 on the phantom, a clear falx 0.14-0.7). A faint
falx (0.07-0.10 on a few full-size heads) still wins over the skull's axis, which was up to 8
degrees off there, but can leave the line 3-4 degrees off itself (full seed 6 patient 2: 2.43
mm). The reach, weights and threshold were chosen on phantom scans (benchmarks/midline.py),
not validated."""


@dataclass
class MidlineEstimate:
    """The ideal midline plane of a scan and the septum's displacement from it.

    The plane is given in the canonical frame (axes S, P, L of the reoriented image) as, per
    slice index k, a point ``(y_k, x_k)`` in mm from the grid origin and one unit normal
    ``(ny, nx)`` (pointing to the patient's left); ``to_lps`` / ``lateral_mm`` convert.
    """

    shift_mm: float | None            # |displacement| of the septum; None if not found
    signed_shift_mm: float | None     # + towards the patient's left
    angle_deg: float                  # ideal midline's angle to the grid's AP axis
    slope: float                      # lateral offset change per mm along the slices
    intercept: float                  # lateral offset (mm from the grid) at slice 0
    canonical: Volume = field(repr=False)  # a tiny Volume carrying the canonical geometry
    septum_slice: int | None = None   # canonical slice index where the shift was measured
    septum_row_mm: float | None = None  # AP position (mm along the ideal midline) of the septum
    slices_used: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def normal(self) -> np.ndarray:
        theta = np.deg2rad(self.angle_deg)
        return np.array([-np.sin(theta), np.cos(theta)])  # (y, x) components

    def offset_at(self, z_mm: float) -> float:
        return self.intercept + self.slope * z_mm

    def lateral_mm(self, points_lps: np.ndarray) -> np.ndarray:
        """Signed distance (mm, + to the patient's left) of (N, 3) LPS points from the plane."""
        index = self.canonical.lps_to_index(points_lps)
        local = index * np.asarray(self.canonical.spacing)  # (z, y, x) mm in the canonical grid
        return local[:, 1:] @ self.normal - self.offset_at_array(local[:, 0])

    def offset_at_array(self, z_mm: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * np.asarray(z_mm)

    def as_dict(self) -> dict[str, Any]:
        return {"shift_mm": self.shift_mm, "signed_shift_mm": self.signed_shift_mm,
                "angle_deg": round(self.angle_deg, 3), "septum_slice": self.septum_slice,
                "slices_used": self.slices_used, "notes": list(self.notes)}


def _grid_frame(volume: Volume) -> Volume:
    """A 1-voxel Volume that carries ``volume``'s geometry (for point conversions)."""
    return Volume(np.zeros((1, 1, 1), np.uint8), volume.spacing, volume.origin,
                  volume.direction)


def _cavity(bone: np.ndarray) -> np.ndarray | None:
    """The largest region enclosed by bone in one slice, or None."""
    inside = ndimage.binary_fill_holes(bone) & ~bone
    labels, count = ndimage.label(inside)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def _symmetry_axis(points: np.ndarray, iterations: int = 6) -> tuple[float, np.ndarray]:
    """Angle (rad) and a point (y, x) of the symmetry axis of a 2-D region's pixels (mm)."""
    theta = 0.0
    point = points.mean(axis=0)
    for _ in range(iterations):
        along = np.array([np.cos(theta), np.sin(theta)])     # (y, x): mostly posterior
        normal = np.array([-np.sin(theta), np.cos(theta)])   # mostly to the left
        relative = points - point
        t, s = relative @ along, relative @ normal
        bins = np.round(t / 2.0).astype(int)
        order = np.argsort(bins)
        bins, s_sorted = bins[order], s[order]
        starts = np.flatnonzero(np.r_[True, np.diff(bins) != 0])
        low = np.minimum.reduceat(s_sorted, starts)
        high = np.maximum.reduceat(s_sorted, starts)
        chord = high - low
        keep = chord > 0.6 * chord.max()
        if keep.sum() < 3:
            break
        centres = bins[starts][keep] * 2.0
        middles = (low + high)[keep] / 2.0
        beta, alpha = np.polyfit(centres, middles, 1)
        point = point + alpha * normal
        theta += float(np.arctan(beta))
    return theta, point


def _cavities(hu: np.ndarray, spacing: tuple[float, float, float]
              ) -> dict[int, np.ndarray]:
    """Slice index -> cranial cavity mask, for slices whose cavity is large enough."""
    _, dy, dx = spacing
    found = {}
    for k in range(hu.shape[0]):
        cavity = _cavity(hu[k] > BONE_HU)
        if cavity is not None and cavity.sum() * dy * dx >= MIN_CAVITY_MM2:
            found[k] = cavity
    return found


def _skull_midline(cavities: dict[int, np.ndarray], spacing: tuple[float, float, float]
                   ) -> tuple[float, float, list[int]]:
    """(angle rad, offset mm) of the skull's symmetry axis, and the slices it was fitted on."""
    _, dy, dx = spacing
    areas = {k: float(c.sum()) * dy * dx for k, c in cavities.items()}
    largest = max(areas.values())
    chosen = [k for k, area in areas.items() if area >= 0.6 * largest]
    axes = []
    for k in chosen:
        rows, cols = np.nonzero(cavities[k])
        axes.append(_symmetry_axis(np.stack([rows * dy, cols * dx], axis=1)))
    theta = float(np.median([a for a, _ in axes]))
    normal = np.array([-np.sin(theta), np.cos(theta)])
    return theta, float(np.median([p @ normal for _, p in axes])), chosen


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the True runs of a 1-D mask."""
    padded = np.r_[False, mask, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2], edges[1::2], strict=True))


@dataclass
class _Slice:
    """One axial slice resampled on lines perpendicular to the coarse midline."""

    index: int
    t: np.ndarray          # mm along the midline (rows of ``values``)
    s: np.ndarray          # mm across it, + to the patient's left (columns)
    values: np.ndarray     # smoothed HU
    depth: np.ndarray      # mm inside the inner table (negative outside the cavity)


@dataclass
class _Prepared:
    """One axial slice's cavity, smoothed HU (~0.7 mm) and depth inside the cavity (mm)."""

    cavity: np.ndarray
    smooth: np.ndarray
    depth: np.ndarray


def _prepare(hu: np.ndarray, cavities: dict[int, np.ndarray],
             spacing_yx: tuple[float, float]) -> dict[int, _Prepared]:
    """What every resampling of a slice needs, computed once per slice."""
    dy, dx = spacing_yx
    sigma = (max(0.7 / dy, 0.4), max(0.7 / dx, 0.4))
    return {k: _Prepared(cavity, ndimage.gaussian_filter(hu[k], sigma),
                         ndimage.distance_transform_edt(cavity, sampling=(dy, dx)))
            for k, cavity in cavities.items()}


def _resample_slice(prepared: _Prepared, spacing_yx: tuple[float, float],
                    theta: float, offset: float, half_width: float, index: int) -> _Slice:
    dy, dx = spacing_yx
    step = min(0.25, 0.5 * min(dy, dx))
    cavity, smooth, depth = prepared.cavity, prepared.smooth, prepared.depth
    along = np.array([np.cos(theta), np.sin(theta)])
    normal = np.array([-np.sin(theta), np.cos(theta)])
    rows, cols = np.nonzero(cavity)
    t_all = np.stack([rows * dy, cols * dx], axis=1) @ along
    t = np.arange(np.floor(t_all.min()), np.ceil(t_all.max()) + 1.0, 1.0)
    s = np.arange(-half_width, half_width + step / 2, step)
    points = (offset * normal)[None, None] + t[:, None, None] * along \
        + s[None, :, None] * normal
    coords = np.stack([points[..., 0] / dy, points[..., 1] / dx])
    values = ndimage.map_coordinates(smooth, coords, order=1, mode="nearest")
    inside = ndimage.map_coordinates(depth, coords, order=1, mode="constant", cval=0.0)
    return _Slice(index, t, s, values, inside)


def _falx_peaks(cut: _Slice) -> tuple[np.ndarray, np.ndarray]:
    """Falx-like ridge peaks of a resampled slice (weights 0-1), and where it is valid.

    The falx is the dense (~60 HU) sheet in the CSF of the interhemispheric fissure: a ridge of
    the profile across the midline, denser than the profile 2 mm to either side (than both, not
    their mean: the flank of a dark CSF strip would pass). Each row's local maxima of at least
    a tenth of `_RIDGE_HU` count at their peak with weight ridge / `_RIDGE_HU` (at most 1),
    spread by a Gaussian of 0.5 mm, so that a bright structure counts no more than the faint
    falx of a fine, blurred scan.
    """
    step = cut.s[1] - cut.s[0]
    width = max(int(round(2.0 / step)), 1)
    values = cut.values
    valid = (cut.depth > 2.0) & (values > -50.0)  # not in sinus air or bone
    valid[:, :width], valid[:, -width:] = False, False
    ridge = values - np.maximum(np.roll(values, width, axis=1), np.roll(values, -width, axis=1))
    ridge = np.where(valid, ridge, -np.inf)
    peak = (ridge >= _RIDGE_HU / 10.0) & (ridge >= np.roll(ridge, 1, axis=1)) \
        & (ridge > np.roll(ridge, -1, axis=1))
    weight = np.where(peak, np.clip(ridge / _RIDGE_HU, 0.0, 1.0), 0.0)
    sigma = 0.5 / step
    spread = ndimage.gaussian_filter1d(weight, sigma, axis=1) * (np.sqrt(2.0 * np.pi) * sigma)
    return np.where(valid, spread, 0.0), valid


@dataclass
class _FalxEvidence:
    """Ridge strength near the cavity's anterior and posterior ends, summed over slices.

    Rows are 1 mm steps along the skull's axis from ``t0``; columns are ``s`` mm across it. The
    falx lies on one straight line in every slice, so its ridge adds up across slices, while
    gyri and sulci (different in every slice) average out.
    """

    t0: float
    s: np.ndarray
    ridge: dict[int, np.ndarray]   # end (-1 anterior, +1 posterior) -> summed ridge
    count: dict[int, np.ndarray]   # end -> number of valid slices per pixel


def _falx_evidence(slices: dict[int, _Prepared], spacing_yx: tuple[float, float],
                   theta: float, offset: float) -> _FalxEvidence | None:
    """The falx ridge within `_FALX_REACH_MM` of each slice's anterior and posterior ends.

    Near its attachments to the inner table the falx is hardly displaced by a mass, which is
    why those parts define the ideal midline.
    """
    cuts = [_resample_slice(p, spacing_yx, theta, offset, _FALX_CORRIDOR_MM, k)
            for k, p in slices.items()]
    t0 = min(float(cut.t[0]) for cut in cuts)
    rows = int(round(max(float(cut.t[-1]) for cut in cuts) - t0)) + 1
    s = cuts[0].s
    ridge = {end: np.zeros((rows, s.size)) for end in (-1, 1)}
    count = {end: np.zeros((rows, s.size)) for end in (-1, 1)}
    for cut in cuts:
        inside = np.flatnonzero(cut.depth[:, len(cut.s) // 2] > 3.0)
        if inside.size < 10:
            continue
        strength, valid = _falx_peaks(cut)
        first, last = cut.t[inside[0]], cut.t[inside[-1]]
        for end, near in ((-1, cut.t[inside] - first), (1, last - cut.t[inside])):
            chosen = inside[near < _FALX_REACH_MM]
            index = np.round(cut.t[chosen] - t0).astype(int)
            ridge[end][index] += strength[chosen]
            count[end][index] += valid[chosen]
    if any(not c.any() for c in count.values()):
        return None
    return _FalxEvidence(t0, s, ridge, count)


def _line_scores(evidence: _FalxEvidence, centre: float, slopes: np.ndarray,
                 intercepts: np.ndarray) -> np.ndarray:
    """Fraction of rows with a falx ridge on each line ``s = a + b (t - centre)``, the two ends
    averaged."""
    b, a = np.meshgrid(slopes, intercepts, indexing="ij")
    step = evidence.s[1] - evidence.s[0]
    total = np.zeros(b.shape)
    for end in (-1, 1):
        rows = np.flatnonzero(evidence.count[end].sum(axis=1) > 0)
        t = evidence.t0 + rows
        columns = (a[..., None] + b[..., None] * (t - centre) - evidence.s[0]) / step
        grid = [np.broadcast_to(rows, columns.shape).ravel(), columns.ravel()]
        ridge = ndimage.map_coordinates(evidence.ridge[end], grid, order=1, cval=0.0)
        count = ndimage.map_coordinates(evidence.count[end], grid, order=1, cval=0.0)
        total += ridge.reshape(columns.shape).sum(-1) / np.maximum(
            count.reshape(columns.shape).sum(-1), 1.0)
    return total / 2.0


def _falx_line(evidence: _FalxEvidence, anchor: tuple[float, float], tolerance: float
               ) -> tuple[float, float, float]:
    """(score, slope, intercept at t = 0) of the straight line best supported by the falx.

    An exhaustive search (coarse, then fine) over angles around the skull's axis and over lines
    passing within ``tolerance`` mm of ``anchor`` (t, s): a Hough transform of the summed ridge,
    with no point-picking that a sulcus could mislead.
    """
    centre, intercept = anchor
    angle, score = 0.0, -np.inf
    for angle_step, offset_step, angle_span, offset_span in (
            (0.25, 0.25, _FALX_SEARCH_DEG, tolerance), (0.05, 0.05, 0.3, 0.3)):
        angles = angle + np.arange(-angle_span, angle_span + angle_step / 2, angle_step)
        intercepts = intercept + np.arange(-offset_span, offset_span + offset_step / 2,
                                           offset_step)
        intercepts = intercepts[np.abs(intercepts - anchor[1]) <= tolerance + 1e-9]
        scores = _line_scores(evidence, centre, np.tan(np.deg2rad(angles)), intercepts)
        i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        angle, intercept, score = float(angles[i]), float(intercepts[j]), float(scores[i, j])
    slope = float(np.tan(np.deg2rad(angle)))
    return score, slope, intercept - slope * centre


def _septum_in_row(profile: np.ndarray, ventricle: np.ndarray, s: np.ndarray,
                   step: float) -> float | None:
    """Lateral position (mm) of the septum in one profile through the ventricles, or None.

    Two ventricle runs with a narrow gap: the gap's centre. One wide run: the densest point
    inside it (the septum blurred into the CSF on a coarse grid), if it stands out.
    """
    runs = [(a, b) for a, b in _runs(ventricle) if (b - a) * step >= _MIN_RUN_MM]
    candidates = []
    for (a1, b1), (a2, b2) in zip(runs, runs[1:], strict=False):
        gap = (a2 - b1) * step
        if _GAP_MM[0] <= gap <= _GAP_MM[1]:
            candidates.append(((b1 - a1 + b2 - a2) * step, (s[b1 - 1] + s[a2]) / 2.0))
    for a, b in runs:
        margin = int(round(1.5 / step))
        if (b - a) * step < 8.0 or b - a <= 2 * margin + 2:
            continue
        inner = profile[a + margin:b - margin]
        peak = int(np.argmax(inner))
        if inner[peak] - min(inner[:peak + 1].min(), inner[peak:].min()) >= 4.0 \
                and inner[:peak + 1].min() < inner[peak] - 4.0 \
                and inner[peak:].min() < inner[peak] - 4.0:
            candidates.append(((b - a) * step, float(s[a + margin + peak])))
    if not candidates:
        return None
    return float(max(candidates)[1])


def _ventricles(cut: _Slice) -> np.ndarray:
    """Deep CSF regions of the resampled slice (the lateral ventricles and their neighbours)."""
    csf = (cut.values < CSF_HU) & (cut.depth > 12.0)
    labels, count = ndimage.label(csf)
    if count == 0:
        return csf
    step = cut.s[1] - cut.s[0]
    sizes = np.bincount(labels.ravel()) * step * 1.0
    keep = sizes >= 25.0
    keep[0] = False
    return keep[labels]


def _slice_septum(cut: _Slice) -> tuple[float, float, int] | None:
    """(signed shift mm, AP position mm, rows found) of the septum in one resampled slice."""
    ventricle = _ventricles(cut)
    step = cut.s[1] - cut.s[0]
    central = np.abs(cut.s) <= _SEARCH_MM
    found = []
    for i, t in enumerate(cut.t):
        if not ventricle[i, central].any():
            continue
        centre = _septum_in_row(cut.values[i, central], ventricle[i, central],
                                cut.s[central], step)
        if centre is not None and abs(centre) < _SEARCH_MM - 3.0:
            found.append((float(t), centre))
    track = _longest_track(found)
    if len(track) < 5:
        return None
    positions = ndimage.median_filter(np.array([c for _, c in track]), size=5, mode="nearest")
    value = float(np.percentile(positions, 75 if np.median(positions) > 0 else 25))
    return value, float(np.median([t for t, _ in track])), len(track)


def _longest_track(found: list[tuple[float, float]], step_mm: float = 1.5,
                   gap_mm: float = 4.0) -> list[tuple[float, float]]:
    """The longest run of (t, s) rows that moves at most ``step_mm`` across per row.

    The septum is one continuous sheet; candidates elsewhere (the ventricles' atria, a choroid
    calcification) form other, shorter tracks. A row joins the track whose last row is within
    ``step_mm`` across and ``gap_mm`` along, so that a stray row does not break the septum.
    (The median of all rows was misled where stray rows outnumbered the septum's.)
    """
    tracks: list[list[tuple[float, float]]] = []
    for t, s in found:
        near = [track for track in tracks
                if t - track[-1][0] <= gap_mm and abs(s - track[-1][1]) <= step_mm]
        if near:
            min(near, key=lambda track: abs(s - track[-1][1])).append((t, s))
        else:
            tracks.append([(t, s)])
    return max(tracks, key=len, default=[])


def _line_through(theta: float, offset: float, slope: float, intercept: float
                  ) -> tuple[float, float]:
    """The line ``s = intercept + slope * t`` of the frame (theta, offset), as (theta, offset)."""
    normal = np.array([-np.sin(theta), np.cos(theta)])
    point = (offset + intercept) * normal
    new_theta = theta + float(np.arctan(slope))
    new_normal = np.array([-np.sin(new_theta), np.cos(new_theta)])
    return new_theta, float(point @ new_normal)


def _skull_anchor(slices: dict[int, _Prepared], spacing: tuple[float, float, float]
                  ) -> np.ndarray:
    """(y, x) mm: the centroid of the cranial cavities, on the midline of a symmetric skull.

    (The centroid holds the offset well, to about a millimetre, even where the outline's axis
    angle is several degrees off.)
    """
    _, dy, dx = spacing
    points = np.concatenate([np.argwhere(p.cavity) for p in slices.values()])
    return points.mean(axis=0) * (dy, dx)


def _refine_with_falx(slices: dict[int, _Prepared],
                      spacing: tuple[float, float, float], theta: float, offset: float,
                      notes: list[str]) -> tuple[float, float]:
    """The ideal midline along the falx near its attachments (the skull's axis when not seen).

    The skull gives the offset (the line passes within `_ANCHOR_MM`, or one pixel, of the
    cavities' centroid) and starts the search for the angle, which the falx gives: a skull
    outline need not be mirror-symmetric about the falx (its axis was 2-6 degrees off on
    phantom heads whose shape harmonics are odd).
    """
    evidence = _falx_evidence(slices, spacing[1:], theta, offset)
    if evidence is None:
        notes.append("falx not found; ideal midline from the skull's symmetry")
        return theta, offset
    along = np.array([np.cos(theta), np.sin(theta)])
    normal = np.array([-np.sin(theta), np.cos(theta)])
    anchor = _skull_anchor(slices, spacing)
    score, slope, intercept = _falx_line(
        evidence, (float(anchor @ along), float(anchor @ normal - offset)),
        max(_ANCHOR_MM, *spacing[1:]))
    if score < _FALX_MIN_FRACTION:
        notes.append(f"falx too faint (a ridge on {score:.0%} of the rows at its ends); ideal "
                     "midline from the skull's symmetry")
        return theta, offset
    return _line_through(theta, offset, slope, intercept)


def estimate_midline(image: Volume) -> MidlineEstimate:
    """Ideal midline and midline shift of a head CT (HU); see the module docstring."""
    ct = reorient(image)
    hu = ct.array.astype(np.float32, copy=False)
    if float(np.percentile(hu, 99.5)) < BONE_HU:
        raise InputError(image.meta.get("source"), "no bone (> 300 HU) in the image; the "
                         "midline needs a head CT in Hounsfield units")
    cavities = _cavities(hu, ct.spacing)
    if not cavities:
        raise InputError(image.meta.get("source"), "no axial slice with a cranial cavity "
                         f"enclosed by bone (> {BONE_HU:g} HU); is this a head CT in HU?")
    notes: list[str] = []
    theta, offset, used = _skull_midline(cavities, ct.spacing)
    slices = _prepare(hu, cavities, ct.spacing[1:])
    theta, offset = _refine_with_falx(slices, ct.spacing, theta, offset, notes)
    estimate = MidlineEstimate(None, None, float(np.rad2deg(theta)), 0.0, offset,
                               _grid_frame(ct), slices_used=len(used), notes=notes)
    best = None
    for k, prepared in slices.items():
        cut = _resample_slice(prepared, ct.spacing[1:], theta, offset, _SEARCH_MM + 5, k)
        found = _slice_septum(cut)
        if found is not None and (best is None or found[2] > best[1][2]):
            best = (k, found)
    if best is None:
        notes.append("septum pellucidum not found between two CSF-filled ventricles")
        return estimate
    k, (signed, row, _) = best
    estimate.shift_mm = round(abs(signed), 2)
    estimate.signed_shift_mm = round(signed, 2)
    estimate.septum_slice, estimate.septum_row_mm = k, row
    return estimate
