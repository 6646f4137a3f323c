"""`voxelwise clinical import`: a center's clinical CSV linked to pseudonymised patients.

Rows are matched by the original patient ID, turned into the study's keyed pseudonym; the
original ID, and columns that look identifying (names, birth dates, addresses...), are never
stored. All rows are imported in one transaction; rows for patients the repository does not hold
are reported by line number and left out.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from voxelwise.deid import DeidOptions
from voxelwise.errors import InputError
from voxelwise.ingest.pipeline import open_pseudonymizer
from voxelwise.store import Center, Patient, Repository, set_clinical_record

IDENTIFYING_COLUMN = re.compile(
    r"name|birth|dob|address|street|zip|postcode|phone|e-?mail|mrn|accession|ssn|insurance|"
    r"social|passport", re.IGNORECASE)
"""Columns whose name matches are dropped, never stored."""


@dataclass
class ClinicalImportReport:
    source: str
    rows: int = 0
    imported: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        lines = [f"{self.source}: {self.rows} rows read, {self.imported} imported, "
                 f"{self.rows - self.imported} left out"]
        if self.dropped_columns:
            lines.append("  identifying columns dropped: " + ", ".join(self.dropped_columns))
        lines += [f"  {problem}" for problem in self.problems]
        return lines


def parse_value(text: str) -> Any:
    """A CSV cell as int, float, or string; empty cells (and NA spellings) are None."""
    text = text.strip()
    if text == "" or text.upper() in ("NA", "N/A", "NAN", "NULL", "NONE"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _read_rows(path: Path, id_column: str) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"not a readable CSV file ({error})") from error
    if id_column not in columns:
        raise InputError(path, f"no column {id_column!r} with the patient ID; columns are "
                         f"{', '.join(columns) or 'none'}")
    return columns, rows


def import_clinical(path: str | Path, repository: Repository, center: str, *,
                    id_column: str = "patient_id", key_path: Path | None = None,
                    options: DeidOptions = DeidOptions()) -> ClinicalImportReport:
    """Attach each row of ``path`` to its patient at ``center`` as the current clinical record."""
    path = Path(path)
    columns, rows = _read_rows(path, id_column)
    pseudonymizer = open_pseudonymizer(repository, key_path)
    report = ClinicalImportReport(path.name, rows=len(rows))
    report.dropped_columns = [c for c in columns if c != id_column and IDENTIFYING_COLUMN.search(c)]
    kept = [c for c in columns if c != id_column and c not in report.dropped_columns]
    with repository.session() as session:
        center_row = session.scalar(select(Center).where(Center.code == center))
        if center_row is None:
            raise InputError(path, f"center {center!r} is not in the repository; ingest its "
                             "images first")
        patients = {p.pseudonym: p for p in session.scalars(
            select(Patient).where(Patient.center_id == center_row.id))}
        for line, row in enumerate(rows, start=2):
            original = (row.get(id_column) or "").strip()
            if not original:
                report.problems.append(f"line {line}: empty {id_column}; left out")
                continue
            pseudonym = pseudonymizer.patient_pseudonym(original, options.patient_id_issuer)
            patient = patients.get(pseudonym)
            if patient is None:
                report.problems.append(f"line {line}: no such patient at center {center} "
                                       "(no images ingested for this ID); left out")
                continue
            variables = {column: parse_value(row.get(column) or "") for column in kept}
            set_clinical_record(session, patient, variables, path.name)
            report.imported += 1
    return report
