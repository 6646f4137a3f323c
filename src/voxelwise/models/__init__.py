"""Networks by name (`build_model`) and checkpoints that rebuild them (`load_checkpoint_model`).

torch and MONAI are imported when a network is built, not when this package is imported.
"""

from voxelwise.models.registry import (
    MODEL_NAMES,
    SEGMENTATION_MODELS,
    build_from_spec,
    build_model,
    model_spec,
)

__all__ = ["MODEL_NAMES", "SEGMENTATION_MODELS", "build_from_spec", "build_model",
           "load_checkpoint_model", "model_spec"]


def __getattr__(name: str):  # checkpoint.py imports torch: load it on first use
    if name == "load_checkpoint_model":
        from voxelwise.models.checkpoint import load_checkpoint_model

        return load_checkpoint_model
    raise AttributeError(name)
