"""Training the ICH detector with the project's training loop, then its clinical evaluation.

Patient-level splits (`voxelwise.data.splits`, stratified by any ICH), class-weighted binary
cross-entropy (each finding's positives weighted by negatives / positives on the training cases),
`voxelwise.training.fit` for checkpoints, resume, progress and seeds. Operating points are chosen
on the validation cases (out-of-fold when several folds are trained) and applied unchanged to
the test cases, scored by the mean of the trained folds.

The default network for volumes is `voxelwise.models.vgg` on every slice, and where label maps
give slice labels, study batches alternate with batches of single slices, half of them bleeding
(`DetectionConfig.slice_batches`): on the 360-study benchmark phantom that pair learned the
blood, where study batches alone, or MONAI's ResNet-18 with a strided stem, learned only where
in the head bleeding slices lie (benchmarks/README.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from voxelwise import __version__
from voxelwise.data.splits import Splits, finding_strata, make_splits
from voxelwise.errors import InputError
from voxelwise.fileio import write_text_atomic
from voxelwise.tasks.classification.data import DetectionData
from voxelwise.tasks.classification.evaluate import ClassifierEvaluation, evaluate_classifier
from voxelwise.tasks.classification.model import (
    SliceAggregation,
    build_detector,
    load_detector,
    model_identity,
)
from voxelwise.training import (
    TrainingConfig,
    fit,
    recalibrate_batch_norm,
    resolve_device,
    seed_everything,
)

MAX_POS_WEIGHT = 20.0


def _default_training() -> TrainingConfig:
    return TrainingConfig(epochs=20, batch_size=4, learning_rate=1e-3, optimizer="adamw",
                          schedule="cosine", weight_decay=1e-4)


@dataclass
class DetectionConfig:
    """Settings of one detector run (TOML/JSON sections: top level and ``training``)."""

    model: str = "vgg"            # vgg, densenet121, resnet18, resnet34, resnet50
    dims: int = 2                 # volumes: 2 = per-slice network pooled per study; 3 = 3-D
    folds: int = 1
    fold: int | str = 0           # a fold number or "all"
    test_fraction: float = 0.25
    sensitivity_target: float = 0.90
    specificity_target: float = 0.90
    auc_method: str = "delong"    # or "bootstrap"
    augment: bool = True          # random left-right flips
    slice_labels: bool = True     # 2-D on volumes: learn from slice labels where there are any
    slice_batches: bool = True    # ... alternating study batches with balanced slice batches
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # to the backbone
    training: TrainingConfig = field(default_factory=_default_training)


@dataclass
class DetectorResult:
    run_dir: Path
    evaluation: ClassifierEvaluation
    splits: Splits
    seconds: float
    paths: dict[str, Path]


class _Batches:
    """Shuffled (inputs, targets) batches, re-iterable; randomness from torch's global RNG.
    ``y`` may carry slice labels after the findings (see `DetectionLoss`)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, augment: bool) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.batch_size, self.augment = batch_size, augment

    def __iter__(self):
        order = torch.randperm(len(self.x))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            inputs = self.x[rows].clone()
            if self.augment:
                flip = torch.rand(len(rows)) < 0.5
                inputs[flip] = inputs[flip].flip(-1)
            yield inputs, self.y[rows]


def slice_targets(y: np.ndarray, labels: np.ndarray, findings: list[str]) -> np.ndarray:
    """(cases, slices, findings) what each slice shows, ``nan`` where the study does not say.

    The first finding is the slice's own label. A slice without haemorrhage has no ICH
    subtype; a bleeding slice has the subtype of a study that has only one, and none of the
    subtypes its study lacks. Other findings (midline shift, mass effect, ...) are unknown.
    """
    from voxelwise.tasks.classification.data import ICH_SUBTYPES

    out = np.full((*labels.shape, len(findings)), np.nan, np.float32)
    out[..., 0] = labels
    subtypes = [j for j, name in enumerate(findings) if name in ICH_SUBTYPES and j > 0]
    for j in subtypes:
        present = y[:, j][:, None] > 0
        only = present & (y[:, subtypes].sum(axis=1) == 1)[:, None]
        column = np.where(labels == 0, 0.0, np.where(~present, 0.0, np.nan))
        out[..., j] = np.where((labels == 1) & only, 1.0, column)
    out[np.isnan(labels)] = np.nan
    return out


