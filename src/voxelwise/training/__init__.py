"""The training loop shared by every task (`fit`), its configuration and device helpers."""

from voxelwise.training.loop import (
    TrainingConfig,
    TrainingResult,
    epoch_seed,
    fit,
    recalibrate_batch_norm,
    resolve_device,
    seed_everything,
)

__all__ = ["TrainingConfig", "TrainingResult", "epoch_seed", "fit", "recalibrate_batch_norm",
           "resolve_device", "seed_everything"]
