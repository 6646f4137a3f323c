"""`voxelwise phantom head-ct`: write a synthetic multi-center head-CT study."""

from __future__ import annotations

import argparse
from pathlib import Path

ICH_FREE_DEFAULT = 0.2  # voxelwise.data.phantoms.lesions.DEFAULT_ICH_FREE_FRACTION (not imported:
                        # `voxelwise --help` stays free of pydicom)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("phantom", help="write synthetic studies (built-in phantoms)")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    head = kinds.add_parser(
        "head-ct",
        help="multi-center head CT with haemorrhage, oedema, follow-ups and clinical data",
        description="Write DICOM series with fake PHI, ground-truth label maps (NIfTI), a "
        "study-level labels CSV and clinical CSVs per center. Interrupted runs resume.",
    )
    head.add_argument("--out", type=Path, required=True, help="output folder")
    head.add_argument("--centers", type=int, default=2, help="number of centers (default 2)")
    head.add_argument("--patients", type=int, default=4, help="patients per center (default 4)")
    head.add_argument("--followups", type=int, default=2,
                      help="follow-up scans per patient after admission (default 2)")
    head.add_argument("--size", choices=("small", "full"), default="full",
                      help="full: 512 x 512 x 32 at ~0.45 mm x 5 mm; small: 128 x 128 x 16")
    head.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    head.add_argument("--imaging-effect", type=float, default=1.0,
                      help="weight of lesion burden in the outcome; 0 writes a control study "
                      "whose outcome does not depend on imaging (default 1)")
    head.add_argument("--ich-free-fraction", type=_fraction, default=ICH_FREE_DEFAULT,
                      metavar="F", help="fraction of patients without haemorrhage on any scan, "
                      f"0-1 (default {ICH_FREE_DEFAULT}); a detector's cohort wants more "
                      "negatives, e.g. 0.5")
    head.add_argument("--overwrite", action="store_true", help="replace an existing output")
    head.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study

    study = generate_head_ct_study(
        args.out, centers=args.centers, patients=args.patients, followups=args.followups,
        size=args.size, seed=args.seed, imaging_effect=args.imaging_effect,
        overwrite=args.overwrite, ich_free_fraction=args.ich_free_fraction,
    )
    print(f"wrote {len(study.studies)} studies to {study.root} (manifest: {study.manifest})")
    return 0
