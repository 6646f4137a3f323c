"""Segment an image with a trained run: `predict_volume`, and `infer` that writes the files.

The path of one image: preprocess as the plan says (canonical orientation, the plan's spacing,
normalisation) -> sliding windows with Gaussian blending over every fold's model, optionally with
flip test-time augmentation, probabilities averaged -> probabilities resampled back onto the
image's own grid and the most probable class taken -> components below a minimum volume removed.
The label map comes back on exactly the input's grid.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelwise.fileio import write_text_atomic
from voxelwise.imaging.volume import Volume
from voxelwise.inference.ensemble import Ensemble, load_ensemble
from voxelwise.inference.inputs import InferenceInput
from voxelwise.inference.postprocess import labels_on_grid, remove_small_components


@dataclass
class InferenceConfig:
    """How a run's models are applied; every field is a `voxelwise infer` option."""

    folds: tuple[int, ...] | None = None
    """Fold models to average (``None``: every trained fold)."""
    tta: bool = False
    """Flip test-time augmentation: average over mirrored copies (8 in 3-D, 4 in 2-D)."""
    min_volume_ml: float | None = None
    """Connected components of a class smaller than this (mL) are removed; None: the minimum
    volumes per class the run chose on its validation cases (``RUN/postprocessing.json``),
    nothing removed when it has none."""
    overlap: float = 0.5
    batch_size: int | None = None
    """Windows per forward pass (default: the plan's batch size)."""
    device: str = "auto"
    threads: int | None = None
    checkpoint: str = "checkpoint_best.pt"


def _preprocess(image: Volume, plan: Any) -> tuple[np.ndarray, Volume]:
    from voxelwise.data.preprocess import preprocess_image

    return preprocess_image(image, plan)


def predict_probabilities(ensemble: Ensemble, image: Volume, config: InferenceConfig
                          ) -> tuple[np.ndarray, Volume]:
    """(classes, *grid) mean probabilities on the plan's grid, and that grid."""
    import torch

    array, grid = _preprocess(image, ensemble.plan)
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    settings = ensemble.window_settings(config.overlap, config.batch_size)
    probabilities = ensemble.probabilities(tensor, settings, tta=config.tta)
    return probabilities[0].cpu().numpy(), grid


def predict_volume(run_dir: str | Path | Ensemble, image: Volume,
                   config: InferenceConfig | None = None, **options: Any) -> Volume:
    """Label map of ``image`` on the input's own grid (uint8: 0 background, 1, 2...).

    ``run_dir`` is a run folder (``plan.json``, ``fold_K/checkpoint_best.pt``) or an already
    loaded `Ensemble`; ``options`` override fields of ``config`` (e.g. ``tta=True``).
    ``meta["inference"]`` records folds, settings, removed components and timings (s).
    """
    import torch

    config = InferenceConfig(**{**asdict(config or InferenceConfig()), **options})
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _predict_volume(run_dir, image, config)
    finally:
        torch.set_num_threads(threads)  # the caller's setting, for what runs next


def _predict_volume(run_dir: str | Path | Ensemble, image: Volume,
                    config: InferenceConfig) -> Volume:
    started = time.perf_counter()
    ensemble = run_dir if isinstance(run_dir, Ensemble) else load_ensemble(
        run_dir, config.folds, device=config.device, checkpoint=config.checkpoint)
    loaded = time.perf_counter()
    probabilities, grid = predict_probabilities(ensemble, image, config)
    predicted = time.perf_counter()
    labels = labels_on_grid(probabilities, grid, image)
    if config.min_volume_ml is None:
        min_volume: float | dict[int, float] = ensemble.min_volumes_ml
        applied: Any = {ensemble.classes[k]: ml for k, ml in ensemble.min_volumes_ml.items()}
    else:
        min_volume = applied = config.min_volume_ml
    labels, removed = remove_small_components(labels, image.spacing, min_volume)
    finished = time.perf_counter()
    record = {"run": str(ensemble.run_dir), "folds": ensemble.folds,
              "checkpoints": [str(p) for p in ensemble.checkpoints], "tta": config.tta,
              "overlap": config.overlap, "min_volume_ml": applied,
              "components_removed": removed, "network_grid": list(grid.shape),
              "network_spacing_mm": list(grid.spacing), "device": str(ensemble.device),
              "timings_s": {"load": round(loaded - started, 3),
                            "network": round(predicted - loaded, 3),
                            "resample_and_clean": round(finished - predicted, 3)}}
    return image.with_array(labels, modality="SEG", units="label",
                            label_names={str(k): v for k, v in ensemble.classes.items()},
                            inference=record)


