"""Head anatomy of the CT phantom: scalp, skull, brain, CSF spaces and ventricles, in HU.

Coordinates
-----------
A scan is a `ScanGrid` (standard axial CT: axes slice, row, column; slices towards the head, rows
towards posterior, columns towards the patient's left, so DICOM IOP is (1,0,0,0,1,0)). A
`HeadPose` puts the head in that grid: its origin (about the centre of the lateral ventricles) at
an LPS point and a small turn (yaw) about the vertical axis. Anatomy is defined in *head
coordinates* (u, v, w) in mm from the head origin: u towards the patient's left, v towards
posterior, w towards the vertex. With only a yaw, u and v depend on the row and column alone and
w on the slice alone, so the head is rendered one axial slice at a time on 2-D arrays (fast, and
easy to follow).

Model
-----
* The outer surface of the skull is a perturbed ellipsoid (semi-axes a, b, c; c differs above and
  below the origin; low-order harmonics of the in-plane angle make each head its own shape).
  ``d`` below is an approximate signed distance in mm to that surface, positive outside.
* Shells by ``d``: scalp (soft tissue, ~40 HU) up to a few mm outside, skull (outer table,
  diploe, inner table) inside, then the cranial cavity above a skull base whose floor falls
  towards the posterior fossa.
* In the cavity, depth below the inner table gives a CSF rim, a cortical grey-matter ribbon and
  white matter; sulci are the zero set of a smooth random field (sheets of CSF lined by grey
  matter); Sylvian fissures and a basal cistern add CSF; a dense tentorium separates the
  posterior fossa.
* Midline structures (falx and interhemispheric fissure, lateral ventricles either side of the
  septum, third and fourth ventricles, basal ganglia and thalami, calcified choroid plexus and
  pineal) are evaluated at coordinates warped by a `MidlineShift` displacement field, so a mass
  displaces them smoothly while the skull stays put.
* Age widens the CSF spaces (sulci, rim, ventricles), as atrophy does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from voxelwise.imaging.volume import Volume

AXIAL_DIRECTION = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
"""Direction cosines (columns = array axes) of an axial CT: slice -> +z, row -> +y, column -> +x."""


class Tissue(IntEnum):
    """Tissue classes of the noise-free phantom (the order is the painting order)."""

    AIR = 0
    SOFT_TISSUE = 1        # scalp, face and neck
    BONE = 2               # outer and inner tables, skull base
    DIPLOE = 3
    CSF = 4                # subarachnoid CSF: rim, sulci, fissures, cisterns
    GREY_MATTER = 5
    WHITE_MATTER = 6
    DEEP_GREY = 7          # basal ganglia and thalami
    VENTRICLE_LEFT = 8
    VENTRICLE_RIGHT = 9
    VENTRICLE_MIDLINE = 10  # third and fourth ventricles
    DURA = 11              # falx and tentorium
    CALCIFICATION = 12     # choroid plexus, pineal
    SINUS_AIR = 13         # paranasal sinuses and mastoid air cells


NOMINAL_HU = {
    Tissue.AIR: -1000.0, Tissue.SOFT_TISSUE: 40.0, Tissue.BONE: 1350.0, Tissue.DIPLOE: 800.0,
    Tissue.CSF: 5.0, Tissue.GREY_MATTER: 40.0, Tissue.WHITE_MATTER: 25.0, Tissue.DEEP_GREY: 37.0,
    Tissue.VENTRICLE_LEFT: 5.0, Tissue.VENTRICLE_RIGHT: 5.0, Tissue.VENTRICLE_MIDLINE: 5.0,
    Tissue.DURA: 60.0, Tissue.CALCIFICATION: 250.0, Tissue.SINUS_AIR: -950.0,
}
"""Typical CT numbers; each patient gets values jittered around these."""

VENTRICLES = (Tissue.VENTRICLE_LEFT, Tissue.VENTRICLE_RIGHT, Tissue.VENTRICLE_MIDLINE)
PARENCHYMA = (Tissue.GREY_MATTER, Tissue.WHITE_MATTER, Tissue.DEEP_GREY)


# ----------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class ScanGrid:
    """The voxel grid of one axial CT series (spacing and origin in array-axis order / LPS)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def volume(self, array: np.ndarray, **meta: object) -> Volume:
        return Volume(array, self.spacing, self.origin, AXIAL_DIRECTION, meta=meta)

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0


