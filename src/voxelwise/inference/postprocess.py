"""From probabilities on the network's grid to a clean label map on the image's own grid.

* `labels_on_grid`: each class's probability map is resampled (linear) from the grid the network
  saw onto the native grid, then the most probable class is taken voxel by voxel, as nnU-Net does;
  resampling probabilities rather than labels keeps boundaries smooth when the native grid is
  finer.
* `remove_small_components`: connected components (cc3d, 26-connected) of each class smaller
  than a volume in mL are set to background.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from voxelwise.imaging.resample import resample_to
from voxelwise.imaging.volume import Volume


def _label_dtype(classes: int) -> np.dtype:
    return np.dtype(np.uint8 if classes <= 256 else np.uint16)


def labels_on_grid(probabilities: np.ndarray, grid: Volume, target: Volume) -> np.ndarray:
    """Argmax labels on ``target``'s grid of (classes, *grid.shape) ``probabilities``.

    Outside the network's grid the background (class 0) wins.
    """
    classes = probabilities.shape[0]
    if probabilities.shape[1:] != grid.shape:
        raise ValueError(f"probabilities {probabilities.shape[1:]} are not on grid {grid.shape}")
    if grid.same_grid(target):
        return np.argmax(probabilities, axis=0).astype(_label_dtype(classes))
    # linear interpolation keeps the probabilities summing to one, so the background is one
    # minus the resampled foreground classes: K - 1 resamplings instead of K
    best = np.full(target.shape, -1.0, dtype=np.float32)
    foreground = np.zeros(target.shape, dtype=np.float32)
    labels = np.zeros(target.shape, dtype=_label_dtype(classes))
    for k in range(1, classes):  # one class at a time: a few native-size maps, not K
        channel = grid.with_array(np.ascontiguousarray(probabilities[k], dtype=np.float32))
        resampled = resample_to(channel, target, "linear", fill_value=0.0).array
        foreground += resampled
        better = resampled > best
        best[better] = resampled[better]
        labels[better] = k
    labels[(1.0 - foreground) >= best] = 0
    return labels


def remove_small_components(labels: np.ndarray, spacing: Sequence[float],
                            min_volume_ml: float, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """``labels`` with every connected component of a class below ``min_volume_ml`` removed.

    Returns (cleaned labels, number of components removed). ``spacing`` is in mm.
    """
    import cc3d

    if min_volume_ml <= 0 or not labels.any():
        return labels, 0
    voxel_ml = float(np.prod(spacing)) / 1000.0
    threshold = int(np.ceil(min_volume_ml / voxel_ml - 1e-9))
    components, count = cc3d.connected_components(labels, connectivity=connectivity,
                                                  return_N=True)
    sizes = np.bincount(components.reshape(-1), minlength=count + 1)
    small = np.flatnonzero(sizes < threshold)
    small = small[small > 0]
    if not small.size:
        return labels, 0
    cleaned = labels.copy()
    cleaned[np.isin(components, small)] = 0
    return cleaned, int(small.size)
