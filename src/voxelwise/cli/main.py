"""The `voxelwise` command: one sub-command per step of a study.

Each sub-command lives in its own module of this package with two functions: ``add_parser``
(declares its arguments) and ``run`` (does the work by calling the library). Heavy libraries are
imported inside ``run`` so that ``voxelwise --help`` starts at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from voxelwise import __version__
from voxelwise.cli import (
    annotations,
    biomarkers,
    clinical,
    demo,
    detect,
    dicom,
    evaluate,
    infer,
    ingest,
    phantom,
    plan,
    preprocess,
    prognosis,
    qc,
    repo,
    train,
    triage,
)
from voxelwise.errors import VoxelwiseError

COMMANDS = (phantom, dicom, ingest, qc, repo, clinical, annotations, plan, preprocess, train,
            evaluate, detect, infer, biomarkers, prognosis, triage, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxelwise",
        description="Deep-learning studies on medical images, from DICOM to validated numbers.",
    )
    parser.add_argument("--version", action="version", version=f"voxelwise {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `voxelwise` command; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except VoxelwiseError as error:
        print(f"voxelwise: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("voxelwise: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