class _SliceBatches:
    """Batches of single slices, half of them with haemorrhage, each as a one-slice study
    (N, C, 1, H, W) with `slice_targets` (and an unknown slice-output column).

    Whole studies hold about one bleeding slice in five, and the class-weighted study loss of
    every finding outweighs the slices' own; shuffled, balanced slices taught a per-slice
    network the blood within a few hundred steps where study batches had not
    (benchmarks/README.md)."""

    def __init__(self, x: np.ndarray, targets: np.ndarray, batch_size: int, count: int,
                 augment: bool) -> None:
        self.x, self.targets = x, targets
        known = ~np.isnan(targets[..., 0])
        self.positive = np.argwhere(known & (targets[..., 0] == 1))
        self.negative = np.argwhere(known & (targets[..., 0] == 0))
        self.batch_size, self.count, self.augment = batch_size, count, augment

    def __iter__(self):
        half = self.batch_size // 2
        for _ in range(self.count):
            pick = [part[torch.randint(len(part), (n,)).numpy()] for part, n in
                    ((self.positive, half), (self.negative, self.batch_size - half))
                    if len(part)]
            rows = np.concatenate(pick)
            inputs = torch.from_numpy(self.x[rows[:, 0], :, rows[:, 1]][:, :, None].copy())
            if self.augment:
                flip = torch.rand(len(rows)) < 0.5
                inputs[flip] = inputs[flip].flip(-1)
            targets = self.targets[rows[:, 0], rows[:, 1]]
            extra = np.full((len(rows), 1), np.nan, np.float32)
            yield inputs, torch.from_numpy(np.concatenate([targets, extra], axis=1))


class _Alternating:
    """One study batch, then one slice batch, and so on."""

    def __init__(self, studies: _Batches, slices: _SliceBatches) -> None:
        self.studies, self.slices = studies, slices

    def __iter__(self):
        for study, single in zip(self.studies, self.slices, strict=False):
            yield study
            yield single


def class_weights(y: np.ndarray) -> torch.Tensor:
    """Per finding negatives / positives on the training cases, within [1/20, 20] (1 if none)."""
    positives = y.sum(axis=0)
    negatives = len(y) - positives
    weights = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
    return torch.tensor(np.clip(weights, 1 / MAX_POS_WEIGHT, MAX_POS_WEIGHT), dtype=torch.float32)


class DetectionLoss(nn.Module):
    """Class-weighted BCE of the study findings; where outputs and targets go on past the
    findings (a per-slice network with slice labels: `SliceAggregation.slice_outputs`), plus
    the BCE of the first finding on every slice whose label is known (``nan``: unknown).

    Study labels alone leave a per-slice network to find which slice bleeds (multiple-instance
    learning); on the 120-study phantom it stayed at chance after 500 steps, while slice labels
    taught the same network within 300 (benchmarks/ich_detection.py)."""

    def __init__(self, pos_weight: torch.Tensor, slice_weight: float = 1.0) -> None:
        super().__init__()
        self.findings = len(pos_weight)
        self.register_buffer("pos_weight", pos_weight)
        self.slice_weight = slice_weight

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        f = self.findings
        study = targets[:, :f]
        known = ~torch.isnan(study)  # slice batches leave some findings unknown for a slice
        each = nn.functional.binary_cross_entropy_with_logits(
            outputs[:, :f], torch.nan_to_num(study), pos_weight=self.pos_weight,
            reduction="none")
        loss = (each * known).sum() / known.sum().clamp(min=1)
        if outputs.shape[1] > f and targets.shape[1] > f:
            slices, labels = outputs[:, f:], targets[:, f:]
            known = ~torch.isnan(labels)
            if known.any():
                loss = loss + self.slice_weight * nn.functional.binary_cross_entropy_with_logits(
                    slices[known], labels[known])
        return loss


