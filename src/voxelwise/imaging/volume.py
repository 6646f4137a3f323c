"""`Volume`: the one image type of voxelwise.

A `Volume` is a 3-D array together with the geometry that places every voxel in the patient, in
one convention used everywhere in the project:

* **Axis order is the array's own order.** ``spacing[d]`` is the step in millimetres along array
  axis ``d`` and ``direction[:, d]`` is the unit vector of axis ``d`` in patient coordinates. A
  volume read from DICOM has axes (slice, row, column); one converted from SimpleITK has axes
  (z, y, x), which is what ``sitk.GetArrayFromImage`` returns.
* **Patient coordinates are LPS** (x towards the patient's left, y towards posterior, z towards
  head), as in DICOM and ITK. NIfTI's RAS is converted in `voxelwise.imaging.orientation` only.
* ``origin`` is the LPS position in millimetres of the centre of voxel (0, 0, 0).

Operations that change geometry return a new `Volume`; a label map is a `Volume` with integer
data, not a separate type.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # heavy imports only where used
    import SimpleITK as sitk
    import torch


class GeometryError(ValueError):
    """Raised when spacing, origin or direction do not describe a valid voxel grid."""


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D image with its spacing (mm), origin (LPS mm) and direction cosines (LPS).

    The default direction is the canonical axial one: axis 0 towards the head (LPS z), axis 1
    towards posterior (y), axis 2 towards the patient's left (x), which is also what SimpleITK
    assigns to ``GetImageFromArray``'s arrays.

    ``meta`` carries what the image is: ``modality`` ("CT", "MR", "SEG"...), ``units``
    ("HU", "label"...), ``series_instance_uid`` of the source DICOM series and free notes such as
    ``"resampled": "gantry tilt 8.5 deg corrected"``.
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3)[:, ::-1].copy())
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim != 3:
            raise GeometryError(f"a Volume is 3-D; got an array of shape {array.shape}")
        spacing = tuple(float(s) for s in self.spacing)
        origin = tuple(float(o) for o in self.origin)
        direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if len(spacing) != 3 or len(origin) != 3:
            raise GeometryError("spacing and origin need three values each")
        if not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise GeometryError(f"spacing must be positive and finite; got {spacing}")
        if not np.all(np.isfinite(origin)):
            raise GeometryError(f"origin must be finite; got {origin}")
        norms = np.linalg.norm(direction, axis=0)
        if not np.allclose(norms, 1.0, atol=1e-3):
            raise GeometryError(f"direction columns must be unit vectors; norms are {norms}")
        if abs(np.linalg.det(direction)) < 1e-3:
            raise GeometryError("direction cosines are degenerate (axes are not independent)")
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction / norms)
        object.__setattr__(self, "meta", dict(self.meta))

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def affine(self) -> np.ndarray:
        """4 x 4 matrix mapping an array index (a0, a1, a2, 1) to LPS millimetres."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        affine[:3, 3] = self.origin
        return affine

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (1 mL = 1000 mm^3)."""
        return float(np.prod(self.spacing)) / 1000.0

    def index_to_lps(self, index: np.ndarray) -> np.ndarray:
        """LPS millimetres of (N, 3) continuous array indices."""
        index = np.atleast_2d(np.asarray(index, dtype=np.float64))
        return index @ self.affine[:3, :3].T + self.affine[:3, 3]

    def lps_to_index(self, points: np.ndarray) -> np.ndarray:
        """Continuous array indices of (N, 3) LPS points in millimetres."""
        points = np.atleast_2d(np.asarray(points, dtype=np.float64))
        inverse = np.linalg.inv(self.affine)
        return points @ inverse[:3, :3].T + inverse[:3, 3]

    def with_array(self, array: np.ndarray, **meta: Any) -> Volume:
        """A new Volume on the same grid holding ``array`` (for example a label map)."""
        array = np.asarray(array)
        if array.shape != self.shape:
            raise GeometryError(f"array shape {array.shape} does not match grid {self.shape}")
        return replace(self, array=array, meta={**self.meta, **meta})

    def same_grid(self, other: Volume, tolerance_mm: float = 1e-3) -> bool:
        """True when ``other`` has the same shape and places every voxel at the same point."""
        if self.shape != other.shape:
            return False
        corners = np.array(
            [[0, 0, 0], [s - 1 for s in self.shape], [self.shape[0] - 1, 0, 0],
             [0, self.shape[1] - 1, 0], [0, 0, self.shape[2] - 1]], dtype=float
        )
        distance = np.linalg.norm(self.index_to_lps(corners) - other.index_to_lps(corners), axis=1)
        return bool(distance.max() <= tolerance_mm)

    # ------------------------------------------------------------------ conversions
    def to_sitk(self) -> sitk.Image:
        """SimpleITK image with the same geometry (ITK's x, y, z are our axes 2, 1, 0)."""
        import SimpleITK as sitk

        array = self.array.astype(np.uint8) if self.array.dtype == np.bool_ else self.array
        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
        image.SetSpacing(self.spacing[::-1])
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction[:, ::-1].flatten().tolist())
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image, **meta: Any) -> Volume:
        """Volume from a 3-D SimpleITK image; the array is ``GetArrayFromImage``'s (z, y, x)."""
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise GeometryError(f"expected a 3-D image; got {image.GetDimension()}-D")
        direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing=tuple(image.GetSpacing())[::-1],
            origin=tuple(image.GetOrigin()),
            direction=direction[:, ::-1],
            meta=meta,
        )

    def to_torch(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Tensor of shape (1, *shape): a channel axis first, as MONAI and PyTorch expect."""
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(self.array))[None]
        return tensor if dtype is None else tensor.to(dtype)

    def from_torch(self, tensor: torch.Tensor, **meta: Any) -> Volume:
        """A Volume on this grid from a (1, *shape) or (*shape) tensor, e.g. a network output."""
        array = tensor.detach().cpu().numpy()
        if array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        return self.with_array(array, **meta)

    def __repr__(self) -> str:
        spacing = ", ".join(f"{s:.3g}" for s in self.spacing)
        return (
            f"Volume(shape={self.shape}, spacing=({spacing}) mm, dtype={self.array.dtype}, "
            f"modality={self.meta.get('modality')!r})"
        )
