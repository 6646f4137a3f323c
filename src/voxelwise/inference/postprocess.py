"""From probabilities on the network's grid to a clean label map on the image's own grid.

* `labels_on_grid`: each class's probability map is resampled (linear) from the grid the network
  saw onto the native grid, then the most probable class is taken voxel by voxel, as nnU-Net does;
  resampling probabilities rather than labels keeps boundaries smooth when the native grid is
  finer.
* `remove_small_components`: connected components (cc3d, 26-connected) of each class smaller
  than a volume in mL (one for all classes, or one per class) are set to background.
* `choose_min_volumes`: the per-class minimum volume that maximises the mean Dice over a set of
  predictions with their truth (a fold's validation cases), as nnU-Net chooses its
  post-processing on the cross-validation results rather than by hand. Dice counts an empty
  prediction of an empty truth as 1, as `voxelwise evaluate` does, so the choice weighs the
  false-positive specks on lesion-free scans against the small true lesions they would cost.
  `voxelwise train` stores the choice in ``RUN/postprocessing.json`` (`POSTPROCESSING_FILE`) and
  `voxelwise infer` applies it unless ``--min-volume-ml`` is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxelwise.errors import InputError
from voxelwise.fileio import write_text_atomic
from voxelwise.imaging.resample import resample_to
from voxelwise.imaging.volume import Volume

POSTPROCESSING_FILE = "postprocessing.json"
MIN_VOLUME_CANDIDATES_ML = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
"""The minimum volumes `choose_min_volumes` tries (mL); 0 keeps every component."""


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


def _voxels(min_volume_ml: float, voxel_ml: float) -> int:
    """The fewest voxels a component of ``min_volume_ml`` holds."""
    return int(np.ceil(min_volume_ml / voxel_ml - 1e-9)) if min_volume_ml > 0 else 0


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    import cc3d

    return cc3d.connected_components(mask, connectivity=connectivity, return_N=True)


def remove_small_components(labels: np.ndarray, spacing: Sequence[float],
                            min_volume_ml: float | Mapping[int, float],
                            connectivity: int = 26) -> tuple[np.ndarray, int]:
    """``labels`` with every connected component of a class below its minimum volume removed.

    ``min_volume_ml`` is one volume for every class or a {class value: mL} mapping (a class
    not in it keeps every component). Returns (cleaned labels, number of components removed).
    ``spacing`` is in mm.
    """
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if isinstance(min_volume_ml, Mapping):
        limits = {int(k): _voxels(float(v), voxel_ml) for k, v in min_volume_ml.items()}
    else:
        limits = {k: _voxels(float(min_volume_ml), voxel_ml)
                  for k in range(1, int(labels.max(initial=0)) + 1)}
    limits = {k: v for k, v in limits.items() if k > 0 and v > 0}
    if not limits or not labels.any():
        return labels, 0
    components, count = _components(labels, connectivity)  # cc3d keeps each class apart
    sizes = np.bincount(components.reshape(-1), minlength=count + 1)
    kind = np.zeros(count + 1, dtype=np.int64)
    kind[components.reshape(-1)] = labels.reshape(-1)
    needed = np.zeros(int(kind.max(initial=0)) + 1, dtype=np.int64)
    for value, voxels in limits.items():
        if value < needed.size:
            needed[value] = voxels
    small = np.flatnonzero(sizes < needed[kind])
    small = small[small > 0]
    if not small.size:
        return labels, 0
    cleaned = labels.copy()
    cleaned[np.isin(components, small)] = 0
    return cleaned, int(small.size)


def choose_min_volumes(cases: Iterable[tuple[np.ndarray, np.ndarray, Sequence[float]]],
                       classes: Mapping[int, str],
                       candidates: Sequence[float] = MIN_VOLUME_CANDIDATES_ML,
                       connectivity: int = 26) -> dict[str, Any]:
    """Per class, the candidate minimum volume (mL) with the highest mean Dice over ``cases``.

    ``cases``: (predicted labels, true labels, spacing in mm) on one grid each, read once (a
    generator keeps one case in memory at a time). A tie goes to
    the smaller volume, so nothing is removed unless removing it helps. Returns
    ``{"min_volume_ml": {name: mL}, "mean_dice": {name: {mL: Dice}}, "cases": n}``.
    """
    candidates = sorted(float(c) for c in candidates)
    totals = {name: np.zeros(len(candidates)) for k, name in classes.items() if int(k)}
    n = 0
    for predicted, truth, spacing in cases:
        n += 1
        if predicted.shape != truth.shape:
            raise ValueError(f"prediction {predicted.shape} and truth {truth.shape} differ")
        voxel_ml = float(np.prod(spacing)) / 1000.0
        for key, name in classes.items():
            if not int(key):
                continue
            mask, true = predicted == int(key), truth == int(key)
            components, count = _components(mask, connectivity)
            sizes = np.bincount(components.reshape(-1), minlength=count + 1)[1:]
            overlaps = np.bincount(components[true], minlength=count + 1)[1:]
            true_voxels = int(true.sum())
            for i, volume in enumerate(candidates):
                kept = sizes >= _voxels(volume, voxel_ml)
                denominator = int(sizes[kept].sum()) + true_voxels
                totals[name][i] += (2.0 * overlaps[kept].sum() / denominator
                                    if denominator else 1.0)
    means = {name: {c: round(float(t / n), 4) if n else float("nan")
                    for c, t in zip(candidates, total, strict=True)}
             for name, total in totals.items()}
    chosen = {name: candidates[int(np.argmax(total))] if n else 0.0
              for name, total in totals.items()}  # argmax: the first (smallest) of equals
    return {"min_volume_ml": chosen, "mean_dice": means, "cases": n}


def save_postprocessing(run_dir: str | Path, choice: Mapping[str, Any]) -> Path:
    """Write ``RUN/postprocessing.json`` (atomically)."""
    path = Path(run_dir) / POSTPROCESSING_FILE
    write_text_atomic(path, json.dumps(choice, indent=1, default=str))
    return path


def load_min_volumes(run_dir: str | Path, classes: Mapping[int, str]) -> dict[int, float]:
    """{class value: mL} from ``RUN/postprocessing.json``; {} when the run has none."""
    path = Path(run_dir) / POSTPROCESSING_FILE
    if not path.is_file():
        return {}
    try:
        chosen = json.loads(path.read_text())["min_volume_ml"]
        by_name = {name: int(k) for k, name in classes.items()}
        unknown = sorted(set(chosen) - set(by_name))
        if unknown:
            raise InputError(path, f"names classes the plan does not have: {unknown}")
        return {by_name[name]: float(ml) for name, ml in chosen.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(path, f"is not a post-processing choice ({error})") from error
