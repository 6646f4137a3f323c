"""`voxelwise repo summary`: patients and series per center, QC-passed counts."""

from __future__ import annotations

import argparse
from pathlib import Path

from voxelwise.cli.common import (
    add_repository_arguments,
    format_table,
    open_repository,
    rows_to_csv,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("repo", help="what the study repository holds")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    summary = actions.add_parser("summary", help="patients, studies and series per center")
    add_repository_arguments(summary)
    summary.add_argument("--csv", type=Path, help="also write the table as CSV")
    summary.set_defaults(run=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    from voxelwise.fileio import write_text_atomic
    from voxelwise.store import SUMMARY_COLUMNS, summary

    with open_repository(args) as repository, repository.session() as session:
        rows = summary(session)
    print(format_table(rows, SUMMARY_COLUMNS))
    if args.csv:
        write_text_atomic(args.csv, rows_to_csv(rows, SUMMARY_COLUMNS))
    return 0