def class_volumes_ml(labels: Volume, classes: dict[int, str]) -> dict[str, float]:
    """Volume (mL) of each non-background class of a label map."""
    counts = np.bincount(labels.array.reshape(-1).astype(np.int64),
                         minlength=max(classes, default=0) + 1)
    return {name: round(float(counts[k]) * labels.voxel_volume_ml, 3)
            for k, name in sorted(classes.items()) if k != 0}


def infer(run_dir: str | Path | Ensemble, source: InferenceInput, out_dir: str | Path,
          config: InferenceConfig | None = None, *, seg: bool = True,
          name: str | None = None) -> dict[str, Any]:
    """Segment one input; write ``OUT/<name>.nii.gz``, ``<name>.seg.dcm`` (DICOM inputs, when
    ``seg``) and the manifest ``<name>.json``. Returns the manifest."""
    from voxelwise import __version__
    from voxelwise.imaging.dicom_seg import write_segmentation
    from voxelwise.imaging.nifti import write_nifti

    config = config or InferenceConfig()
    out_dir, name = Path(out_dir), name or source.name
    clock = [time.perf_counter()]
    timings: dict[str, float] = {}

    def lap(step: str) -> None:
        clock.append(time.perf_counter())
        timings[step] = round(clock[-1] - clock[-2], 3)

    ensemble = run_dir if isinstance(run_dir, Ensemble) else load_ensemble(
        run_dir, config.folds, device=config.device, checkpoint=config.checkpoint)
    lap("load_models")
    labels = predict_volume(ensemble, source.image, config)
    lap("predict")
    outputs = {"labels": str(write_nifti(labels, out_dir / f"{name}.nii.gz"))}
    lap("write_nifti")
    classes = {k: v for k, v in ensemble.classes.items() if k != 0}
    if seg and source.source_files:
        outputs["seg"] = str(write_segmentation(
            labels, source.source_files, out_dir / f"{name}.seg.dcm", classes,
            algorithm_name="voxelwise infer", series_description=f"voxelwise "
            f"{Path(ensemble.run_dir).name} segmentation"))
        lap("write_seg")
    manifest = {
        "command": "voxelwise infer", "version": __version__,
        "input": {"kind": source.kind, "source": source.source,
                  "series_instance_uid": source.series_instance_uid,
                  "shape": list(source.image.shape),
                  "spacing_mm": [round(s, 4) for s in source.image.spacing]},
        "parameters": asdict(config), "inference": labels.meta["inference"],
        "volumes_ml": class_volumes_ml(labels, classes), "outputs": outputs,
        "timings_s": {"read_input": source.read_seconds, **timings},
        "seconds": round(clock[-1] - clock[0], 3),
    }
    outputs["manifest"] = str(out_dir / f"{name}.json")
    write_text_atomic(outputs["manifest"], json.dumps(manifest, indent=2, default=str))
    return manifest


def infer_many(run_dir: str | Path, sources: Sequence[InferenceInput], out_dir: str | Path,
               config: InferenceConfig | None = None, *, seg: bool = True) -> list[dict]:
    """`infer` over several inputs with the models loaded once."""
    config = config or InferenceConfig()
    ensemble = load_ensemble(run_dir, config.folds, device=config.device,
                             checkpoint=config.checkpoint)
    return [infer(ensemble, source, out_dir, config, seg=seg) for source in sources]
