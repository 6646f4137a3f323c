"""`voxelwise train`: train a network for a task (segmentation, or ICH detection).

Segmentation runs the stages its run folder lacks (plan, splits, preprocessing), then trains the
chosen folds. ``--task ich-detection`` hands the same arguments (plus those the classification
task adds) to ``voxelwise.tasks.classification.cli_train``.
"""

from __future__ import annotations

import argparse
from typing import Any

from voxelwise.cli.plan import add_dataset_arguments, add_plan_arguments, segmentation_config

TASKS = ("segmentation", "ich-detection")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a network (segmentation by default; --task ich-detection)",
        description="Segmentation: plan and preprocess DATA into RUN when missing, make "
        "patient-level splits, train fold(s) into RUN/fold_K/ with a checkpoint every epoch; "
        "--resume continues an interrupted run.")
    parser.add_argument("--task", choices=TASKS, default="segmentation",
                        help="what to train (default segmentation)")
    add_dataset_arguments(parser)
    group = parser.add_argument_group("training (shared by every task)")
    group.add_argument("--epochs", type=int, help="epochs")
    group.add_argument("--batch-size", type=int, help="batch size (segmentation: from the plan)")
    group.add_argument("--learning-rate", type=float, help="initial learning rate")
    group.add_argument("--model", help="network (segmentation: unet, vnet, deepmedic; "
                       "ich-detection: vgg (default), resnet18, resnet34, resnet50, "
                       "densenet121)")
    group.add_argument("--fold", help="fold to train: a number (default 0) or 'all'")
    group.add_argument("--folds", type=int, help="number of cross-validation folds (default 5)")
    group.add_argument("--seed", type=int, help="random seed (default 0)")
    group.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    group.add_argument("--resume", action="store_true",
                       help="continue from RUN/fold_K/checkpoint_last.pt")
    group.add_argument("--patience", type=int,
                       help="stop after this many epochs without a better validation metric")
    seg = parser.add_argument_group("segmentation")
    seg.add_argument("--iterations", type=int, help="batches per epoch (default 50)")
    seg.add_argument("--loss", help="dice_ce (default), dice, ce, focal, dice_focal")
    seg.add_argument("--optimizer", choices=("sgd", "adamw"), help="default sgd (nnU-Net)")
    seg.add_argument("--schedule", choices=("poly", "cosine", "constant"), help="default poly")
    seg.add_argument("--test-fraction", type=float, help="share of patients held out (0.2)")
    seg.add_argument("--threads", type=int, help="torch CPU threads")
    seg.add_argument("--no-augmentation", action="store_true", help="train without augmentation")
    add_plan_arguments(parser, model=False)
    try:
        from voxelwise.tasks.classification import add_train_arguments
    except ImportError:
        pass
    else:
        add_train_arguments(parser)
    parser.set_defaults(run=run)


TRAINING_OPTIONS = {"epochs": "epochs", "learning_rate": "learning_rate", "seed": "seed",
                    "device": "device", "patience": "patience", "optimizer": "optimizer",
                    "schedule": "schedule", "threads": "threads",
                    "iterations": "iterations_per_epoch"}
TOP_OPTIONS = {"folds": "folds", "loss": "loss", "test_fraction": "test_fraction"}


def training_config(args: argparse.Namespace) -> Any:
    import dataclasses

    config = segmentation_config(args)
    training = {field: getattr(args, option) for option, field in TRAINING_OPTIONS.items()
                if getattr(args, option, None) is not None}
    top = {field: getattr(args, option) for option, field in TOP_OPTIONS.items()
           if getattr(args, option, None) is not None}
    if args.fold is not None:
        top["fold"] = args.fold if args.fold == "all" else int(args.fold)
    if args.no_augmentation:
        top["use_augmentation"] = False
    return dataclasses.replace(config, training=dataclasses.replace(config.training, **training),
                               **top)


def run(args: argparse.Namespace) -> int:
    if args.task == "ich-detection":
        from voxelwise.tasks.classification import cli_train

        return int(cli_train(args) or 0)
    from voxelwise.tasks.segmentation.train import train_segmentation

    if args.fold not in (None, "all") and not str(args.fold).isdigit():
        from voxelwise.errors import InputError

        raise InputError(None, f"--fold must be a number or 'all', not {args.fold!r}")
    result = train_segmentation(args.data, args.out, training_config(args), resume=args.resume,
                                db=args.db)
    for fold, summary in result.summary().items():
        dice = summary["best_val_dice"]
        print(f"fold {fold}: best validation Dice {dice:.3f} at epoch {summary['best_epoch']} "
              f"({summary['epochs']} epochs{', stopped early' if summary['stopped_early'] else ''})"
              f" -> {summary['checkpoint']}")
    print(f"wrote {args.out / 'train.json'} ({result.seconds:.0f} s)")
    return 0
