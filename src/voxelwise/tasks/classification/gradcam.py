"""Where the detector looks: Grad-CAM (MONAI's) on the slice that drives a study's score."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from voxelwise.tasks.classification.model import SliceAggregation, gradcam_layer

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def study_heatmap(model: nn.Module, x: np.ndarray, finding: int = 0) -> tuple[int, np.ndarray]:
    """(slice index, (H, W) heatmap in [0, 1]) of one network input ``x`` (C, Z, H, W).

    Per-slice networks: Grad-CAM of the 2-D network on the slice with the highest logit for
    ``finding``; 3-D networks: the 3-D Grad-CAM, shown on its hottest slice.
    """
    from monai.visualize import GradCAM

    network, layer = gradcam_layer(model)
    model.eval()
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    if isinstance(model, SliceAggregation):
        with torch.no_grad():
            index = int(model.slice_logits(tensor)[0, :, finding].argmax())
        cam = GradCAM(nn_module=network, target_layers=layer)
        heat = cam(tensor[:, :, index], class_idx=finding)[0, 0].detach().numpy()
        return index, heat
    cam = GradCAM(nn_module=network, target_layers=layer)
    heat = cam(tensor, class_idx=finding)[0, 0].detach().numpy()
    if heat.ndim == 2:  # a 2-D image
        return 0, heat
    index = int(heat.reshape(heat.shape[0], -1).sum(axis=1).argmax())
    return index, heat[index]


def heatmap_figure(x: np.ndarray, index: int, heat: np.ndarray, title: str,
                   channel: int = 0) -> Figure:
    """The windowed slice (channel 0: brain window) with the heatmap overlaid."""
    from voxelwise.reports.figures import _matplotlib

    plt = _matplotlib()
    figure, axes = plt.subplots(1, 2, figsize=(5.4, 2.9))
    image = x[channel, index] if x.ndim == 4 else x[channel]
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
    axes[1].imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1, interpolation="bilinear")
    figure.suptitle(title, fontsize=8)
    return figure
