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


RANGES: dict[str, tuple[float, float]] = {
    "age": (0, 120), "gcs": (3, 15), "gose": (1, 8), "death": (0, 1), "event": (0, 1),
    "hypoxia": (0, 1), "hypotension": (0, 1), "survival_days": (0, 36500),
}
"""Plausible ranges of the clinical variables the project knows; other columns are free."""
CATEGORIES: dict[str, set[str]] = {"sex": {"M", "F", "O"}, "pupils": {"both", "one", "none"}}


def check_value(column: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``column`` (None when it is, or when it is missing)."""
    if value is None:
        return None
    if column in RANGES:
        low, high = RANGES[column]
        if not isinstance(value, int | float) or not low <= value <= high:
            return f"{column}={value!r} is not a number in [{low:g}, {high:g}]"
    if column in CATEGORIES and str(value) not in CATEGORIES[column]:
        return f"{column}={value!r} is not one of {', '.join(sorted(CATEGORIES[column]))}"
    return None


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
                    options: DeidOptions = DeidOptions(),
                    keep_valid: bool = False) -> ClinicalImportReport:
    """Attach each row of ``path`` to its patient at ``center`` as the current clinical record.

    Rows with an empty ID, an unknown patient or an implausible value are rejected by line
    number. Then nothing is imported (`InputError` listing them) unless ``keep_valid`` is set,
    in which case the valid rows are imported and the rejected ones reported.
    """
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
        valid = []
        for line, row in enumerate(rows, start=2):
            original = (row.get(id_column) or "").strip()
            if not original:
                report.problems.append(f"line {line}: empty {id_column}")
                continue
            pseudonym = pseudonymizer.patient_pseudonym(original, options.patient_id_issuer)
            patient = patients.get(pseudonym)
            if patient is None:
                report.problems.append(f"line {line}: no such patient at center {center} "
                                       "(no images ingested for this ID)")
                continue
            variables = {column: parse_value(row.get(column) or "") for column in kept}
            bad = [why for column, value in variables.items()
                   if (why := check_value(column, value))]
            if bad:
                report.problems.append(f"line {line}: " + "; ".join(bad))
                continue
            valid.append((patient, variables))
        if report.problems and not keep_valid:
            shown = "; ".join(report.problems[:20])
            more = len(report.problems) - 20
            raise InputError(path, f"{len(report.problems)} row(s) rejected, nothing imported "
                             f"(use --keep-valid to import the {len(valid)} valid rows): "
                             f"{shown}" + (f" and {more} more" if more > 0 else ""))
        for patient, variables in valid:
            set_clinical_record(session, patient, variables, path.name)
            report.imported += 1
    return report
