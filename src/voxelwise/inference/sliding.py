"""Sliding-window inference with Gaussian blending, and flip test-time augmentation.

The windows and their blending are MONAI's (`monai.inferers.sliding_window_inference` with
``mode="gaussian"``, the nnU-Net weighting that trusts a window's centre more than its edges);
a 2-D network runs on the slices along axis 0, given to MONAI as one batch. Test-time
augmentation mirrors the input along every combination of the chosen axes, predicts, mirrors the
prediction back and averages the softmax probabilities.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class WindowSettings:
    """How windows are laid over the image: patch size (voxels) and how they overlap."""

    patch_size: tuple[int, ...]
    """2 values for a 2-D network (rows, columns of one slice) or 3 for a 3-D one."""
    overlap: float = 0.5
    batch_size: int = 2
    sigma_scale: float = 0.125
    mirror_axes: tuple[int, ...] | None = None
    """Spatial axes (0-based, of the 3-D image) mirrored by test-time augmentation; ``None``:
    every axis the network sees (the in-plane axes 1, 2 for a 2-D network)."""

    @property
    def dims(self) -> int:
        return len(self.patch_size)


def mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of ``axes``, the empty one (no flip) first: 2**len(axes) flips."""
    return [combo for size in range(len(axes) + 1)
            for combo in itertools.combinations(sorted(axes), size)]


def _logits(model: torch.nn.Module, image: torch.Tensor, settings: WindowSettings
            ) -> torch.Tensor:
    """Blended logits (1, classes, *shape); a 2-D network sees the slices as one batch."""
    from monai.inferers import sliding_window_inference

    if settings.dims not in (2, 3):
        raise ValueError(f"patch size must have 2 or 3 values; got {settings.patch_size}")
    # slices as a batch of 2-D images: MONAI batches windows across slices (faster than
    # SliceInferer's one slice at a time, same result)
    inputs = image[0].permute(1, 0, 2, 3) if settings.dims == 2 else image
    logits = sliding_window_inference(
        inputs, list(settings.patch_size), settings.batch_size, model,
        overlap=settings.overlap, mode="gaussian", sigma_scale=settings.sigma_scale)
    return logits.permute(1, 0, 2, 3)[None] if settings.dims == 2 else logits


def sliding_window_probabilities(model: torch.nn.Module, image: torch.Tensor,
                                 settings: WindowSettings, *, tta: bool = False) -> torch.Tensor:
    """Softmax probabilities (1, classes, *shape) of ``model`` over a (1, channels, *shape) image.

    With ``tta`` the average over all mirror combinations of ``settings.mirror_axes``.
    """
    import torch

    if image.ndim != 5 or image.shape[0] != 1:
        raise ValueError(f"expected a (1, channels, d0, d1, d2) tensor; got {tuple(image.shape)}")
    axes = settings.mirror_axes
    if axes is None:
        axes = (0, 1, 2) if settings.dims == 3 else (1, 2)
    flips = mirror_combinations(axes) if tta else [()]
    total = None
    with torch.no_grad():
        for flip in flips:
            dims = [axis + 2 for axis in flip]
            inputs = torch.flip(image, dims) if dims else image
            logits = _logits(model, inputs, settings)
            probabilities = torch.softmax(logits.float(), dim=1)
            if dims:
                probabilities = torch.flip(probabilities, dims)
            total = probabilities if total is None else total.add_(probabilities)
    return total.div_(len(flips))