@torch.no_grad()
def predict_arrays(model: nn.Module, x: np.ndarray, device: torch.device,
                   batch_size: int = 8) -> np.ndarray:
    """Sigmoid probabilities (cases, findings) of network inputs ``x``."""
    model.eval()
    out = [torch.sigmoid(model(torch.from_numpy(x[i:i + batch_size]).to(device))).cpu()
           for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy().astype(np.float64)


def _defined(y: np.ndarray) -> list[int]:
    """Columns (findings) of ``y`` that hold both classes, so that their AUC is defined."""
    return [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]


def mean_auc(y: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean AUC over the findings with both classes in ``y`` (``nan`` when there is none)."""
    from voxelwise.metrics.classification import roc_auc_ci

    columns = _defined(y)
    if not columns:
        return float("nan")
    return float(np.mean([roc_auc_ci(y[:, j], probabilities[:, j]).value for j in columns]))


def _validator(x: np.ndarray, y: np.ndarray, loss_fn: nn.Module, device: torch.device,
               x_train: np.ndarray, batch_size: int):
    """Validation metrics: ``val_loss``, and ``val_auc`` (`mean_auc`) when it is defined.

    First the batch-norm statistics are recomputed on the training inputs
    (`voxelwise.training.recalibrate_batch_norm`; unaugmented, in batches of the training
    size), so that the metrics and the checkpoint saved after them see the network as trained:
    with the running averages of a short run, eval mode ranked the training cases of an
    obvious signal below chance (AUC 0.3) while train mode separated them (1.0)."""
    def calibration_batches():
        for start in range(0, len(x_train), batch_size):
            yield torch.from_numpy(x_train[start:start + batch_size])

    def validate(model: nn.Module) -> dict[str, float]:
        recalibrate_batch_norm(model, calibration_batches(), device)
        probabilities = predict_arrays(model, x, device)
        logits = torch.logit(torch.from_numpy(probabilities).clamp(1e-6, 1 - 1e-6)).float()
        loss = float(loss_fn(logits.to(device), torch.from_numpy(y).to(device)))
        metrics = {"val_loss": loss}
        if _defined(y):
            metrics["val_auc"] = mean_auc(y, probabilities)
        return metrics
    return validate


def monitored_metric(y_validation: np.ndarray) -> tuple[str, str]:
    """(metric, mode) that picks the best checkpoint: the validation AUC (mean over findings
    with both classes), which ranks cases as the evaluation does; the validation loss only when
    no finding has both classes there. The loss of a class-weighted BCE falls and rises with the
    calibration and kept the first epoch's near-chance network."""
    return ("val_auc", "max") if _defined(y_validation) else ("val_loss", "min")


def make_detection_splits(data: DetectionData, config: DetectionConfig) -> Splits:
    """Patient-level splits stratified by the first finding (any ICH) and, within it, by the
    other findings (`voxelwise.data.splits.finding_strata`), each validation fold and the test
    split holding an ICH-negative patient as well when there are enough of them.

    `voxelwise.data.splits.make_splits` guarantees a positive patient in every part; a negative
    one may miss a small part (2 of 12 patients negative: none in the test split). Then one
    negative patient is moved there from the fold's training patients, as long as the training
    patients keep one. A part that still lacks a class is evaluated as undefined (with a note).
    """
    positives = [c for c, label in zip(data.case_ids, data.y[:, 0], strict=True) if label]
    splits = make_splits(dict(zip(data.case_ids, data.patients, strict=True)), positives,
                         folds=config.folds, test_fraction=config.test_fraction,
                         seed=config.training.seed, source=data.source,
                         patient_strata=finding_strata(_patient_findings(data)))
    return _with_negatives(splits, data, config.training.seed)


def _patient_findings(data: DetectionData) -> dict[str, np.ndarray]:
    """Per patient, 1 for each finding any of its cases shows."""
    found: dict[str, np.ndarray] = {}
    for patient, labels in zip(data.patients, data.y, strict=True):
        found[patient] = np.maximum(found.get(patient, 0), labels > 0)
    return found


def _negative_patients(data: DetectionData, cases: list[str]) -> list[str]:
    """Patients of ``cases`` none of whose cases has the first finding, sorted."""
    index = {c: i for i, c in enumerate(data.case_ids)}
    positive = {data.patients[index[c]] for c in cases if data.y[index[c], 0]}
    return sorted({data.patients[index[c]] for c in cases} - positive)


def _cases_of(data: DetectionData, patient: str) -> list[str]:
    return [c for c, p in zip(data.case_ids, data.patients, strict=True) if p == patient]


def _with_negatives(splits: Splits, data: DetectionData, seed: int) -> Splits:
    """Move ICH-negative patients into a test split or validation folds that lack one, from
    training patients, never leaving a training set without one (see make_detection_splits)."""
    rng = np.random.default_rng([seed, 6])
    folds = [{"train": list(f["train"]), "validation": list(f["validation"])}
             for f in splits.folds]
    test = list(splits.test)
    if test and not _negative_patients(data, test):
        pool = _negative_patients(data, folds[0]["train"] + folds[0]["validation"])
        for patient in (pool[i] for i in rng.permutation(len(pool))):
            moved = set(_cases_of(data, patient))
            left = [{name: [c for c in part if c not in moved] for name, part in f.items()}
                    for f in folds]
            if all(_negative_patients(data, f["train"]) for f in left):
                folds, test = left, sorted(test + sorted(moved))
                break
    for fold in folds:
        spare = _negative_patients(data, fold["train"])
        if not _negative_patients(data, fold["validation"]) and len(spare) >= 2:
            moved = set(_cases_of(data, spare[int(rng.integers(len(spare)))]))
            fold["validation"] = sorted(fold["validation"] + sorted(moved))
            fold["train"] = [c for c in fold["train"] if c not in moved]
    return Splits(folds, test)


def _identity(data: DetectionData, config: DetectionConfig) -> dict[str, Any]:
    return {"task": "ich-detection", "findings": data.findings, "input": data.spec.as_dict(),
            **model_identity(config.model, 3 if data.spec.kind == "volume" and config.dims == 3
                             else 2, data.x.shape[1], len(data.findings), data.spec.kind,
                             config.model_kwargs),
            "folds": config.folds, "test_fraction": config.test_fraction,
            "seed": config.training.seed}


def _fold_numbers(config: DetectionConfig) -> list[int]:
    if config.fold == "all":
        return list(range(config.folds))
    fold = int(config.fold)
    if not 0 <= fold < config.folds:
        raise InputError(None, f"fold {fold} does not exist ({config.folds} folds)")
    return [fold]


def _training_batches(model: nn.Module, x: np.ndarray, y: np.ndarray,
                      per_slice: np.ndarray | None, findings: list[str],
                      config: DetectionConfig) -> Any:
    """Study batches; for a per-slice network with slice labels, their slice labels appended
    (and ``model.slice_outputs`` set), alternating with balanced single-slice batches when
    ``config.slice_batches``."""
    size, augment = config.training.batch_size, config.augment
    if not (isinstance(model, SliceAggregation) and per_slice is not None
            and config.slice_labels):
        return _Batches(x, y, size, augment)
    model.slice_outputs = True
    studies = _Batches(x, np.concatenate([y, per_slice], axis=1), size, augment)
    if not config.slice_batches:
        return studies
    slices = _SliceBatches(x, slice_targets(y, per_slice, findings), size * x.shape[2],
                           count=-(-len(x) // size), augment=augment)
    return _Alternating(studies, slices)


def train_fold(data: DetectionData, splits: Splits, fold: int, run_dir: Path,
               config: DetectionConfig, resume: bool = False) -> Path:
    """Train one fold into ``run_dir/fold_K``; returns its best checkpoint."""
    identity = _identity(data, config)
    part = splits.folds[fold]
    x_train, y_train = data.subset(part["train"])
    x_val, y_val = data.subset(part["validation"])
    device = resolve_device(config.training.device)
    loss_fn = DetectionLoss(class_weights(y_train).to(device))
    seed_everything(config.training.seed + fold)
    model = build_detector(identity)
    batches = _training_batches(model, x_train, y_train,
                                data.subset_slice_labels(part["train"]), data.findings, config)
    monitor, mode = monitored_metric(y_val)
    result = fit(model, batches, loss_fn, run_dir / f"fold_{fold}", config.training,
                 validate=_validator(x_val, y_val, loss_fn, device, x_train,
                                     config.training.batch_size), monitor=monitor,
                 mode=mode, resume=resume, identity={**identity, "fold": fold},
                 description=f"ich-detection fold {fold}")
    return result.best_checkpoint


def _scores(data: DetectionData, splits: Splits, folds: list[int], checkpoints: list[Path],
            device: torch.device) -> tuple[list[str], np.ndarray, np.ndarray]:
    validation_ids: list[str] = []
    validation_scores, test_scores = [], []
    x_test, _ = data.subset(splits.test)
    for fold, checkpoint in zip(folds, checkpoints, strict=True):
        model, _ = load_detector(checkpoint, device)
        ids = splits.folds[fold]["validation"]
        validation_ids += ids
        validation_scores.append(predict_arrays(model, data.subset(ids)[0], device))
        test_scores.append(predict_arrays(model, x_test, device))
    return validation_ids, np.concatenate(validation_scores), np.mean(test_scores, axis=0)


def _write_predictions(path: Path, rows: list[tuple[str, str, np.ndarray, np.ndarray]],
                       findings: list[str]) -> Path:
    lines = [",".join(["case", "split", *findings, *(f"p_{f}" for f in findings)])]
    for case, split, y, p in rows:
        lines.append(",".join([case, split, *(str(int(v)) for v in y),
                               *(f"{v:.6f}" for v in p)]))
    return write_text_atomic(path, "\n".join(lines) + "\n")


def train_detector(data: DetectionData, run_dir: str | Path, config: DetectionConfig | None
                   = None, *, resume: bool = False) -> DetectorResult:
    """Split by patient, train the chosen fold(s), evaluate on the test split; write the run.

    ``run_dir`` receives ``splits.json``, ``fold_K/`` (checkpoints, history.csv),
    ``detector.json`` (findings, input, folds: what `predict_studies` needs),
    ``predictions.csv``, ``findings.csv`` / ``findings_table.txt`` / ``confusion.csv``,
    ``operating_points.json`` and ``train.json`` (the manifest).
    """
    config = config or DetectionConfig()
    run_dir = Path(run_dir)
    started = time.perf_counter()
    splits = make_detection_splits(data, config)
    splits.save(run_dir / "splits.json")
    folds = _fold_numbers(config)
    checkpoints = [train_fold(data, splits, f, run_dir, config, resume) for f in folds]
    device = resolve_device(config.training.device)
    validation_ids, s_val, s_test = _scores(data, splits, folds, checkpoints, device)
    y_val, y_test = data.subset(validation_ids)[1], data.subset(splits.test)[1]
    evaluation = evaluate_classifier(
        data.findings, y_val, s_val, y_test, s_test,
        sensitivity_target=config.sensitivity_target,
        specificity_target=config.specificity_target, auc_method=config.auc_method,
        seed=config.training.seed)
    paths = evaluation.write(run_dir)
    rows = [(c, "validation", y, p) for c, y, p in zip(validation_ids, y_val, s_val,
                                                        strict=True)]
    rows += [(c, "test", y, p) for c, y, p in zip(splits.test, y_test, s_test, strict=True)]
    paths["predictions"] = _write_predictions(run_dir / "predictions.csv", rows, data.findings)
    detector = {**_identity(data, config),
                "checkpoints": [str(c.relative_to(run_dir)) for c in checkpoints]}
    paths["detector"] = write_text_atomic(run_dir / "detector.json",
                                          json.dumps(detector, indent=1))
    seconds = time.perf_counter() - started
    _write_manifest(run_dir, data, config, paths, seconds, splits)
    return DetectorResult(run_dir, evaluation, splits, seconds, paths)


def _write_manifest(run_dir: Path, data: DetectionData, config: DetectionConfig,
                    paths: dict[str, Path], seconds: float, splits: Splits) -> None:
    manifest = {
        "command": "voxelwise train --task ich-detection", "version": __version__,
        "torch": torch.__version__, "inputs": {"labels": str(data.source),
                                               "cases": len(data.case_ids)},
        "parameters": json.loads(json.dumps(asdict(config), default=str)),
        "splits": {"test": len(splits.test), **{f"fold_{k}": {n: len(v) for n, v in f.items()}
                                                for k, f in enumerate(splits.folds)}},
        "seconds": round(seconds, 1), "outputs": {k: str(v) for k, v in paths.items()}}
    write_text_atomic(run_dir / "train.json", json.dumps(manifest, indent=1))
