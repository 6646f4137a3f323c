"""Patch sampling with foreground oversampling, and batched augmentation on the training device.

`PatchSampler` is what the training loop iterates: each pass yields ``iterations`` batches of
(images (B, C, *patch), labels (B, 1, *patch) int64). A third of every batch (nnU-Net's
``oversample_foreground_percent``) is centred near a voxel of a foreground class present in the
case; the rest is anywhere. Augmentation (`Augment`): mirroring, in-plane rotation and scaling
(one `grid_sample` per batch on the training device, images linear, labels nearest), brightness
and contrast shifts and Gaussian noise.

Why not MONAI's per-sample dictionary transforms: they run one sample at a time on the CPU, and
on 2 cores the augmentation became the bottleneck; one batched affine resampling on the device
keeps training at least as fast as a plain MONAI loop (``benchmarks/train.py``).

Randomness comes from NumPy's and torch's global generators, which the training loop seeds per
epoch, so a resumed run draws the same patches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional

from voxelwise.data.preprocess import PreprocessedCase


@dataclass
class Augment:
    """Augmentation settings; each probability is per sample."""

    mirror: bool = True
    mirror_axes: tuple[int, ...] = (-2, -1)   # in-plane axes of a patch (rows, columns)
    rotate_deg: float = 15.0                 # in-plane rotation, uniform in +-rotate_deg
    scale: tuple[float, float] = (0.85, 1.2)
    spatial_probability: float = 0.3
    brightness: float = 0.1                  # additive, in normalised units
    contrast: float = 0.15                   # multiplicative: 1 +- contrast
    intensity_probability: float = 0.3
    noise_std: float = 0.1
    noise_probability: float = 0.15

    @property
    def spatial(self) -> bool:
        return self.spatial_probability > 0 and (self.rotate_deg > 0 or self.scale != (1, 1))


def _crop(array: np.ndarray, start: Sequence[int], size: Sequence[int],
          fill: float | np.ndarray) -> np.ndarray:
    """``array[..., start:start+size]`` over the last len(size) axes, padded with ``fill``."""
    spatial = array.shape[-len(size):]
    lead = array.shape[:-len(size)]
    out = np.empty((*lead, *size), dtype=array.dtype)
    out[...] = fill if np.ndim(fill) == 0 else np.reshape(fill, (*lead, *([1] * len(size))))
    source, target = [], []
    for s, n, total in zip(start, size, spatial, strict=True):
        lo, hi = max(s, 0), min(s + n, total)
        if hi <= lo:
            return out
        source.append(slice(lo, hi))
        target.append(slice(lo - s, hi - s))
    out[(..., *target)] = array[(..., *source)]
    return out


class PatchSampler:
    """Random training batches from preprocessed cases (2D slices or 3D patches)."""

    def __init__(self, cases: Sequence[PreprocessedCase], patch_size: Sequence[int],
                 batch_size: int, iterations: int, *, foreground_fraction: float = 1 / 3,
                 augment: Augment | None = None, device: str | torch.device = "cpu") -> None:
        if not cases:
            raise ValueError("PatchSampler needs at least one case")
        self.cases = list(cases)
        self.patch = [int(p) for p in patch_size]
        self.dims = len(self.patch)
        self.batch_size, self.iterations = int(batch_size), int(iterations)
        self.foreground = int(round(self.batch_size * foreground_fraction))
        if foreground_fraction > 0:
            self.foreground = max(1, self.foreground)
        self.augment = augment
        self.device = torch.device(device)
        margin = [0] * self.dims
        if augment is not None and augment.spatial:
            for axis in (-2, -1):  # in-plane: room to rotate and zoom out without padding
                margin[axis] = 2 * int(math.ceil(self.patch[axis] * 0.2))
        self.crop = [p + m for p, m in zip(self.patch, margin, strict=True)]
        self.fill = [case.image.reshape(case.image.shape[0], -1).min(axis=1) for case in cases]

    def __len__(self) -> int:
        return self.iterations

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng(int(np.random.randint(0, 2**31 - 1)))
        for _ in range(self.iterations):
            yield self.batch(rng)

    def _start(self, rng: np.random.Generator, case: PreprocessedCase,
               forced: bool) -> list[int]:
        shape = case.label.shape
        classes = [k for k, v in case.foreground.items() if len(v)]
        if forced and classes:
            where = case.foreground[classes[rng.integers(len(classes))]]
            centre = where[rng.integers(len(where))]
        else:
            centre = [rng.integers(0, s) for s in shape]
        size = ([1] + self.crop) if self.dims == 2 else self.crop
        patch = ([1] + self.patch) if self.dims == 2 else self.patch
        # the chosen voxel lands inside the final patch, the centre of the (larger) crop that
        # leaves room to rotate and zoom: anywhere in the crop, it fell outside half the time
        start = [int(c) - (n - p) // 2 - int(rng.integers(0, p))
                 for c, n, p in zip(centre, size, patch, strict=True)]
        if not (forced and classes):  # a random patch: keep it inside the image where it fits
            start = [int(np.clip(s, min(0, d - n), max(0, d - n)))
                     for s, n, d in zip(start, size, shape, strict=True)]
        if self.dims == 2:
            start[0] = int(centre[0])
        return start

    def sample(self, rng: np.random.Generator, forced: bool) -> tuple[np.ndarray, np.ndarray]:
        index = int(rng.integers(len(self.cases)))
        case = self.cases[index]
        start = self._start(rng, case, forced)
        size = ([1] + self.crop) if self.dims == 2 else self.crop
        image = _crop(case.image, start, size, self.fill[index])
        label = _crop(case.label, start, size, 0)
        if self.dims == 2:
            image, label = image[:, 0], label[0]
        return image, label

    def batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        forced = [i >= self.batch_size - self.foreground for i in range(self.batch_size)]
        pairs = [self.sample(rng, f) for f in forced]
        images = torch.from_numpy(np.stack([p[0] for p in pairs])).to(self.device)
        labels = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None].astype(np.int64))
        labels = labels.to(self.device)
        if self.augment is not None:
            images, labels = augment_batch(images, labels, self.patch, self.augment, rng)
        elif self.crop != self.patch:
            images, labels = _centre(images, self.patch), _centre(labels, self.patch)
        return images.contiguous(), labels.contiguous()


def _centre(tensor: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    slices = [slice((n - s) // 2, (n - s) // 2 + s)
              for n, s in zip(tensor.shape[2:], size, strict=True)]
    return tensor[(slice(None), slice(None), *slices)]


def _affine(crop: Sequence[int], patch: Sequence[int], angle: float, zoom: float) -> np.ndarray:
    """theta for `affine_grid`: output patch -> input crop, rotated/zoomed in the last 2 axes."""
    dims = len(patch)
    matrix = np.eye(dims) / zoom
    c, s = math.cos(angle), math.sin(angle)
    matrix[-2:, -2:] = np.array([[c, -s], [s, c]]) / zoom
    theta = np.diag(2.0 / np.asarray(crop, float)) @ matrix @ np.diag(np.asarray(patch) / 2.0)
    theta = theta[::-1, ::-1]          # affine_grid orders coordinates x (last axis) first
    return np.concatenate([theta, np.zeros((dims, 1))], axis=1)


def augment_batch(images: torch.Tensor, labels: torch.Tensor, patch: Sequence[int],
                  config: Augment, rng: np.random.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial (from crops to patches), mirroring and intensity augmentation of one batch."""
    batch, crop = images.shape[0], list(images.shape[2:])
    thetas = []
    for _ in range(batch):
        spatial = rng.random() < config.spatial_probability
        angle = math.radians(rng.uniform(-config.rotate_deg, config.rotate_deg)) if spatial else 0
        zoom = rng.uniform(*config.scale) if spatial else 1.0
        thetas.append(_affine(crop, patch, angle, zoom))
    if crop != list(patch) or any(not np.allclose(t, thetas[0]) for t in thetas):
        theta = torch.as_tensor(np.stack(thetas), dtype=images.dtype, device=images.device)
        grid = functional.affine_grid(theta, [batch, 1, *patch], align_corners=False)
        images = functional.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                                        align_corners=False)
        labels = functional.grid_sample(labels.float(), grid, mode="nearest",
                                        padding_mode="zeros", align_corners=False).long()
    if config.mirror:
        for axis in config.mirror_axes:
            flip = torch.as_tensor(rng.random(batch) < 0.5, device=images.device)
            shape = (batch,) + (1,) * (images.ndim - 1)
            images = torch.where(flip.view(shape), images.flip(axis), images)
            labels = torch.where(flip.view(shape), labels.flip(axis), labels)
    return _intensity(images, config, rng), labels


def _intensity(images: torch.Tensor, config: Augment, rng: np.random.Generator) -> torch.Tensor:
    batch = images.shape[0]
    shape = (batch,) + (1,) * (images.ndim - 1)
    apply = rng.random(batch) < config.intensity_probability
    gain = np.where(apply, 1 + rng.uniform(-config.contrast, config.contrast, batch), 1.0)
    shift = np.where(apply, rng.uniform(-config.brightness, config.brightness, batch), 0.0)
    noisy = rng.random(batch) < config.noise_probability
    sigma = np.where(noisy, rng.uniform(0, config.noise_std, batch), 0.0)
    as_tensor = lambda a: torch.as_tensor(a, dtype=images.dtype, device=images.device)  # noqa: E731
    images = images * as_tensor(gain).view(shape) + as_tensor(shift).view(shape)
    if noisy.any():
        images = images + torch.randn_like(images) * as_tensor(sigma).view(shape)
    return images
