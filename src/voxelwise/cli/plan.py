"""`voxelwise plan`: fingerprint a segmentation dataset and write the plan (``RUN/plan.json``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """DATA, --out, --db, --config: what every segmentation stage starts from."""
    parser.add_argument("data", type=Path, metavar="DATA",
                        help="dataset: an MSD / nnU-Net folder (dataset.json, imagesTr/, "
                        "labelsTr/), a study repository, or a head-CT phantom folder")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN",
                        help="run folder (plan.json, splits.json, preprocessed/, fold_K/)")
    parser.add_argument("--db", help="database URL of a repository on a server")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML or JSON settings (sections plan, training, augment); the "
                        "command line wins over the file")


def add_plan_arguments(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    """The plan's overridable decisions."""
    group = parser.add_argument_group("plan (default: derived from the dataset's fingerprint)")
    group.add_argument("--budget", choices=("auto", "cpu", "gpu"),
                       help="compute budget the plan fits (default auto: gpu when one is seen)")
    if model:
        group.add_argument("--model", help="network: unet (default), vnet, deepmedic")
    group.add_argument("--dims", type=int, choices=(2, 3), help="2D or 3D network")
    group.add_argument("--spacing", type=float, nargs=3, metavar="MM",
                       help="target spacing in mm, array order (slice, row, column)")
    group.add_argument("--patch-size", type=int, nargs="+", metavar="N", help="patch size")
    group.add_argument("--max-case-voxels", type=int,
                       help="budget: voxels of one resampled case (coarser spacing beyond)")
    group.add_argument("--max-batch-voxels", type=int,
                       help="budget: voxels of one training batch (smaller patches beyond)")


PLAN_OPTIONS = {"budget": "budget", "model": "model", "dims": "dims", "spacing": "spacing_mm",
                "patch_size": "patch_size", "max_case_voxels": "max_case_voxels",
                "max_batch_voxels": "max_batch_voxels", "batch_size": "batch_size"}


def segmentation_config(args: argparse.Namespace) -> Any:
    """A `SegmentationConfig`: defaults, then --config FILE, then the command line."""
    import dataclasses

    from voxelwise.tasks.segmentation.train import SegmentationConfig, load_segmentation_config

    config = SegmentationConfig()
    if getattr(args, "config", None):
        config = load_segmentation_config(args.config, config)
    plan_changes = {field: getattr(args, option) for option, field in PLAN_OPTIONS.items()
                    if getattr(args, option, None) is not None}
    return dataclasses.replace(config, plan=dataclasses.replace(config.plan, **plan_changes))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan", help="fingerprint a segmentation dataset and plan spacing, patch and network",
        description="Read and check every case (geometry, declared labels), measure spacings, "
        "sizes and foreground intensities, and derive the target spacing, 2D or 3D, patch "
        "and batch size within the budget, normalisation and network. Writes RUN/plan.json.")
    add_dataset_arguments(parser)
    add_plan_arguments(parser)
    parser.add_argument("--batch-size", type=int, help="batch size (default: fills the budget)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from voxelwise.tasks.segmentation.train import open_training_dataset, replan

    config = segmentation_config(args)
    dataset = open_training_dataset(args.data, args.out, args.db)
    plan = replan(dataset, args.out, config.plan)
    print(f"{len(dataset.cases)} cases, {plan.fingerprint['patients']} patients "
          f"({len(plan.fingerprint['positive_cases'])} cases with foreground); median spacing "
          f"{_mm(plan.fingerprint['median_spacing_mm'])}, median shape "
          f"{[int(s) for s in plan.fingerprint['median_shape']]}")
    print(f"plan: {plan.dims}D {plan.model['name']}, target spacing {_mm(plan.spacing_mm)}, "
          f"patch {plan.patch_size}, batch {plan.batch_size}, normalisation "
          f"{', '.join(n['scheme'] for n in plan.normalization)}, budget {plan.budget['name']}")
    print(f"wrote {args.out / 'plan.json'}")
    return 0


def _mm(values: list[float]) -> str:
    return " x ".join(f"{v:.3g}" for v in values) + " mm"
