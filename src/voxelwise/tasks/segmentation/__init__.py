"""Segmentation: datasets -> plan -> preprocessing -> training (`train_segmentation`).

Evaluation (``evaluate``) and inference (``voxelwise.inference``) read the run folder that
training writes: ``plan.json``, ``splits.json``, ``fold_K/checkpoint_best.pt``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SegmentationConfig", "load_segmentation_config", "train_segmentation"]


def __getattr__(name: str) -> Any:  # the training module imports torch: load it on first use
    if name in __all__:
        from voxelwise.tasks.segmentation import train

        return getattr(train, name)
    raise AttributeError(name)
