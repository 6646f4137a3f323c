"""Lesion analysis on a 512 x 512 x 40 label map: voxelwise (cc3d) against scipy.ndimage.label.

    python benchmarks/biomarkers.py

Both sides find 26-connected components of each class and their voxel counts, centroids and
bounding boxes; voxelwise also measures each lesion's Feret diameter and ABC/2.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

from voxelwise.biomarkers import measure_series
from voxelwise.biomarkers.lesions import find_lesions
from voxelwise.imaging import Volume


def label_map(seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    shape = (40, 512, 512)
    array = np.zeros(shape, np.uint8)
    grid = np.ogrid[:40, :512, :512]
    for value, count, radius in ((1, 12, (2, 30, 30)), (2, 12, (3, 45, 45))):
        for _ in range(count):
            centre = [rng.integers(5, 35), rng.integers(60, 450), rng.integers(60, 450)]
            r = [x * rng.uniform(0.5, 1.0) for x in radius]
            inside = sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, r, strict=True)) <= 1
            array[inside & (array == 0)] = value
    return Volume(array, (5.0, 0.45, 0.45))


def scipy_lesions(labels: Volume, value: int) -> list[tuple[int, np.ndarray, tuple]]:
    mask = labels.array == value
    components, count = ndimage.label(mask, np.ones((3, 3, 3), bool))
    index = np.arange(1, count + 1)
    sizes = ndimage.sum_labels(mask, components, index)
    centroids = ndimage.center_of_mass(mask, components, index)
    boxes = ndimage.find_objects(components)
    return list(zip(sizes.astype(int), centroids, boxes, strict=True))


def best_of(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    labels = label_map()
    ours = best_of(lambda: [find_lesions(labels, v, 0.01) for v in (1, 2)])
    ours_components = best_of(lambda: [__import__("cc3d").statistics(
        __import__("cc3d").connected_components(labels.array == v, connectivity=26))
        for v in (1, 2)])
    theirs = best_of(lambda: [scipy_lesions(labels, v) for v in (1, 2)])
    labels.meta["geometry_confirmed"] = True
    series = best_of(lambda: measure_series(labels))
    print(f"label map {labels.shape}, {int((labels.array > 0).sum())} labelled voxels")
    print(f"voxelwise find_lesions (cc3d + diameters + ABC/2): {ours:.3f} s")
    print(f"cc3d components + statistics only:               {ours_components:.3f} s")
    print(f"scipy.ndimage label + sizes + centroids + boxes:  {theirs:.3f} s")
    print(f"measure_series (both classes, every biomarker but the midline): {series:.3f} s")
    print(f"ratio scipy / voxelwise (components only): {theirs / ours_components:.1f}x; "
          f"full lesion analysis vs scipy components: {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
