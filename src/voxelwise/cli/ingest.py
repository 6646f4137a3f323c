"""`voxelwise ingest SRC --center CODE`: de-identify a center's DICOM into the repository."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from voxelwise.cli.common import add_repository_arguments, open_repository


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest", help="de-identify DICOM from a center and store it with quality control",
        description="Finds DICOM files under SRC by content, de-identifies them (DICOM PS3.15 "
        "Basic Profile, retaining longitudinal information with modified dates and patient "
        "characteristics), stores them, checks each series and records it. Safe to re-run.")
    parser.add_argument("source", type=Path, metavar="SRC", help="folder of DICOM files")
    parser.add_argument("--center", required=True, help="center code, e.g. C01")
    parser.add_argument("--center-name", help="the center's name, shown in summaries")
    parser.add_argument("--report", type=Path,
                        help="write the full report (with source file names) as JSON here; "
                        "keep it at the site, it may name patients")
    add_repository_arguments(parser, key=True)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from voxelwise.fileio import write_text_atomic
    from voxelwise.ingest.pipeline import ingest_folder

    with open_repository(args) as repository:
        report = ingest_folder(args.source, repository, args.center, key_path=args.key,
                               center_name=args.center_name)
    print("\n".join(report.summary_lines()))
    if args.report:
        write_text_atomic(args.report, json.dumps(report.as_dict(), indent=2))
        print(f"report: {args.report}")
    return 1 if report.counts()["series_failed"] else 0
