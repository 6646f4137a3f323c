"""Figures for reports: windowed slices with label outlines, in radiological display convention."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from voxelwise.imaging.volume import Volume
from voxelwise.imaging.windows import window

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABEL_COLOURS: Mapping[int, str] = {1: "#ff3030", 2: "#30c0ff", 3: "#ffd030", 4: "#60ff60"}


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def largest_label_slice(labels: Volume, label: int | None = None) -> int:
    """Index along axis 0 of the slice holding most voxels of ``label`` (any label if None)."""
    mask = labels.array > 0 if label is None else labels.array == label
    counts = mask.reshape(mask.shape[0], -1).sum(axis=1)
    return int(np.argmax(counts)) if counts.any() else mask.shape[0] // 2


def slice_overlay(image: Volume, labels: Volume | None, slice_index: int,
                  window_name: str = "brain", title: str = "",
                  label_names: Mapping[int, str] | None = None) -> Figure:
    """One axial slice of ``image`` in a named HU window with each label outlined in colour.

    Axis 1 of a canonical volume runs anterior to posterior (top to bottom) and axis 2 runs to the
    patient's left (left to right on screen), which is the radiological convention.
    """
    plt = _matplotlib()
    figure, axes = plt.subplots(figsize=(3.6, 3.8))
    pixels = window(image.array[slice_index], window_name)
    aspect = image.spacing[1] / image.spacing[2]
    axes.imshow(pixels, cmap="gray", vmin=0, vmax=1, aspect=aspect, interpolation="nearest")
    if labels is not None:
        label_slice = labels.array[slice_index]
        for value in np.unique(label_slice[label_slice > 0])[::-1]:  # lowest label on top
            colour = LABEL_COLOURS.get(int(value), "#ffffff")
            axes.contour(label_slice == value, levels=[0.5], colors=[colour], linewidths=0.9)
        if label_names:
            handles = [plt.Line2D([], [], color=LABEL_COLOURS.get(k, "#fff"), label=name)
                       for k, name in label_names.items()]
            axes.legend(handles=handles, loc="lower right", fontsize=6, framealpha=0.5)
    axes.set_title(title, fontsize=8)
    axes.set_axis_off()
    return figure
