"""`voxelwise preprocess`: cache a dataset resampled and normalised as its plan says."""

from __future__ import annotations

import argparse

from voxelwise.cli.plan import add_dataset_arguments, add_plan_arguments, segmentation_config


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preprocess", help="cache a segmentation dataset on its plan's grid (plans if needed)",
        description="Reorient every case canonically, resample it to the plan's spacing, "
        "normalise it and write RUN/preprocessed/ (one .npz per case, preprocessed.json). "
        "Runs `voxelwise plan` first when RUN/plan.json is missing; interrupted runs resume.")
    add_dataset_arguments(parser)
    add_plan_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from voxelwise.data.preprocess import MANIFEST, preprocess_dataset
    from voxelwise.tasks.segmentation.train import ensure_plan, open_training_dataset

    config = segmentation_config(args)
    dataset = open_training_dataset(args.data, args.out, args.db)
    plan = ensure_plan(dataset, args.out, config.plan)
    out = preprocess_dataset(dataset, plan, args.out / "preprocessed")
    print(f"{len(dataset.cases)} cases on {' x '.join(f'{s:.3g}' for s in plan.spacing_mm)} mm "
          f"-> {out} (manifest {out / MANIFEST})")
    return 0
