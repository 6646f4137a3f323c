"""A plain VGG-style classifier (Simonyan and Zisserman, 2015) with global pooling.

Stages of two 3x3 convolutions (batch norm, ReLU), the first stage at the input's full
resolution and each later one after a stride-2 convolution, then global max (or average)
pooling and one linear layer. On the head-CT phantom's slices this small network learned the
blood within a few hundred steps where MONAI's ResNet-18 (7x7 stem, residual blocks), given
the same balanced slices, stayed near chance (benchmarks/README.md, ICH detection): faint,
small findings need full-resolution 3x3 features, which a strided stem discards.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from voxelwise.models.registry import global_pool


def _block(spatial_dims: int, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
    norm = nn.BatchNorm3d if spatial_dims == 3 else nn.BatchNorm2d
    return nn.Sequential(
        conv(in_channels, out_channels, 3, stride, 1, bias=False), norm(out_channels),
        nn.ReLU(inplace=True),
        conv(out_channels, out_channels, 3, 1, 1, bias=False), norm(out_channels),
        nn.ReLU(inplace=True))


class VGGClassifier(nn.Module):
    """(N, C, *spatial) -> (N, out_channels) logits; ``widths`` per stage, stride 2 after the
    first; ``pooling`` "max" (a small finding decides) or "avg"."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 widths: Sequence[int] = (16, 32, 64, 128), pooling: str = "max",
                 dropout: float = 0.0) -> None:
        super().__init__()
        if not widths:
            raise ValueError("widths must name at least one stage")
        channels = [in_channels, *widths]
        self.stages = nn.ModuleList(
            _block(spatial_dims, channels[i], channels[i + 1], 1 if i == 0 else 2)
            for i in range(len(widths)))
        self.pool = global_pool(spatial_dims, pooling)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels[-1], out_channels)

    @property
    def last_stage(self) -> str:
        """Name of the last convolutional stage (Grad-CAM's layer)."""
        return f"stages.{len(self.stages) - 1}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))
