"""Arguments shared by the sub-commands that work on a study repository."""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxelwise.store import Repository


def add_repository_arguments(parser: argparse.ArgumentParser, *, key: bool = False) -> None:
    """``--repo DIR`` and ``--db URL`` (and ``--key FILE`` where pseudonyms are made)."""
    parser.add_argument("--repo", type=Path, default=Path("voxelwise-repository"),
                        help="repository folder (default ./voxelwise-repository)")
    parser.add_argument("--db", help="database URL, e.g. postgresql+psycopg://user@host/db "
                        "(default: SQLite in the repository folder, or $VOXELWISE_DB)")
    if key:
        parser.add_argument("--key", type=Path, help="de-identification key file, the same for "
                            "every center of a study (default: REPO/deid.key, created if missing)")


def open_repository(args: argparse.Namespace) -> Repository:
    from voxelwise.store import Repository

    return Repository.open(args.repo, args.db)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as an aligned plain-text table for the terminal."""
    cells = [[str(column) for column in columns]]
    cells += [["" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
             for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def rows_to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
