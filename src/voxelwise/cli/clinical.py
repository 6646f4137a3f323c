"""`voxelwise clinical import FILE.csv --center CODE`: clinical records by pseudonym."""

from __future__ import annotations

import argparse
from pathlib import Path

from voxelwise.cli.common import add_repository_arguments, open_repository


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("clinical", help="import clinical data for patients")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = actions.add_parser(
        "import", help="link a center's clinical CSV to its pseudonymised patients",
        description="Rows are matched by the original patient ID (turned into the study's "
        "keyed pseudonym); the ID itself and identifying columns are never stored.")
    imp.add_argument("file", type=Path, metavar="FILE.csv")
    imp.add_argument("--center", required=True, help="center code the rows belong to")
    imp.add_argument("--id-column", default="patient_id",
                     help="column holding the original patient ID (default patient_id)")
    imp.add_argument("--keep-valid", action="store_true",
                     help="import the valid rows even when others are rejected")
    add_repository_arguments(imp, key=True)
    imp.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    from voxelwise.ingest.clinical import import_clinical

    with open_repository(args) as repository:
        report = import_clinical(args.file, repository, args.center, id_column=args.id_column,
                                 key_path=args.key, keep_valid=args.keep_valid)
    print("\n".join(report.summary_lines()))
    return 0
