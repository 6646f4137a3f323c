"""Inference: sliding windows with Gaussian blending, flip TTA, fold ensembles, clean label maps.

`predict_volume(run_dir, image)` returns a label map on the image's own grid; `infer` also writes
it as NIfTI and DICOM SEG with a manifest. torch and MONAI load when a function runs.
"""

from voxelwise.inference.ensemble import Ensemble, available_folds, load_ensemble, parse_folds
from voxelwise.inference.inputs import InferenceInput, read_input
from voxelwise.inference.postprocess import labels_on_grid, remove_small_components
from voxelwise.inference.predict import (
    InferenceConfig,
    class_volumes_ml,
    infer,
    infer_many,
    predict_probabilities,
    predict_volume,
)
from voxelwise.inference.sliding import (
    WindowSettings,
    mirror_combinations,
    sliding_window_probabilities,
)

__all__ = [
    "Ensemble", "InferenceConfig", "InferenceInput", "WindowSettings", "available_folds",
    "class_volumes_ml", "infer", "infer_many", "labels_on_grid", "load_ensemble",
    "mirror_combinations", "parse_folds", "predict_probabilities", "predict_volume",
    "read_input", "remove_small_components", "sliding_window_probabilities",
]
