"""A dataset's fingerprint: spacings, sizes and foreground intensities, from which a plan follows.

As in nnU-Net, intensities are sampled in the foreground (label > 0) of every case, so the CT
normalisation clips to what the structures of interest look like, not to air and bone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from voxelwise.data.datasets import SegmentationDataset, has_foreground, load_case

SAMPLES_PER_CASE = 10_000


def _canonical(loaded_images: list, label: Any) -> tuple[list, Any]:
    from voxelwise.imaging.resample import reorient

    return [reorient(image) for image in loaded_images], None if label is None else reorient(label)


def _intensity_summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"n": 0}
    percentiles = np.percentile(values, [0.5, 50, 99.5])
    return {"n": int(values.size), "mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "max": float(values.max()),
            "p00_5": float(percentiles[0]), "median": float(percentiles[1]),
            "p99_5": float(percentiles[2])}


def compute_fingerprint(dataset: SegmentationDataset, *, seed: int = 0,
                        progress: bool = True) -> dict[str, Any]:
    """Read (and check) every case; return spacings, shapes, class counts and intensities."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    spacings, shapes, positives = [], [], []
    samples: list[list[np.ndarray]] = [[] for _ in dataset.channels]
    whole: list[list[np.ndarray]] = [[] for _ in dataset.channels]
    zero_fraction: list[list[float]] = [[] for _ in dataset.channels]
    class_voxels = {int(k): 0 for k in dataset.classes}
    for case in tqdm(dataset.cases, desc="fingerprint", disable=None if progress else True,
                     leave=False):
        loaded = load_case(dataset, case)
        images, label = _canonical(loaded.images, loaded.label)
        spacings.append(list(images[0].spacing))
        shapes.append(list(images[0].shape))
        mask = None if label is None else label.array > 0
        if has_foreground(loaded):
            positives.append(case.case_id)
        if label is not None:
            values, counts = np.unique(label.array, return_counts=True)
            for value, count in zip(values.tolist(), counts.tolist(), strict=True):
                class_voxels[int(value)] = class_voxels.get(int(value), 0) + int(count)
        for channel, image in enumerate(images):
            array = image.array
            zero_fraction[channel].append(float(np.mean(array == 0)))
            foreground = mask is not None and bool(mask.any())
            region = array[mask] if foreground else array.ravel()
            take = min(SAMPLES_PER_CASE, region.size)
            drawn = rng.choice(region, take, replace=False).astype(np.float64)
            (samples if foreground else whole)[channel].append(drawn)
    intensity = []
    for channel, name in enumerate(dataset.channels):
        chosen = samples[channel] or whole[channel]  # whole images only when no foreground
        values = np.concatenate(chosen) if chosen else np.zeros(0)
        intensity.append({"channel": name, **_intensity_summary(values),
                          "zero_fraction": float(np.median(zero_fraction[channel]))})
    return {
        "cases": len(dataset.cases), "patients": len({c.patient for c in dataset.cases}),
        "positive_cases": positives, "case_ids": [c.case_id for c in dataset.cases],
        "spacings_mm": spacings, "shapes": shapes,
        "median_spacing_mm": np.median(np.asarray(spacings), axis=0).tolist(),
        "median_shape": np.median(np.asarray(shapes), axis=0).tolist(),
        "class_voxels": {str(k): v for k, v in sorted(class_voxels.items())},
        "foreground_intensity": intensity,
    }
