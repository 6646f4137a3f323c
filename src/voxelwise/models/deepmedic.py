"""A DeepMedic-style two-pathway network (Kamnitsas et al., 2017), fully convolutional.

Two pathways of 3x3x3 convolutions see the same patch: the *normal* pathway at full resolution,
the *context* pathway on the patch average-pooled by ``factor`` (3 in the paper), so each of its
voxels sees a three times wider neighbourhood. The context features are upsampled back onto the
full-resolution grid, concatenated with the normal ones and classified by 1x1x1 convolutions
(the paper's fully connected layers). Residual connections join every second layer, as in
DeepMedic v2.

Differences from the original, on purpose: convolutions are padded ("same") so the output has
the input's shape and the same loss, sampler and sliding-window inferer serve every network;
dense inference is simply the network applied to a large input (it is fully convolutional).
``factor`` may be a tuple, e.g. ``(1, 3, 3)`` for thick-slice CT.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional


def _conv(spatial_dims: int, in_channels: int, out_channels: int, kernel: int) -> nn.Module:
    conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
    norm = nn.InstanceNorm3d if spatial_dims == 3 else nn.InstanceNorm2d
    return nn.Sequential(conv(in_channels, out_channels, kernel, padding=kernel // 2),
                         norm(out_channels, affine=True), nn.PReLU(out_channels))


class Pathway(nn.Module):
    """A stack of 3x3x3 convolution blocks, residual every second block where widths match."""

    def __init__(self, spatial_dims: int, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        channels = [in_channels, *widths]
        self.blocks = nn.ModuleList(
            _conv(spatial_dims, channels[i], channels[i + 1], 3) for i in range(len(widths)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = None
        for index, block in enumerate(self.blocks):
            y = block(x)
            if index % 2 == 1 and skip is not None and skip.shape == y.shape:
                y = y + skip
            if index % 2 == 0:
                skip = y
            x = y
        return x


class DeepMedic(nn.Module):
    """Normal + down-sampled context pathway, concatenated, then 1x1x1 classification layers."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 widths: Sequence[int] = (30, 30, 40, 40, 40, 40, 50, 50),
                 context_widths: Sequence[int] | None = None,
                 head_widths: Sequence[int] = (150, 150), factor: int | Sequence[int] = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"deepmedic: spatial_dims must be 2 or 3, not {spatial_dims}")
        factors = (factor,) * spatial_dims if isinstance(factor, int) else tuple(factor)
        if len(factors) != spatial_dims:
            raise ValueError(f"deepmedic: factor {factor} does not have {spatial_dims} entries")
        self.spatial_dims = spatial_dims
        self.factor = factors
        self.normal = Pathway(spatial_dims, in_channels, widths)
        self.context = Pathway(spatial_dims, in_channels, context_widths or widths)
        layers: list[nn.Module] = []
        width = widths[-1] + (context_widths or widths)[-1]
        for head in head_widths:
            layers += [_conv(spatial_dims, width, head, 1)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = head
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        layers.append(conv(width, out_channels, 1))
        self.head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = functional.avg_pool3d if self.spatial_dims == 3 else functional.avg_pool2d
        low = pool(x, self.factor, self.factor, ceil_mode=True, count_include_pad=False)
        context = self.context(low)
        mode = "trilinear" if self.spatial_dims == 3 else "bilinear"
        context = functional.interpolate(context, size=x.shape[2:], mode=mode,
                                         align_corners=False)
        return self.head(torch.cat([self.normal(x), context], dim=1))
