"""Using a trained detector: probabilities per finding for study volumes or 2-D images
(interface F: `predict_studies`, `findings`, and ``RUN/operating_points.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxelwise.errors import InputError

if TYPE_CHECKING:
    from voxelwise.imaging.volume import Volume


def detector_info(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/detector.json``: findings, input spec, model, checkpoints."""
    path = Path(run_dir) / "detector.json"
    if not path.is_file():
        raise InputError(path, "not found; is this an ICH-detector run folder "
                         "(voxelwise train --task ich-detection)?")
    return json.loads(path.read_text(encoding="utf-8"))


def findings(run_dir: str | Path) -> list[str]:
    """The detector's findings, in the column order of `predict_studies` (first: any_ich)."""
    return list(detector_info(run_dir)["findings"])


def operating_points(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/operating_points.json``: thresholds chosen on validation, with test figures."""
    path = Path(run_dir) / "operating_points.json"
    if not path.is_file():
        raise InputError(path, "not found; the run has not been evaluated")
    return json.loads(path.read_text(encoding="utf-8"))


def predict_arrays_with_run(run_dir: str | Path, x: np.ndarray,
                            device: str = "cpu") -> np.ndarray:
    """Mean over the run's folds of the sigmoid probabilities of network inputs ``x``."""
    from voxelwise.tasks.classification.model import load_detector
    from voxelwise.tasks.classification.train import predict_arrays
    from voxelwise.training import resolve_device

    run_dir = Path(run_dir)
    torch_device = resolve_device(device)
    scores = [predict_arrays(load_detector(run_dir / c, torch_device)[0], x, torch_device)
              for c in detector_info(run_dir)["checkpoints"]]
    return np.mean(scores, axis=0)


def predict_studies(run_dir: str | Path, images: list[Volume], device: str = "cpu"
                    ) -> np.ndarray:
    """(N, findings) probabilities of N head-CT volumes (in HU), columns as `findings`."""
    from voxelwise.tasks.classification.data import InputSpec, volume_input

    info = detector_info(run_dir)
    spec = InputSpec.from_dict(info["input"])
    if spec.kind != "volume":
        raise InputError(Path(run_dir), "this detector was trained on 2-D images; use "
                         "predict_images")
    if not images:
        return np.zeros((0, len(info["findings"])))
    x = np.stack([volume_input(image, spec) for image in images])
    return predict_arrays_with_run(run_dir, x, device)


def predict_images(run_dir: str | Path, paths: list[Path], device: str = "cpu") -> np.ndarray:
    """(N, findings) probabilities of 2-D image files (PNG, JPEG, DICOM)."""
    from voxelwise.data.images2d import read_image_2d

    info = detector_info(run_dir)
    size = int(info["input"]["size"])
    problems, arrays = [], []
    for path in paths:
        try:
            arrays.append(read_image_2d(path, size))
        except Exception as error:  # noqa: BLE001  decoders raise many kinds
            problems.append(f"{path}: cannot be decoded ({type(error).__name__})")
    if problems:
        raise InputError(None, "; ".join(problems))
    if info["input"]["kind"] == "volume":
        raise InputError(Path(run_dir), "this detector was trained on volumes; use "
                         "predict_studies")
    return predict_arrays_with_run(run_dir, np.stack(arrays), device)
