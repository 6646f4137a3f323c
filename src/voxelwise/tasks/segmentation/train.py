"""Training segmentation networks: the stages plan -> splits -> preprocess -> folds, resumable.

``train_segmentation(dataset, run_dir)`` runs the stages a run folder still lacks and trains the
chosen folds::

    RUN/plan.json            the plan (`voxelwise.data.plan`), made here when missing
    RUN/splits.json          patient-level folds and test set (`voxelwise.data.splits`)
    RUN/preprocessed/        cached arrays (`voxelwise.data.preprocess`)
    RUN/fold_K/              checkpoint_last.pt, checkpoint_best.pt, history.csv
    RUN/postprocessing.json  minimum lesion volumes chosen on the validation cases
                             (`voxelwise.tasks.segmentation.postprocessing`)
    RUN/train.json           what ran: dataset, configuration, per-fold results, timings

Loss: cross-entropy + soft Dice by default (the ISLES stroke work found the sum far better than
either alone); ``dice``, ``ce``, ``focal``, ``dice_focal`` are the others. Validation Dice is
computed each epoch on the validation cases, on the plan's grid, by sliding-window inference;
it picks ``checkpoint_best.pt`` and stops training early after ``patience`` epochs without
improvement.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from voxelwise import __version__
from voxelwise.data.datasets import SegmentationDataset, export_msd_folder, open_dataset
from voxelwise.data.plan import Plan, PlanConfig, plan_dataset
from voxelwise.data.preprocess import PreprocessedCase, load_preprocessed, preprocess_dataset
from voxelwise.data.splits import Splits, make_splits
from voxelwise.data.transforms import Augment, PatchSampler
from voxelwise.errors import InputError
from voxelwise.fileio import write_text_atomic
from voxelwise.metrics.segmentation import dice
from voxelwise.models import build_from_spec
from voxelwise.tasks import dataclass_from_mapping, load_config_mapping
from voxelwise.tasks.segmentation.postprocessing import determine_postprocessing
from voxelwise.training import (
    TrainingConfig,
    TrainingResult,
    fit,
    resolve_device,
    seed_everything,
)

LOSSES = ("dice_ce", "dice", "ce", "focal", "dice_focal")


def _default_training() -> TrainingConfig:
    # AdamW at 1e-2 learned the phantom's lesions in a few hundred batches, where nnU-Net's SGD
    # (momentum 0.99) needed several times more: the better default for short CPU runs
    return TrainingConfig(epochs=30, iterations_per_epoch=50, optimizer="adamw",
                          learning_rate=1e-2)


@dataclass
class SegmentationConfig:
    """Everything a segmentation run can be told; a TOML/JSON file and the CLI override it.

    TOML example (every key optional)::

        loss = "dice_ce"
        folds = 5
        fold = 0                 # or "all"
        [plan]
        model = "unet"           # unet | vnet | deepmedic
        budget = "cpu"
        patch_size = [160, 160]
        [training]
        epochs = 30
        iterations_per_epoch = 50
        learning_rate = 0.01
        [augment]
        rotate_deg = 10
    """

    plan: PlanConfig = field(default_factory=PlanConfig)
    training: TrainingConfig = field(default_factory=_default_training)
    augment: Augment = field(default_factory=Augment)
    loss: str = "dice_ce"
    folds: int = 5
    fold: int | str = 0                      # a fold number, or "all"
    test_fraction: float = 0.2
    split_seed: int = 0
    foreground_fraction: float = 1 / 3
    use_augmentation: bool = True
    validation_overlap: float = 0.25

    def fold_numbers(self) -> list[int]:
        folds = max(self.folds, 1)
        if self.fold == "all":
            return list(range(folds))
        fold = int(self.fold)
        if not 0 <= fold < folds:
            raise InputError(None, f"fold {fold} does not exist: there are {folds} fold(s)")
        return [fold]


def load_segmentation_config(path: str | Path,
                             base: SegmentationConfig | None = None) -> SegmentationConfig:
    """A `SegmentationConfig` from a TOML or JSON file (unknown keys refused by name)."""
    return dataclass_from_mapping(SegmentationConfig, load_config_mapping(path), path, base)


@dataclass
class SegmentationTrainResult:
    run_dir: Path
    plan: Plan
    splits: Splits
    folds: dict[int, TrainingResult]
    seconds: float
    postprocessing: dict[str, Any] | None = None
    """The minimum lesion volumes chosen on the validation cases (``RUN/postprocessing.json``)."""

    def summary(self) -> dict[str, Any]:
        return {str(k): {"best_epoch": r.best_epoch, "best_val_dice": r.best_metric,
                         "epochs": len(r.history), "stopped_early": r.stopped_early,
                         "checkpoint": str(r.best_checkpoint)} for k, r in self.folds.items()}


# ------------------------------------------------------------------------------ losses
def make_loss(name: str) -> nn.Module:
    """The loss by name; targets are label maps (B, 1, *spatial), outputs logits."""
    from monai.losses import DiceCELoss, DiceFocalLoss, DiceLoss, FocalLoss

    options = {"to_onehot_y": True, "softmax": True, "include_background": False,
               "batch": True}
    if name == "dice_ce":
        return DiceCELoss(**options)
    if name == "dice":
        return DiceLoss(**options)
    if name == "dice_focal":
        return DiceFocalLoss(**options)
    if name == "focal":
        return FocalLoss(to_onehot_y=True, use_softmax=True)
    if name == "ce":
        return _CrossEntropy()
    raise InputError(None, f"unknown loss {name!r} ({', '.join(LOSSES)})")


class _CrossEntropy(nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, target[:, 0].long())


# ------------------------------------------------------------------------------ validation
def predict_case(model: nn.Module, image: np.ndarray, plan: Plan, device: torch.device,
                 overlap: float = 0.25, amp: bool = False) -> np.ndarray:
    """Class probabilities (classes, *shape) of one preprocessed image, by sliding window
    (the same windows and blending as `voxelwise.inference`, which this calls)."""
    from voxelwise.inference.sliding import WindowSettings, sliding_window_probabilities

    settings = WindowSettings(tuple(plan.patch_size), overlap=overlap,
                              batch_size=16 if plan.dims == 2 else 2)
    tensor = torch.from_numpy(image).to(device)[None]
    with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
        probabilities = sliding_window_probabilities(model, tensor, settings)
    return probabilities[0].cpu().numpy()


def validation_dice(model: nn.Module, cases: list[PreprocessedCase], plan: Plan,
                    device: torch.device, overlap: float = 0.25, amp: bool = False
                    ) -> dict[str, float]:
    """Mean Dice per foreground class over ``cases`` (``val_dice``: their mean).

    A case where a class is absent from both the truth and the prediction is left out of that
    class's mean (as nnU-Net does), not scored 1: otherwise a network that predicts nothing would
    score well on every lesion-free case and an all-background checkpoint could be kept as the
    best. A class that no case holds and the network never predicts scores 1.
    """
    scores: dict[str, list[float]] = {name: [] for k, name in plan.classes.items() if int(k)}
    for case in cases:
        prediction = predict_case(model, case.image, plan, device, overlap, amp).argmax(0)
        for key, name in plan.classes.items():
            predicted, truth = prediction == int(key), case.label == int(key)
            if int(key) and (predicted.any() or truth.any()):
                scores[name].append(dice(predicted, truth))
    metrics = {f"val_dice_{name}": float(np.mean(v)) if v else 1.0 for name, v in scores.items()}
    metrics["val_dice"] = float(np.mean(list(metrics.values())))
    return metrics


# ------------------------------------------------------------------------------ stages
def open_training_dataset(source: str | Path | SegmentationDataset, run_dir: str | Path,
                          db: str | None = None) -> SegmentationDataset:
    """The dataset at ``source``; a head-CT phantom folder is exported to ``RUN/dataset`` first."""
    if isinstance(source, SegmentationDataset):
        return source
    source = Path(source)
    if (source / "phantom.json").is_file() and (source / "labels.csv").is_file():
        return export_msd_folder(source, Path(run_dir) / "dataset")
    return open_dataset(source, db)


def _set_options(config: PlanConfig) -> dict[str, Any]:
    """The plan settings that differ from the defaults (what a user asked for)."""
    given = json.loads(json.dumps(asdict(config)))
    default = json.loads(json.dumps(asdict(PlanConfig())))
    return {key: value for key, value in given.items() if value != default[key]}


def replan(dataset: SegmentationDataset, run_dir: str | Path, config: PlanConfig,
           progress: bool = True) -> Plan:
    """Fingerprint and plan ``dataset`` and write ``RUN/plan.json`` (replacing one)."""
    path = Path(run_dir) / "plan.json"
    print(f"plan: fingerprinting {len(dataset.cases)} cases of {dataset.root}", flush=True)
    plan = plan_dataset(dataset, config, progress=progress)
    plan.save(path)
    print(f"plan: {plan.dims}D, spacing {plan.spacing_mm} mm, patch {plan.patch_size}, batch "
          f"{plan.batch_size}, model {plan.model['name']} -> {path}", flush=True)
    return plan


def ensure_plan(dataset: SegmentationDataset, run_dir: str | Path, config: PlanConfig,
                progress: bool = True) -> Plan:
    """``RUN/plan.json``: made when missing; an existing one must fit the dataset and settings."""
    path = Path(run_dir) / "plan.json"
    if not path.is_file():
        return replan(dataset, run_dir, config, progress)
    plan = Plan.load(path)
    if plan.dataset.get("path") != str(dataset.root):
        raise InputError(path, f"plan made for another dataset ({plan.dataset.get('path')}), "
                         f"not {dataset.root}; choose another --out")
    differing = [k for k, v in _set_options(config).items() if plan.overrides.get(k) != v]
    if differing:
        raise InputError(path, f"plan made with other settings ({', '.join(differing)}); run "
                         "`voxelwise plan` again with --out RUN to replace it, or choose "
                         "another --out")
    return plan


def ensure_splits(plan: Plan, run_dir: Path, dataset: SegmentationDataset,
                  config: SegmentationConfig) -> Splits:
    """``RUN/splits.json``: patient-level, stratified by lesion presence; made when missing."""
    path = run_dir / "splits.json"
    if path.is_file():
        splits = Splits.load(path)
        known = {c.case_id for c in dataset.cases}
        listed = set(splits.test) | {c for f in splits.folds for c in f["train"] + f["validation"]}
        if listed - known:
            raise InputError(path, f"lists cases not in the dataset: {sorted(listed - known)[:5]}")
        return splits
    splits = make_splits({c.case_id: c.patient for c in dataset.cases},
                         plan.fingerprint["positive_cases"], config.folds,
                         config.test_fraction, config.split_seed, dataset.root)
    splits.save(path)
    return splits


def _fold_identity(plan: Plan, splits: Splits, fold: int, loss: str) -> dict[str, Any]:
    cases = json.dumps(splits.folds[fold], sort_keys=True)
    return {"task": "segmentation", "model": plan.model_spec(), "plan": plan.identity(),
            "loss": loss, "fold": fold,
            "splits": hashlib.sha256(cases.encode()).hexdigest()[:16]}


def train_fold(plan: Plan, splits: Splits, fold: int, preprocessed: Path, run_dir: Path,
               config: SegmentationConfig, *, resume: bool = False) -> TrainingResult:
    """Train fold ``fold`` into ``RUN/fold_K`` (refuses to overwrite without ``resume``)."""
    fold_dir = run_dir / f"fold_{fold}"
    if (fold_dir / "checkpoint_last.pt").exists() and not resume:
        raise InputError(fold_dir, "already holds a training run; pass --resume to continue it "
                         "or choose another --out")
    training = dataclasses.replace(config.training, batch_size=plan.batch_size)
    device = resolve_device(training.device)
    train_cases = load_preprocessed(preprocessed, splits.folds[fold]["train"])
    validation_cases = load_preprocessed(preprocessed, splits.folds[fold]["validation"])
    seed_everything(training.seed)
    model = build_from_spec(plan.model_spec())
    sampler = PatchSampler(train_cases, plan.patch_size, plan.batch_size,
                           training.iterations_per_epoch or 250,
                           foreground_fraction=config.foreground_fraction,
                           augment=config.augment if config.use_augmentation else None,
                           device=device)
    amp = bool(training.amp and device.type == "cuda")

    def validate(network: nn.Module) -> dict[str, float]:
        return validation_dice(network, validation_cases, plan, device,
                               config.validation_overlap, amp)

    return fit(model, sampler, make_loss(config.loss), fold_dir, training, validate=validate,
               monitor="val_dice", mode="max", resume=resume,
               identity=_fold_identity(plan, splits, fold, config.loss),
               description=f"fold {fold}")


def train_segmentation(dataset: str | Path | SegmentationDataset, run_dir: str | Path,
                       config: SegmentationConfig | None = None, *, resume: bool = False,
                       progress: bool = True, db: str | None = None) -> SegmentationTrainResult:
    """Plan, split and preprocess ``dataset`` as needed, then train the configured folds."""
    started = time.perf_counter()
    config = config or SegmentationConfig()
    if config.loss not in LOSSES:
        raise InputError(None, f"unknown loss {config.loss!r} ({', '.join(LOSSES)})")
    folds = config.fold_numbers()
    run_dir = Path(run_dir)
    dataset = open_training_dataset(dataset, run_dir, db)
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = ensure_plan(dataset, run_dir, config.plan, progress)
    splits = ensure_splits(plan, run_dir, dataset, config)
    preprocessed = preprocess_dataset(dataset, plan, run_dir / "preprocessed",
                                      progress=progress)
    results = {fold: train_fold(plan, splits, fold, preprocessed, run_dir, config,
                                resume=resume) for fold in folds}
    postprocessing = determine_postprocessing(run_dir, dataset, plan, splits, folds,
                                              device=config.training.device)
    result = SegmentationTrainResult(run_dir, plan, splits, results,
                                     round(time.perf_counter() - started, 2), postprocessing)
    _write_manifest(result, dataset, config)
    return result


def _write_manifest(result: SegmentationTrainResult, dataset: SegmentationDataset,
                    config: SegmentationConfig) -> None:
    manifest = {
        "command": "voxelwise train --task segmentation", "version": __version__,
        "torch": torch.__version__, "dataset": dataset.describe(),
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "plan": str(result.run_dir / "plan.json"), "splits": str(result.run_dir / "splits.json"),
        "folds": result.summary(), "seconds": result.seconds,
        "postprocessing": (result.postprocessing or {}).get("min_volume_ml"),
    }
    write_text_atomic(result.run_dir / "train.json", json.dumps(manifest, indent=1))
