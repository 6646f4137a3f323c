"""Choose a run's post-processing on its validation cases (nnU-Net's determine_postprocessing).

After training, each fold's best model segments its own validation cases exactly as
`voxelwise infer` would (probabilities on the plan's grid, resampled onto the case's native grid,
argmax). Per class, the minimum component volume that gives the highest mean Dice over those
cases (`voxelwise.inference.postprocess.choose_min_volumes`) is written with the Dice of every
candidate to ``RUN/postprocessing.json``; `voxelwise infer` then removes smaller components of
that class unless ``--min-volume-ml`` says otherwise. The test split is never looked at.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxelwise.data.datasets import SegmentationDataset, load_case
from voxelwise.data.plan import Plan
from voxelwise.data.splits import Splits
from voxelwise.inference.postprocess import (
    MIN_VOLUME_CANDIDATES_ML,
    choose_min_volumes,
    labels_on_grid,
    save_postprocessing,
)


def _validation_predictions(run_dir: Path, dataset: SegmentationDataset, splits: Splits,
                            folds: Sequence[int], device: str
                            ) -> Iterator[tuple[np.ndarray, np.ndarray, tuple[float, ...]]]:
    """(predicted labels, true labels, spacing) of every validation case, one at a time."""
    from voxelwise.inference.ensemble import load_ensemble
    from voxelwise.inference.predict import InferenceConfig, predict_probabilities

    for fold in folds:
        ensemble = load_ensemble(run_dir, [fold], device=device)
        for case_id in splits.folds[fold]["validation"]:
            loaded = load_case(dataset, dataset.case(case_id))
            assert loaded.label is not None  # training cases always carry a label map
            probabilities, grid = predict_probabilities(ensemble, loaded.images,
                                                        InferenceConfig())
            labels = labels_on_grid(probabilities, grid, loaded.label)
            yield labels, loaded.label.array, loaded.label.spacing


def determine_postprocessing(run_dir: str | Path, dataset: SegmentationDataset, plan: Plan,
                             splits: Splits, folds: Sequence[int], *, device: str = "auto",
                             candidates: Sequence[float] = MIN_VOLUME_CANDIDATES_ML
                             ) -> dict[str, Any] | None:
    """Choose and write ``RUN/postprocessing.json``; None (nothing written) without
    validation cases."""
    run_dir = Path(run_dir)
    folds = [f for f in folds if splits.folds[f]["validation"]]
    if not folds:
        return None
    count = sum(len(splits.folds[f]["validation"]) for f in folds)
    print(f"post-processing: segmenting {count} validation cases of fold(s) "
          f"{', '.join(map(str, folds))} to choose the minimum lesion volumes", flush=True)
    classes = {int(k): str(v) for k, v in plan.classes.items()}
    choice = choose_min_volumes(_validation_predictions(run_dir, dataset, splits, folds, device),
                                classes, candidates)
    choice["folds"] = list(folds)
    path = save_postprocessing(run_dir, choice)
    kept = ", ".join(f"{name} {ml:g} mL (validation Dice {choice['mean_dice'][name][ml]:.3f})"
                     for name, ml in choice["min_volume_ml"].items())
    print(f"post-processing: remove components below {kept} -> {path}", flush=True)
    return choice
