"""Multi-label classification: the ICH detector (any ICH, five subtypes, midline shift, mass
effect) on head-CT studies or 2-D images, its clinical evaluation and Grad-CAM heatmaps.

Interface F: `predict_studies(run_dir, images)` -> (N, findings) probabilities, columns as
`findings(run_dir)` (first ``any_ich``), and ``RUN/operating_points.json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from voxelwise.tasks.classification.predict import (
    findings,
    operating_points,
    predict_images,
    predict_studies,
)

__all__ = ["add_train_arguments", "cli_train", "findings", "operating_points",
           "predict_images", "predict_studies"]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `voxelwise train --task ich-detection` adds to the shared ones."""
    group = parser.add_argument_group("ich-detection")
    group.add_argument("--labels", type=str, metavar="CSV",
                       help="labels CSV (default DATA/labels.csv): one 0/1 column per finding "
                       "and dicom_dir (series folders), file (2-D images) or "
                       "series_instance_uid (repository)")
    group.add_argument("--key", type=str, metavar="FILE",
                       help="de-identification key, to map original UIDs in a repository")
    group.add_argument("--findings", help="comma-separated finding columns (default: the ICH "
                       "findings present: any_ich, subtypes, midline_shift, mass_effect)")
    group.add_argument("--ignore-columns", default="", help="comma-separated columns to skip")
    group.add_argument("--image-size", type=int, help="in-plane pixels of the input (64)")
    group.add_argument("--slices", type=int, help="volumes: slices of the input (16)")
    group.add_argument("--sensitivity-target", type=float, help="high-sensitivity point (0.9)")
    group.add_argument("--specificity-target", type=float, help="high-specificity point (0.9)")
    group.add_argument("--auc-method", choices=("delong", "bootstrap"), help="AUC CI (delong)")
    group.add_argument("--no-slice-labels", action="store_true",
                       help="2-D on volumes: learn from the study findings only, even where "
                       "the labels CSV names label maps")


def _config(args: argparse.Namespace) -> Any:
    import dataclasses

    from voxelwise.tasks import dataclass_from_mapping, load_config_mapping
    from voxelwise.tasks.classification.train import DetectionConfig

    config = DetectionConfig()
    if getattr(args, "config", None):
        config = dataclass_from_mapping(DetectionConfig, load_config_mapping(args.config),
                                        args.config)
    top = {"model": args.model, "dims": args.dims, "folds": args.folds,
           "test_fraction": args.test_fraction, "sensitivity_target": args.sensitivity_target,
           "specificity_target": args.specificity_target, "auc_method": args.auc_method}
    top = {k: v for k, v in top.items() if v is not None}
    if args.fold is not None:
        top["fold"] = args.fold if args.fold == "all" else int(args.fold)
    if args.no_augmentation:
        top["augment"] = False
    if getattr(args, "no_slice_labels", False):
        top["slice_labels"] = False
    training = {k: getattr(args, k) for k in ("epochs", "batch_size", "learning_rate", "seed",
                                               "device", "patience", "optimizer", "schedule",
                                               "threads") if getattr(args, k, None) is not None}
    if getattr(args, "iterations", None) is not None:
        training["iterations_per_epoch"] = args.iterations
    return dataclasses.replace(config, training=dataclasses.replace(config.training, **training),
                               **top)


def cli_train(args: argparse.Namespace) -> int:
    """`voxelwise train DATA --out RUN --task ich-detection`: load, train, print the table."""
    from pathlib import Path

    from voxelwise.errors import InputError
    from voxelwise.tasks.classification.data import InputSpec, load_detection_data
    from voxelwise.tasks.classification.train import train_detector

    if args.fold not in (None, "all") and not str(args.fold).isdigit():
        raise InputError(None, f"--fold must be a number or 'all', not {args.fold!r}")
    config = _config(args)
    spec = InputSpec(size=args.image_size or 64, slices=args.slices or 16)
    data = load_detection_data(
        args.data, labels=args.labels,
        findings=[f.strip() for f in args.findings.split(",")] if args.findings else None,
        ignore=tuple(c.strip() for c in args.ignore_columns.split(",") if c.strip()),
        spec=spec, key_path=Path(args.key) if args.key else None, db=args.db)
    print(f"{len(data.case_ids)} {'studies' if data.spec.kind == 'volume' else 'images'} of "
          f"{len(set(data.patients))} patients; findings: {', '.join(data.findings)}")
    result = train_detector(data, args.out, config, resume=args.resume)
    print(result.evaluation.table(), end="")
    print(f"wrote {result.paths['findings_csv']}, {result.paths['operating_points']} "
          f"({result.seconds:.0f} s)")
    return 0
