"""Demo step: train a small segmentation network on the phantom, segment every series, evaluate.

The phantom is exported as an nnU-Net folder, one fold of a small 2-D U-Net is trained (a few
epochs: minutes on 2 cores, so Dice figures are those of a briefly trained network), every
series is segmented from its DICOM files with `voxelwise.inference`, the predictions are scored
per split (training, validation, test) against the ground truth, and one test series gets a
DICOM Segmentation. Re-running reuses the trained run when the demo's settings are unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from voxelwise.demo.state import LABEL_NAMES, DemoState
from voxelwise.fileio import write_text_atomic

SMALL_NETWORK = {"channels": [8, 16, 32, 64], "strides": [[2, 2], [2, 2], [2, 2]],
                 "num_res_units": 1}


def _config(state: DemoState) -> Any:
    from voxelwise.data.plan import PlanConfig
    from voxelwise.tasks.segmentation import SegmentationConfig
    from voxelwise.training import TrainingConfig

    small = state.config.size == "small"
    return SegmentationConfig(
        plan=PlanConfig(budget="cpu", model="unet", dims=2, model_kwargs=SMALL_NETWORK,
                        patch_size=[96, 96] if small else [128, 128],
                        batch_size=8),
        training=TrainingConfig(epochs=8 if small else 12,
                                iterations_per_epoch=8 if small else 16, optimizer="adamw",
                                learning_rate=3e-3, seed=state.config.seed, threads=2),
        folds=2, fold=0, test_fraction=0.25, split_seed=state.config.seed)


def _fresh_run(run_dir: Path, key: dict[str, Any]) -> bool:
    """True when ``run_dir`` was trained with ``key``; else it is cleared for a new run."""
    path = run_dir / "demo_key.json"
    if path.is_file() and json.loads(path.read_text()) == key:
        return True
    shutil.rmtree(run_dir, ignore_errors=True)
    return False


def _train(state: DemoState, root: Path) -> tuple[Path, Any]:
    from dataclasses import asdict

    from voxelwise.data.datasets import export_msd_folder
    from voxelwise.tasks.segmentation import train_segmentation

    assert state.phantom_root is not None
    dataset = export_msd_folder(state.phantom_root, root / "dataset", overwrite=True)
    config = _config(state)
    run_dir = root / "run"
    key = {"demo": {k: str(v) for k, v in asdict(state.config).items() if k != "out"},
           "config": json.loads(json.dumps(asdict(config), default=str))}
    resume = _fresh_run(run_dir, key)
    result = train_segmentation(dataset, run_dir, config, resume=resume, progress=False)
    write_text_atomic(run_dir / "demo_key.json", json.dumps(key))
    return run_dir, result


def _predict_all(state: DemoState, run_dir: Path, predicted: Path) -> tuple[dict, Path | None]:
    """Segment every phantom series from DICOM; the first test series also gets a SEG."""
    from voxelwise.data.splits import Splits
    from voxelwise.inference import InferenceConfig, infer, load_ensemble, read_input

    assert state.phantom_root is not None
    test = set(Splits.load(run_dir / "splits.json").test)
    config = InferenceConfig(folds=(0,), threads=1)  # tiny series: no thread contention
    ensemble = load_ensemble(run_dir, [0])
    staging = predicted.with_name(f".{predicted.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    seg_path, seconds = None, []
    for row in state.studies:
        case = Path(row["label_map"]).name.removesuffix(".nii.gz")
        source = read_input(state.phantom_root / row["dicom_dir"])
        want_seg = case in test and seg_path is None
        manifest = infer(ensemble, source, staging, config, seg=want_seg, name=case)
        seconds.append(manifest["seconds"])
        if want_seg:
            seg_path = Path(manifest["outputs"]["seg"])
    from voxelwise.fileio import replace_directory

    replace_directory(staging, predicted)
    if seg_path is not None:
        seg_path = predicted / seg_path.name
    return {"series": len(seconds), "seconds_per_series": round(sum(seconds) / len(seconds), 2)
            }, seg_path


def _split_means(summary: list[dict], metric: str) -> dict[str, dict[str, float | None]]:
    """Split -> class -> mean of ``metric`` over the cases with a finite value (None if none)."""
    import math

    found: dict[str, dict[str, float | None]] = {}
    for entry in summary:
        if entry.get("metric") == metric:
            mean = entry.get("mean")
            value = None if mean is None or not math.isfinite(mean) else round(float(mean), 3)
            found.setdefault(str(entry["split"]), {})[str(entry["class"])] = value
    return found


def _removal(postprocessing: dict | None) -> str:
    """The post-processing chosen at training, in words."""
    chosen = (postprocessing or {}).get("min_volume_ml") or {}
    if not any(chosen.values()):
        return "no components removed (none helped on the validation cases)"
    return ("components removed below " + ", ".join(f"{ml:g} mL of {name}" for name, ml
                                                    in chosen.items() if ml)
            + " (the volumes that gave the best validation Dice)")


def step_segmentation(state: DemoState) -> None:
    """Train, segment every series, evaluate per split, add the table, overlays and a SEG."""
    from voxelwise.tasks.segmentation.evaluate import add_evaluation_section, evaluate_folders

    assert state.phantom_root is not None
    root = state.config.out / "segmentation"
    run_dir, result = _train(state, root)
    predicted = root / "predicted"
    timing, seg_path = _predict_all(state, run_dir, predicted)
    dataset = root / "dataset"
    images = {p.name.removesuffix("_0000.nii.gz"): p
              for p in sorted((dataset / "imagesTr").glob("*_0000.nii.gz"))}
    evaluation = evaluate_folders(predicted, dataset / "labelsTr", root / "evaluation.csv",
                                  classes=LABEL_NAMES, splits=run_dir / "splits.json",
                                  progress=False)
    section = add_evaluation_section(state.report, evaluation, images,
                                     title="Segmentation: haematoma and oedema")
    fold = result.folds[0]
    section.paragraphs.insert(0, (
        f"A small 2-D U-Net ({result.plan.spacing_mm} mm grid, patch {result.plan.patch_size}) "
        f"trained for {len(fold.history)} epochs on fold 0 (best validation Dice "
        f"{(fold.best_metric or 0):.2f} at epoch {fold.best_epoch}); every one of the "
        f"{timing['series']} series segmented from its DICOM files (sliding windows with "
        f"Gaussian blending, back on the native grid) in {timing['seconds_per_series']:.1f} s "
        f"each, {_removal(result.postprocessing)}. A briefly trained network on a small "
        "phantom: these figures show the path "
        "works, not what a fully trained model reaches."))
    if seg_path is not None:
        section.paragraphs.append(f"DICOM Segmentation of a test series (referencing its "
                                  f"source images, one frame per source slice): {seg_path}")
    state.outputs["segmentation_run"] = run_dir
    state.outputs["predicted_labels"] = predicted
    if seg_path is not None:
        state.outputs["segmentation_seg"] = seg_path
    state.findings["segmentation"] = {
        "mean_dice": _split_means(evaluation.summary, "dice"),
        "mean_hd95_mm": _split_means(evaluation.summary, "hd95_mm"), "best_epoch": fold.best_epoch,
        "best_val_dice": fold.best_metric, "epochs": len(fold.history),
        "min_volume_ml": (result.postprocessing or {}).get("min_volume_ml"),
        "series_segmented": timing["series"],
        "seconds_per_series": timing["seconds_per_series"],
        "seg": str(seg_path) if seg_path else None}
