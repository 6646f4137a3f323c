"""`voxelwise evaluate`: score predicted label maps against ground truth, per case and split."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="Dice, IoU, HD95, ASSD, surface Dice and volume errors of label maps",
        description="Match the NIfTI label maps of --pred and --gt by file name and score every "
        "case and class. Writes OUT (per case and class), OUT_summary.csv (per split, class and "
        "metric: n, mean, sd, median, 95% CI, infinite values counted) and OUT.json.")
    parser.add_argument("--pred", type=Path, required=True, help="folder of predicted label maps")
    parser.add_argument("--gt", type=Path, required=True, help="folder of ground-truth label maps")
    parser.add_argument("--out", type=Path, required=True, help="per-case CSV, e.g. metrics.csv")
    parser.add_argument("--classes", help="LABEL=NAME list, e.g. 1=haematoma,2=oedema (default: "
                        "dataset.json next to --gt, else the labels found)")
    parser.add_argument("--splits", type=Path, help="case -> split: a run's splits.json, a JSON "
                        "mapping, or a CSV with columns case,split")
    parser.add_argument("--fold", type=int, default=0,
                        help="fold of a splits.json whose train/validation lists to use (0)")
    parser.add_argument("--tolerance-mm", type=float, default=2.0,
                        help="surface-Dice tolerance in mm (default 2)")
    parser.add_argument("--images", type=Path, help="folder of the images (NIfTI, same names) "
                        "for overlays of the best, median and worst cases in --report")
    parser.add_argument("--report", type=Path, help="also write an HTML report")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from voxelwise.tasks.segmentation.evaluate import (
        add_evaluation_section,
        evaluate_folders,
        label_files,
        parse_classes,
    )

    classes = parse_classes(args.classes) if args.classes else None
    result = evaluate_folders(args.pred, args.gt, args.out, classes, args.splits,
                              tolerance_mm=args.tolerance_mm, fold=args.fold)
    print(result.table(["dice", "hd95_mm", "assd_mm", "surface_dice", "abs_volume_error_ml"]))
    for name, path in result.outputs.items():
        print(f"{name}: {path}")
    if args.report:
        from voxelwise.reports.html import Report

        report = Report("Segmentation evaluation")
        images = label_files(args.images) if args.images else None
        add_evaluation_section(report, result, images)
        print(f"report: {report.write(args.report)}")
    return 0