@dataclass(frozen=True)
class HeadPose:
    """Where the head lies in the scanner for one scan."""

    center: tuple[float, float, float]  # LPS mm of the head origin
    yaw_deg: float                      # turn about the vertical axis


Box = tuple[slice, slice, slice]


class HeadFrame:
    """Head coordinates (u, v, w) of every voxel of a grid, for one pose."""

    def __init__(self, grid: ScanGrid, pose: HeadPose) -> None:
        self.grid, self.pose = grid, pose
        dz, dy, dx = grid.spacing
        x0, y0, z0 = grid.origin
        cx, cy, cz = pose.center
        self._cos, self._sin = np.cos(np.deg2rad(pose.yaw_deg)), np.sin(np.deg2rad(pose.yaw_deg))
        x = (x0 - cx + dx * np.arange(grid.shape[2], dtype=np.float32))[None, :]
        y = (y0 - cy + dy * np.arange(grid.shape[1], dtype=np.float32))[:, None]
        self.u = (self._cos * x + self._sin * y).astype(np.float32)   # (rows, columns)
        self.v = (-self._sin * x + self._cos * y).astype(np.float32)  # (rows, columns)
        self.w = (z0 - cz + dz * np.arange(grid.shape[0])).astype(np.float32)  # (slices,)

    def to_lps(self, uvw: np.ndarray) -> np.ndarray:
        """LPS mm of (N, 3) head-coordinate points."""
        uvw = np.atleast_2d(uvw)
        u, v, w = uvw[:, 0], uvw[:, 1], uvw[:, 2]
        cx, cy, cz = self.pose.center
        return np.stack([cx + self._cos * u - self._sin * v,
                         cy + self._sin * u + self._cos * v, cz + w], axis=1)

    def to_index(self, uvw: np.ndarray) -> np.ndarray:
        """Continuous (slice, row, column) indices of (N, 3) head-coordinate points."""
        lps = self.to_lps(uvw)
        x0, y0, z0 = self.grid.origin
        dz, dy, dx = self.grid.spacing
        return np.stack([(lps[:, 2] - z0) / dz, (lps[:, 1] - y0) / dy, (lps[:, 0] - x0) / dx],
                        axis=1)

    def box(self, lower: tuple[float, float, float], upper: tuple[float, float, float]
            ) -> Box | None:
        """Index slices covering the head-coordinate box [lower, upper]; None if off the grid."""
        corners = np.array([[a, b, c] for a in (lower[0], upper[0]) for b in (lower[1], upper[1])
                            for c in (lower[2], upper[2])], dtype=float)
        index = self.to_index(corners)
        start = np.maximum(np.floor(index.min(axis=0)).astype(int), 0)
        stop = np.minimum(np.ceil(index.max(axis=0)).astype(int) + 1, self.grid.shape)
        if np.any(stop <= start):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))

    def coords(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v, w) of the voxels of ``box`` as arrays that broadcast to the box's shape."""
        return (self.u[box[1], box[2]][None], self.v[box[1], box[2]][None],
                self.w[box[0]][:, None, None])


# ----------------------------------------------------------------------------- the head


