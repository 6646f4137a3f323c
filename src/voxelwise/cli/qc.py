"""`voxelwise qc`: list flagged series; accept or exclude one with a reason."""

from __future__ import annotations

import argparse

from voxelwise.cli.common import add_repository_arguments, format_table, open_repository

COLUMNS = ("center", "patient", "series_instance_uid", "slices", "qc_status", "flags",
           "decision_reason")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "qc", help="list series flagged by quality control; accept or exclude them")
    add_repository_arguments(parser)
    parser.add_argument("--all", action="store_true", help="list every series, not only flagged")
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--accept", metavar="SERIES_UID", help="accept a flagged series")
    decision.add_argument("--exclude", metavar="SERIES_UID", help="exclude a series")
    parser.add_argument("--reason", default="", help="why (required with --accept/--exclude)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from voxelwise.ingest.review import decide, list_series

    with open_repository(args) as repository:
        if args.accept or args.exclude:
            uid = args.accept or args.exclude
            decide(repository, uid, "accepted" if args.accept else "excluded", args.reason)
            print(f"series {uid}: {'accepted' if args.accept else 'excluded'} ({args.reason})")
            return 0
        rows = list_series(repository, only_flagged=not args.all)
    print(format_table(rows, COLUMNS) if rows else "no series flagged by QC")
    return 0
