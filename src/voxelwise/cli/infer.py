"""`voxelwise infer`: segment a DICOM series, a NIfTI file or a repository series with a run."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer", help="segment an image with a trained run (NIfTI label map + DICOM SEG)",
        description="Sliding windows with Gaussian blending over every fold's model "
        "(probabilities averaged), optional flip TTA, resampled back onto the input's grid, "
        "small components removed. Writes OUT/<name>.nii.gz, OUT/<name>.seg.dcm (DICOM inputs) "
        "and the manifest OUT/<name>.json.")
    parser.add_argument("run_dir", type=Path, help="segmentation run folder (plan.json, fold_K/)")
    parser.add_argument("input", type=Path, nargs="?",
                        help="a DICOM series folder or a .nii/.nii.gz file (omit with --repo)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--series-uid", help="the series to segment, in a folder holding "
                        "several or in the repository (its de-identified UID)")
    parser.add_argument("--repo", type=Path, help="study repository to read --series-uid from")
    parser.add_argument("--db", help="database URL of the repository (default: SQLite in it, "
                        "or $VOXELWISE_DB)")
    parser.add_argument("--folds", help="fold models to average, e.g. 0,1 (default: all trained)")
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    parser.add_argument("--min-volume-ml", type=float,
                        help="remove components of a class smaller than this (mL); default: "
                        "the volumes per class chosen on the validation cases at training "
                        "(RUN/postprocessing.json), none removed when the run has none")
    parser.add_argument("--overlap", type=float, default=0.5, help="window overlap (0-1)")
    parser.add_argument("--batch-size", type=int, help="windows per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--checkpoint", default="checkpoint_best.pt",
                        help="checkpoint file in each fold folder (default checkpoint_best.pt)")
    seg = parser.add_mutually_exclusive_group()
    seg.add_argument("--seg", dest="seg", action="store_true", default=True,
                     help="also write a DICOM Segmentation for DICOM inputs (default)")
    seg.add_argument("--no-seg", dest="seg", action="store_false",
                     help="write the NIfTI label map only")
    parser.add_argument("--name", help="output file name stem (default: from the input)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from voxelwise.errors import InputError
    from voxelwise.inference import InferenceConfig, infer, parse_folds, read_input

    if args.input is None and args.repo is None:
        raise InputError(None, "give an INPUT (DICOM folder or NIfTI file) or --repo DIR "
                         "--series-uid UID")
    if not 0 <= args.overlap < 1:
        raise InputError(None, f"--overlap must be in [0, 1); got {args.overlap}")
    folds = parse_folds(args.folds)
    config = InferenceConfig(folds=None if folds is None else tuple(folds), tta=args.tta,
                             min_volume_ml=args.min_volume_ml, overlap=args.overlap,
                             batch_size=args.batch_size, device=args.device,
                             threads=args.threads, checkpoint=args.checkpoint)
    if args.input is None:
        from voxelwise.store import Repository

        with Repository.open(args.repo, args.db) as repository:
            source = read_input(series_uid=args.series_uid, repository=repository)
    else:
        source = read_input(args.input, series_uid=args.series_uid)
    manifest = infer(args.run_dir, source, args.out, config, seg=args.seg, name=args.name)
    volumes = ", ".join(f"{name} {ml:.2f} mL" for name, ml in manifest["volumes_ml"].items())
    inference = manifest["inference"]
    print(f"{source.source}: {volumes or 'no classes'} (folds {inference['folds']}, "
          f"tta {'on' if inference['tta'] else 'off'}, {inference['components_removed']} small "
          f"components removed) in {manifest['seconds']:.1f} s")
    for kind, path in manifest["outputs"].items():
        print(f"wrote {kind}: {path}")
    return 0