@dataclass(frozen=True)
class HeadAnatomy:
    """One patient's head: sizes in mm, shape harmonics, CSF widths and CT numbers."""

    half_width: float        # a: outer skull surface, towards the patient's left
    half_length: float       # b: towards posterior
    half_height: float       # c above the head origin
    half_depth: float        # c below the head origin
    harmonics: tuple[float, ...]  # (amplitude, phase) pairs for the in-plane angle, orders 1-3
    scalp_mm: float
    skull_mm: float
    table_mm: float
    csf_rim_mm: float
    cortex_mm: float
    sulcal_depth_mm: float
    sulcal_width: float      # |field| below which a voxel is in a sulcus
    fissure_mm: float        # half-width of the interhemispheric and Sylvian fissures
    ventricle_scale: float
    ventricle_asymmetry: float
    sulcus_waves: tuple[tuple[float, float, float, float], ...]  # (ku, kv, kw, phase), rad/mm
    calcified_choroid: bool
    calcified_pineal: bool
    hu: tuple[float, ...]    # CT number per Tissue value

    def shape_factor(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Radial scale of the skull surface (about 1) in the in-plane direction of (u, v)."""
        x, y = u / self.half_width, v / self.half_length
        radius = np.maximum(np.sqrt(x * x + y * y), 1e-6)
        cos1, sin1 = x / radius, y / radius
        cos2, sin2 = cos1 * cos1 - sin1 * sin1, 2 * cos1 * sin1
        cos3, sin3 = cos2 * cos1 - sin2 * sin1, sin2 * cos1 + cos2 * sin1
        factor = 1.0
        for (amplitude, phase), (c, s) in zip(zip(self.harmonics[::2], self.harmonics[1::2],
                                                  strict=True),
                                              ((cos1, sin1), (cos2, sin2), (cos3, sin3)),
                                              strict=True):
            factor = factor + amplitude * (np.cos(phase) * c + np.sin(phase) * s)
        return factor

    def skull_thickness(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Skull thickness in mm: thicker frontally and occipitally than at the temples."""
        x, y = u / self.half_width, v / self.half_length
        return self.skull_mm * (0.8 + 0.45 * y * y / np.maximum(x * x + y * y, 1e-6))

    def outer_distance(self, directions: np.ndarray) -> np.ndarray:
        """Distance in mm from the head origin to the outer skull surface along unit vectors."""
        directions = np.atleast_2d(directions)
        u, v, w = directions[:, 0], directions[:, 1], directions[:, 2]
        c = np.where(w >= 0, self.half_height, self.half_depth)
        in_plane = ((u / self.half_width) ** 2 + (v / self.half_length) ** 2) \
            / self.shape_factor(u, v) ** 2
        return 1.0 / np.sqrt(in_plane + (w / c) ** 2)

    def inner_distance(self, directions: np.ndarray) -> np.ndarray:
        """Distance in mm from the head origin to the inner table along unit vectors."""
        directions = np.atleast_2d(directions)
        return (self.outer_distance(directions)
                - self.skull_thickness(directions[:, 0], directions[:, 1]))


def skull_floor(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Height w (mm) of the floor of the cranial cavity.

    The anterior fossa is highest, the middle fossae dip laterally under the temporal lobes and
    the posterior fossa lies lowest.
    """
    temporal = 10.0 * np.exp(-((v + 8.0) / 16.0) ** 2) * u * u / (u * u + 30.0**2)
    return -30.0 - 28.0 / (1.0 + np.exp(-(v - 5.0) / 10.0)) - temporal


def tentorium_height(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Height w (mm) of the tentorium over the posterior fossa (a tent, highest at the midline)."""
    return -2.0 - 0.33 * v - 0.006 * u * u


def sample_head(rng: np.random.Generator, age: int) -> HeadAnatomy:
    """Draw a head: size and shape vary per patient, CSF spaces widen with age."""
    atrophy = float(np.clip((age - 30) / 60.0, 0.0, 1.0)) + rng.normal(0.0, 0.08)
    atrophy = float(np.clip(atrophy, 0.0, 1.1))
    waves = []
    for _ in range(7):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        k = 2 * np.pi / rng.uniform(22.0, 34.0)
        waves.append((*(float(c) for c in k * direction), float(rng.uniform(0, 2 * np.pi))))
    hu = dict(NOMINAL_HU)
    hu[Tissue.SOFT_TISSUE] += rng.normal(0, 2)
    hu[Tissue.BONE] += rng.normal(0, 60)
    hu[Tissue.DIPLOE] += rng.normal(0, 40)
    hu[Tissue.GREY_MATTER] += rng.normal(0, 1.0)
    hu[Tissue.WHITE_MATTER] += rng.normal(0, 1.0)
    hu[Tissue.DEEP_GREY] = hu[Tissue.GREY_MATTER] - 3.0
    csf = NOMINAL_HU[Tissue.CSF] + rng.normal(0, 1.0)
    for tissue in (Tissue.CSF, *VENTRICLES):
        hu[tissue] = csf
    hu[Tissue.DURA] += rng.normal(0, 8)
    hu[Tissue.CALCIFICATION] += rng.normal(0, 60)
    return HeadAnatomy(
        half_width=rng.uniform(68.0, 77.0),
        half_length=rng.uniform(86.0, 95.0),
        half_height=rng.uniform(72.0, 80.0),
        half_depth=rng.uniform(95.0, 110.0),
        harmonics=tuple(float(x) for pair in zip(rng.uniform(0.0, 0.03, 3),
                                                 rng.uniform(0, 2 * np.pi, 3), strict=True)
                        for x in pair),
        scalp_mm=rng.uniform(4.0, 6.5),
        skull_mm=rng.uniform(5.0, 6.5),
        table_mm=rng.uniform(1.4, 2.0),
        csf_rim_mm=0.6 + 2.0 * atrophy,
        cortex_mm=rng.uniform(2.6, 3.2),
        sulcal_depth_mm=rng.uniform(12.0, 16.0),
        sulcal_width=0.12 + 0.22 * atrophy,
        fissure_mm=1.0 + 1.5 * atrophy,
        ventricle_scale=1.05 + 0.45 * atrophy,
        ventricle_asymmetry=rng.normal(0.0, 0.05),
        sulcus_waves=tuple(waves),
        calcified_choroid=bool(rng.random() < 0.3 + 0.5 * atrophy),
        calcified_pineal=bool(rng.random() < 0.5),
        hu=tuple(hu[tissue] for tissue in Tissue),
    )


# ----------------------------------------------------------------------------- mass effect


@dataclass(frozen=True)
class MidlineShift:
    """A smooth lateral displacement field centred on the septum pellucidum.

    The displacement (mm, towards the patient's left when positive) at head point (u, v, w) is
    ``amplitude * exp(-(u/su)^2 - ((v-v0)/sv)^2 - ((w-w0)/sw)^2)``. Anatomy that moves with the
    mass is drawn at the template point ``u - D(u, v, w)``. The septum (template u = 0) at the
    reference level (v0, w0) therefore sits at the u that solves ``u = D(u, v0, w0)``;
    `from_septum_shift` picks the amplitude that makes this exactly the wanted shift.
    """

    amplitude: float = 0.0
    reference_v: float = -12.0  # about the foramen of Monro, where shift is measured
    reference_w: float = 12.0
    sigma_u: float = 40.0
    sigma_v: float = 45.0
    sigma_w: float = 32.0

    @classmethod
    def from_septum_shift(cls, shift_mm: float) -> MidlineShift:
        """The field that moves the septum by ``shift_mm`` (signed: + towards the left)."""
        return cls(amplitude=shift_mm * float(np.exp((shift_mm / cls.sigma_u) ** 2)))

    @property
    def septum_shift_mm(self) -> float:
        """Signed displacement of the septum at the reference level (solves u = D(u))."""
        u = 0.0
        for _ in range(50):
            u = self.amplitude * np.exp(-(u / self.sigma_u) ** 2)
        return float(u)

    def in_plane(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The (u, v) part of the field, to be multiplied by `vertical` for a slice."""
        return (self.amplitude * np.exp(-(u / self.sigma_u) ** 2
                                        - ((v - self.reference_v) / self.sigma_v) ** 2))

    def vertical(self, w: float) -> float:
        return float(np.exp(-((w - self.reference_w) / self.sigma_w) ** 2))


# ----------------------------------------------------------------------------- rendering


@dataclass
class AnatomyImage:
    """The noise-free head on a grid."""

    tissue: np.ndarray   # uint8 Tissue per voxel
    hu: np.ndarray       # float32 CT numbers
    depth: np.ndarray    # float32 mm below the inner table or floor; negative outside the cavity


# Centre (u offset from the septum, v, w) and semi-axes (u, v, w) in mm of the parts of the
# left lateral ventricle and deep grey nuclei at a ventricle scale of 1; mirrored for the right.
_VENTRICLE_PARTS = (
    ((6.0, -24.0, 8.0), (6.0, 13.0, 9.0)),     # frontal horn
    ((5.5, -2.0, 14.0), (5.5, 24.0, 6.0)),     # body
    ((14.0, 24.0, 6.0), (7.0, 11.0, 8.0)),     # atrium (trigone)
    ((20.0, 40.0, 4.0), (3.5, 10.0, 4.0)),     # occipital horn
    ((27.0, -6.0, -14.0), (3.0, 15.0, 4.0)),   # temporal horn
)
_DEEP_GREY_PARTS = (
    ((18.0, -20.0, 8.0), (5.0, 9.0, 8.0)),     # caudate head
    ((10.0, 8.0, -4.0), (7.0, 12.0, 8.0)),     # thalamus
    ((24.0, -6.0, -2.0), (6.0, 14.0, 9.0)),    # lentiform nucleus
)
_SEPTUM_HALF_MM = 1.2
_SULCUS_RADIUS = 65.0
_MIDLINE_BOX = ((-58.0, -75.0, -70.0), (58.0, 80.0, 40.0))  # holds every warped structure


def _ellipse(u: np.ndarray, v: np.ndarray, w: float, center: tuple[float, float, float],
             axes: tuple[float, float, float]) -> np.ndarray | None:
    """In-plane mask of an ellipsoid cut at height w; None when the slice misses it."""
    level = 1.0 - ((w - center[2]) / axes[2]) ** 2
    if level <= 0:
        return None
    return ((u - center[0]) / axes[0]) ** 2 + ((v - center[1]) / axes[1]) ** 2 < level


class _Plane:
    """Per-scan 2-D fields of the head box, shared by every slice."""

    def __init__(self, head: HeadAnatomy, frame: HeadFrame, box: Box,
                 shift: MidlineShift) -> None:
        u, v = frame.u[box[1], box[2]], frame.v[box[1], box[2]]
        a, b = head.half_width, head.half_length
        self.u, self.v = u, v
        shape = head.shape_factor(u, v)  # scales each axial cross-section of the ellipsoid
        self.q2 = ((u / a) ** 2 + (v / b) ** 2) / shape**2
        self.g2 = ((u / a**2) ** 2 + (v / b**2) ** 2) / shape**4
        self.skull = head.skull_thickness(u, v)
        self.floor = skull_floor(u, v)
        self.tentorium = tentorium_height(u, v)
        self.sylvian_v = v + 8.0
        self.sylvian_opening = 0.04 * np.maximum(np.abs(u) - 25.0, 0)
        self.uv2 = u * u + v * v
        self.wave_phase = [_SULCUS_RADIUS * (ku * u + kv * v) for ku, kv, _, _ in head.sulcus_waves]
        mid = frame.box(*_MIDLINE_BOX)
        rows = slice(max(mid[1].start - box[1].start, 0), mid[1].stop - box[1].start)
        cols = slice(max(mid[2].start - box[2].start, 0), mid[2].stop - box[2].start)
        self.mid = (rows, cols)
        self.mid_u, self.mid_v = u[self.mid], v[self.mid]
        self.displacement = shift.in_plane(self.mid_u, self.mid_v)
        self.shift = shift


def render_anatomy(head: HeadAnatomy, frame: HeadFrame, shift: MidlineShift,
                   subslices: int = 3) -> AnatomyImage:
    """Paint the noise-free head on ``frame``'s grid, midline structures displaced by ``shift``.

    Tissue classes and depth are those at the centre of each slice; HU are the mean over
    ``subslices`` planes through the slice's thickness, which is the partial-volume effect of
    thick slices (the skull cut obliquely at the vertex and skull base looks soft, as on CT).
    """
    shape = frame.grid.shape
    tissue = np.zeros(shape, np.uint8)
    depth = np.full(shape, -100.0, np.float32)
    reach = head.scalp_mm + 12.0
    box = frame.box((-head.half_width * 1.1 - reach, -head.half_length * 1.1 - reach,
                     -head.half_depth * 1.1 - reach),
                    (head.half_width * 1.1 + reach, head.half_length * 1.1 + reach,
                     head.half_height * 1.1 + reach))
    hu = np.full(shape, head.hu[Tissue.AIR], np.float32)
    if box is None:
        return AnatomyImage(tissue=tissue, hu=hu, depth=depth)
    plane = _Plane(head, frame, box, shift)
    thickness = frame.grid.spacing[0]
    offsets = [thickness * ((i + 0.5) / subslices - 0.5) for i in range(subslices)]
    for k in range(box[0].start, box[0].stop):
        w = float(frame.w[k])
        tissue_2d, depth_2d, _ = _render_slice(head, plane, w)
        tissue[k, box[1], box[2]] = tissue_2d
        depth[k, box[1], box[2]] = depth_2d
        slab = sum(_render_slice(head, plane, w + offset)[2] for offset in offsets)
        hu[k, box[1], box[2]] = slab / np.float32(subslices)
    return AnatomyImage(tissue=tissue, hu=hu, depth=depth)


def _render_slice(head: HeadAnatomy, plane: _Plane, w: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tissue, depth and noise-free HU of the plane at height w (mm) inside the head box."""
    c = head.half_height if w >= 0 else head.half_depth
    rho = np.sqrt(plane.q2 + (w / c) ** 2)
    gradient = np.sqrt(plane.g2 + (w / c**2) ** 2) / np.maximum(rho, 1e-3)
    d = (rho - 1.0) / gradient                              # mm outside the outer skull surface
    inner = -(d + plane.skull)                              # mm inside the inner table
    floor_gap = w - plane.floor
    field = _sulcal_field(head, plane, w)

    tissue = np.where(d <= head.scalp_mm, Tissue.SOFT_TISSUE, Tissue.AIR).astype(np.uint8)
    tissue[d <= 0] = Tissue.BONE
    tissue[(d < -head.table_mm) & (inner < -head.table_mm)] = Tissue.DIPLOE
    inside = inner >= 0
    cavity = inside & (floor_gap > 0)
    tissue[inside & ~cavity & (floor_gap > -8.0)] = Tissue.BONE
    tissue[inside & (floor_gap <= -8.0)] = Tissue.SOFT_TISSUE
    _paint_sinuses(tissue, plane, w, field)

    depth = np.where(cavity, np.minimum(inner, floor_gap), -1.0).astype(np.float32)
    _paint_brain(tissue, head, plane, w, cavity, depth - head.csf_rim_mm, field)
    _paint_midline(tissue, head, plane, w, cavity)
    hu = np.asarray(head.hu, np.float32)[tissue]
    diploe = tissue == Tissue.DIPLOE
    hu[diploe] += 70.0 * field[diploe]
    return tissue, depth, hu


def _sulcal_field(head: HeadAnatomy, plane: _Plane, w: float) -> np.ndarray:
    """A smooth random field of the direction from the head origin (unit variance).

    It is a sum of plane waves evaluated on a sphere of radius _SULCUS_RADIUS and carried
    radially, so its zero set (the sulci) runs perpendicular to the brain surface.
    """
    inverse_radius = 1.0 / np.sqrt(plane.uv2 + w * w + 1e-6)
    field = np.zeros_like(inverse_radius)
    for phase, (_, _, kw, offset) in zip(plane.wave_phase, head.sulcus_waves, strict=True):
        field += np.cos((phase + _SULCUS_RADIUS * kw * w) * inverse_radius + offset)
    return field * np.float32(np.sqrt(2.0 / len(plane.wave_phase)))


def _paint_sinuses(tissue: np.ndarray, plane: _Plane, w: float, field: np.ndarray) -> None:
    """Air in the frontal sinus (in the frontal bone), ethmoid/sphenoid and mastoid cells."""
    u, v = plane.u, plane.v
    frontal = _ellipse(u, v, w, (0.0, -82.0, -18.0), (16.0, 8.0, 12.0))
    if frontal is not None:
        tissue[frontal & (tissue == Tissue.DIPLOE)] = Tissue.SINUS_AIR
    ethmoid = _ellipse(u, v, w, (0.0, -55.0, -52.0), (13.0, 20.0, 12.0))
    if ethmoid is not None:
        tissue[ethmoid & (tissue == Tissue.SOFT_TISSUE) & (field > -0.4)] = Tissue.SINUS_AIR
    for side in (-1.0, 1.0):
        mastoid = _ellipse(u, v, w, (side * 50.0, 22.0, -50.0), (9.0, 10.0, 9.0))
        if mastoid is not None:
            cells = mastoid & (np.abs(field) > 0.35) & (tissue != Tissue.AIR)
            tissue[cells] = Tissue.SINUS_AIR


def _paint_brain(tissue: np.ndarray, head: HeadAnatomy, plane: _Plane, w: float,
                 cavity: np.ndarray, brain_depth: np.ndarray, field: np.ndarray) -> None:
    """CSF rim, cortex and white matter by depth; sulci, fissures, cistern and tentorium."""
    magnitude = np.abs(field)
    grey = (brain_depth < head.cortex_mm) | (
        (magnitude < head.sulcal_width + 0.5)
        & (brain_depth < head.sulcal_depth_mm + head.cortex_mm))
    csf = (brain_depth < 0) | ((magnitude < head.sulcal_width)
                               & (brain_depth < head.sulcal_depth_mm))
    if -28.0 < w < 2.0:  # Sylvian fissures, rising towards posterior
        fissure = np.abs(plane.sylvian_v + 0.3 * w) - plane.sylvian_opening < head.fissure_mm
        csf |= fissure & (np.abs(plane.u) > 22.0)
    cistern = _ellipse(plane.u, plane.v, w, (0.0, -4.0, -26.0), (17.0, 12.0, 5.0))
    if cistern is not None:
        csf |= cistern
    tissue[cavity] = Tissue.WHITE_MATTER
    tissue[cavity & grey] = Tissue.GREY_MATTER
    tissue[cavity & csf] = Tissue.CSF
    tent = (np.abs(w - plane.tentorium) < 1.0) & (plane.v > 10.0) & (
        (np.abs(plane.u) > 12.0) | (plane.v > 35.0))
    tissue[cavity & tent] = Tissue.DURA


def _paint_midline(tissue: np.ndarray, head: HeadAnatomy, plane: _Plane, w: float,
                   cavity: np.ndarray) -> None:
    """Falx, deep grey nuclei, ventricles and calcifications at displaced coordinates."""
    u = plane.mid_u - plane.displacement * plane.shift.vertical(w)
    v = plane.mid_v
    view, inside = tissue[plane.mid], cavity[plane.mid]

    def paint(mask: np.ndarray | None, value: Tissue) -> None:
        if mask is not None:
            view[mask & inside] = value

    falx_bottom = np.where(np.abs(v) < 40.0, 22.0 - 0.012 * v * v, -1e3)
    above = w > falx_bottom
    paint(above & (np.abs(u) < head.fissure_mm), Tissue.CSF)
    paint(above & (np.abs(u) < 0.6), Tissue.DURA)

    scale = head.ventricle_scale
    for side in (1.0, -1.0):
        for (cu, cv, cw), axes in _DEEP_GREY_PARTS:
            paint(_ellipse(u, v, w, (side * (_SEPTUM_HALF_MM + cu * scale), cv, cw), axes),
                  Tissue.DEEP_GREY)
    for side, ventricle in ((1.0, Tissue.VENTRICLE_LEFT), (-1.0, Tissue.VENTRICLE_RIGHT)):
        size = scale * (1.0 + side * head.ventricle_asymmetry)
        for (cu, cv, cw), (au, av, aw) in _VENTRICLE_PARTS:
            center = (side * (_SEPTUM_HALF_MM + cu * size), cv, cw)
            paint(_ellipse(u, v, w, center, (au * size, av, aw * size)), ventricle)
        if head.calcified_choroid:
            center = (side * (_SEPTUM_HALF_MM + 15.0 * size), 25.0, 7.0)
            paint(_ellipse(u, v, w, center, (2.5, 3.0, 2.5)), Tissue.CALCIFICATION)
    paint(_ellipse(u, v, w, (0.0, 2.0, -8.0), (1.5 * scale, 13.0, 9.0)), Tissue.VENTRICLE_MIDLINE)
    paint(_ellipse(u, v, w, (0.0, 36.0, -42.0), (5.0, 3.5, 6.0)), Tissue.VENTRICLE_MIDLINE)
    if head.calcified_pineal:
        paint(_ellipse(u, v, w, (0.0, 20.0, -4.0), (2.5, 2.5, 2.5)), Tissue.CALCIFICATION)
