"""One row per patient: clinical records joined with imaging biomarkers, and an account of the join.

Clinical tables (CSV, one row per patient, any columns; or the repository's clinical records)
are joined on the patient key with `biomarkers.csv` (one row per series, the format of
``voxelwise biomarkers``). Imaging features are the admission values (earliest scan) and the
change from admission to the last follow-up. Nothing is dropped silently: `JoinAccount` counts
and names every patient left out and why (no imaging, no clinical record, missing or invalid
outcome, missing feature values), and the analysis refuses, with the reason, what it cannot do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from voxelwise.errors import InputError
from voxelwise.prognosis.config import PrognosisConfig

BIOMARKER_KEY = "patient"
"""The patient column of biomarkers.csv (phantom patient_id, or the repository pseudonym)."""

_SHOWN = 8  # patient ids named in a message before "... and N more"


def _names(ids: Sequence[str]) -> str:
    shown = ", ".join(map(str, ids[:_SHOWN]))
    return shown + (f" ... and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")


@dataclass
class JoinAccount:
    """What happened to every row on the way to the analysed table."""

    clinical_rows: int = 0
    clinical_sources: list[str] = field(default_factory=list)
    biomarker_rows: int = 0
    biomarker_patients: int = 0
    biomarker_source: str = ""
    no_imaging: list[str] = field(default_factory=list)        # clinical rows, unknown patient
    no_clinical: list[str] = field(default_factory=list)       # imaging without clinical row
    missing_outcome: list[str] = field(default_factory=list)
    invalid_outcome: list[str] = field(default_factory=list)
    missing_values: dict[str, int] = field(default_factory=dict)  # feature -> patients
    dropped_missing_values: list[str] = field(default_factory=list)
    missing_policy: str = "impute"
    with_followup: int = 0
    analysed: int = 0

    def lines(self) -> list[str]:
        """The account in words, one line per fact (for the terminal and the report)."""
        out = [f"clinical: {self.clinical_rows} rows from {', '.join(self.clinical_sources)}",
               f"imaging: {self.biomarker_rows} series of {self.biomarker_patients} patients "
               f"(source {self.biomarker_source or 'unnamed'}; {self.with_followup} with a "
               "follow-up scan)"]
        dropped = [("clinical rows for patients without imaging (unknown patients)",
                    self.no_imaging),
                   ("patients with imaging but no clinical record", self.no_clinical),
                   ("patients with a missing outcome", self.missing_outcome),
                   ("patients with an invalid outcome value", self.invalid_outcome),
                   ("patients with missing feature values (missing = 'drop')",
                    self.dropped_missing_values)]
        out += [f"left out: {len(ids)} {why}: {_names(ids)}" for why, ids in dropped if ids]
        if self.missing_values and self.missing_policy == "impute":
            counts = ", ".join(f"{k} {v}" for k, v in self.missing_values.items())
            out.append(f"missing values imputed (median of the training folds), patients per "
                       f"feature: {counts}")
        out.append(f"analysed: {self.analysed} patients")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class PrognosisData:
    """The analysed table: features and outcome of each patient, in the same order."""

    patients: list[str]
    clinical: pd.DataFrame           # numeric, one column per encoded clinical feature
    imaging: pd.DataFrame            # numeric, one column per imaging feature
    outcome: np.ndarray              # 0/1 (binary), 1-8 (gose) or time in days (survival)
    time: np.ndarray | None          # survival days, when the clinical table has them
    event: np.ndarray | None         # 1 = death observed, when the clinical table has it
    account: JoinAccount
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.patients)


# ----------------------------------------------------------------------------- reading


def read_clinical(paths: Iterable[str | Path], patient_column: str = "patient_id"
                  ) -> pd.DataFrame:
    """Clinical CSVs stacked into one table (``_source`` names each row's file).

    Refuses a file without the patient column and a patient found twice (the row to trust
    would be a guess); rows without a patient id are refused with their line numbers.
    """
    frames = []
    for path in map(Path, paths):
        try:
            frame = pd.read_csv(path, dtype={patient_column: str})
        except (OSError, ValueError) as error:
            raise InputError(path, f"cannot be read as CSV: {error}") from error
        if patient_column not in frame.columns:
            raise InputError(path, f"has no column {patient_column!r} (columns: "
                                   f"{', '.join(map(str, frame.columns))})")
        blank = frame[patient_column].isna() | (frame[patient_column].str.strip() == "")
        if blank.any():
            lines = [str(i + 2) for i in np.flatnonzero(blank.to_numpy())]
            raise InputError(path, f"rows without {patient_column} on lines {_names(lines)}")
        frame[patient_column] = frame[patient_column].str.strip()
        frame["_source"] = path.name
        frames.append(frame)
    if not frames:
        raise InputError(None, "no clinical table given")
    table = pd.concat(frames, ignore_index=True)
    twice = table[patient_column][table[patient_column].duplicated()].unique().tolist()
    if twice:
        files = sorted(table.loc[table[patient_column].isin(twice), "_source"].unique())
        raise InputError(Path(files[0]), f"{len(twice)} patients have more than one clinical "
                         f"row (in {', '.join(files)}): {_names(twice)}")
    return table


def read_biomarkers(path: str | Path, source: str | None = None) -> pd.DataFrame:
    """biomarkers.csv rows of one source (``source``; needed when the file holds several)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={BIOMARKER_KEY: str, "source": str})
    except (OSError, ValueError) as error:
        raise InputError(path, f"cannot be read as CSV: {error}") from error
    return select_biomarkers(table, source, path)


def select_biomarkers(table: pd.DataFrame, source: str | None, path: str | Path | None = None
                      ) -> pd.DataFrame:
    """Check a biomarkers table's key columns and keep the rows of one ``source``."""
    missing = [c for c in (BIOMARKER_KEY, "days_since_admission") if c not in table.columns]
    if missing:
        raise InputError(path, f"has no column {', '.join(missing)}; is this a biomarkers.csv?")
    table = table.copy()
    table[BIOMARKER_KEY] = table[BIOMARKER_KEY].astype(str).str.strip()
    sources = sorted(table["source"].dropna().unique()) if "source" in table.columns else []
    if source is not None:
        if source not in sources:
            raise InputError(path, f"holds no rows of source {source!r} (sources: "
                                   f"{', '.join(sources) or 'none'})")
        table = table[table["source"] == source]
    elif len(sources) > 1:
        raise InputError(path, f"holds {len(sources)} sources ({', '.join(sources)}); choose "
                               "one with --source")
    if table.empty:
        raise InputError(path, "holds no rows")
    return table.reset_index(drop=True)


def biomarkers_from_phantom_labels(labels_csv: str | Path) -> pd.DataFrame:
    """The phantom's ground truth (labels.csv) in the biomarkers.csv format (source "truth").

    Only the columns the phantom knows are filled: haematoma_ml, oedema_ml, midline_shift_mm,
    and haematoma_lesions from lesion_count (the bleeds placed). For tests and the demo when no
    measured biomarkers are at hand.
    """
    path = Path(labels_csv)
    try:
        labels = pd.read_csv(path, dtype={"patient_id": str})
    except (OSError, ValueError) as error:
        raise InputError(path, f"cannot be read as CSV: {error}") from error
    needed = ["patient_id", "days_since_admission", "series_instance_uid", "haematoma_ml",
              "oedema_ml", "midline_shift_mm", "lesion_count"]
    missing = [c for c in needed if c not in labels.columns]
    if missing:
        raise InputError(path, f"has no column {', '.join(missing)}; is this a phantom "
                               "labels.csv?")
    return pd.DataFrame({
        "case": labels["label_map"].map(lambda p: Path(str(p)).name.split(".")[0])
        if "label_map" in labels else labels["series_instance_uid"],
        BIOMARKER_KEY: labels["patient_id"], "series_instance_uid": labels["series_instance_uid"],
        "days_since_admission": labels["days_since_admission"], "source": "truth",
        "haematoma_ml": labels["haematoma_ml"], "oedema_ml": labels["oedema_ml"],
        "haematoma_lesions": labels["lesion_count"],
        "midline_shift_mm": labels["midline_shift_mm"]})


def clinical_from_repository(repository: Any) -> pd.DataFrame:
    """The repository's clinical records, one row per patient, keyed by pseudonym
    (column ``patient``, the key biomarkers.csv uses in repository mode)."""
    from sqlalchemy import select

    from voxelwise.store import ClinicalRecord, Patient

    with repository.session() as session:
        rows = [{**(variables or {}), BIOMARKER_KEY: pseudonym} for pseudonym, variables in
                session.execute(select(Patient.pseudonym, ClinicalRecord.variables)
                                .join(ClinicalRecord, ClinicalRecord.patient_id == Patient.id))]
    if not rows:
        raise InputError(repository.root, "holds no clinical records; import them with "
                                          "`voxelwise clinical import`")
    table = pd.DataFrame(rows)
    table["_source"] = "repository"
    return table


def biomarkers_from_repository(repository: Any, source: str | None = None) -> pd.DataFrame:
    """The biomarkers stored by ``voxelwise biomarkers --repo`` in the biomarkers.csv format,
    one row per series, keyed by pseudonym; rows of one ``source`` (needed when it holds
    several: "ground truth" and model runs)."""
    from voxelwise.store.biomarkers import biomarker_rows

    with repository.session() as session:
        rows = biomarker_rows(session)
    if not rows:
        raise InputError(repository.root, "holds no biomarkers; measure them with "
                                          "`voxelwise biomarkers --repo`, or give --biomarkers")
    table = pd.DataFrame(rows)
    table["days_since_admission"] = pd.to_numeric(table["days_since_admission"], errors="coerce")
    return select_biomarkers(table, source, repository.root)


# ----------------------------------------------------------------------------- features


def imaging_table(biomarkers: pd.DataFrame, config: PrognosisConfig) -> pd.DataFrame:
    """One row per patient: admission values of ``imaging_features`` and, when some patient has
    a follow-up, ``<name>_change`` (last follow-up minus admission) of ``change_features``."""
    wanted = list(dict.fromkeys([*config.imaging_features, *config.change_features]))
    missing = [c for c in wanted if c not in biomarkers.columns]
    if missing:
        raise InputError(None, f"biomarkers table has no column {', '.join(missing)} "
                               f"(columns: {', '.join(map(str, biomarkers.columns))})")
    ordered = biomarkers.sort_values([BIOMARKER_KEY, "days_since_admission"], kind="stable")
    values = ordered[[BIOMARKER_KEY, *wanted]].copy()
    for column in wanted:
        values[column] = pd.to_numeric(values[column], errors="coerce")
    grouped = values.groupby(BIOMARKER_KEY, sort=True)
    first, last, count = grouped.first(), grouped.last(), grouped.size()
    table = first[list(config.imaging_features)].copy()
    for column in config.log_features:
        if column in table.columns:
            table[column] = np.log1p(table[column].clip(lower=0))
    if (count > 1).any():
        for column in config.change_features:
            table[f"{column}_change"] = (last[column] - first[column]).where(count > 1)
    table.attrs["with_followup"] = int((count > 1).sum())
    return table


def encode_clinical(table: pd.DataFrame, config: PrognosisConfig) -> pd.DataFrame:
    """The clinical features as numbers: encodings map strings to values, ``one_hot`` columns
    become 0/1 indicators (first category left out), the rest must be numeric. A value that
    cannot be turned into a number is refused, never turned silently into a missing value."""
    columns = [*config.clinical_features, *config.one_hot]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        known = [c for c in table.columns if not str(c).startswith("_")]
        raise InputError(None, f"clinical table has no column {', '.join(missing)} (columns: "
                               f"{', '.join(map(str, known))})")
    out = pd.DataFrame(index=table.index)
    for column in config.clinical_features:
        raw = table[column]
        if column in config.encodings:
            mapping = config.encodings[column]
            unknown = sorted({str(v) for v in raw.dropna() if str(v) not in mapping})
            if unknown:
                raise InputError(None, f"clinical column {column!r} holds values without an "
                                       f"encoding: {', '.join(unknown)} (known: "
                                       f"{', '.join(mapping)})")
            out[column] = raw.map(lambda v, m=mapping: math.nan if pd.isna(v) else m[str(v)])
        else:
            number = pd.to_numeric(raw, errors="coerce")
            bad = sorted({str(v) for v in raw[number.isna() & raw.notna()]})
            if bad:
                raise InputError(None, f"clinical column {column!r} is not numeric: "
                                       f"{', '.join(bad[:5])}; give it an encoding or list it "
                                       "in one_hot")
            out[column] = number
    for column in config.one_hot:
        categories = sorted({str(v) for v in table[column].dropna()})
        for category in categories[1:]:
            out[f"{column}={category}"] = table[column].map(
                lambda v, c=category: math.nan if pd.isna(v) else float(str(v) == c))
    return out.astype(float)


def _outcome(table: pd.DataFrame, config: PrognosisConfig) -> tuple[pd.Series, pd.Series]:
    """(outcome values, valid mask) of ``config.outcome``; missing values are nan."""
    def column(name: str) -> pd.Series:
        if name not in table.columns:
            raise InputError(None, f"clinical table has no outcome column {name!r} "
                                   f"(outcome {config.outcome})")
        return pd.to_numeric(table[name], errors="coerce")

    if config.outcome == "mortality":
        values = column(config.death_column)
        return values, values.isin([0, 1])
    if config.outcome in ("unfavourable", "gose"):
        gose = column(config.gose_column)
        valid = gose.isin(range(1, 9))
        if config.outcome == "gose":
            return gose, valid
        return (gose <= config.unfavourable_max_gose).astype(float).where(gose.notna()), valid
    time, event = column(config.time_column), column(config.event_column)
    valid = (time > 0) & event.isin([0, 1])
    return time.where(event.notna()), valid


def build_dataset(clinical: pd.DataFrame, biomarkers: pd.DataFrame, config: PrognosisConfig,
                  patient_column: str | None = None) -> PrognosisData:
    """Join clinical rows and biomarkers per patient, encode, and account for every drop."""
    key = patient_column or config.patient_column
    if key not in clinical.columns:
        raise InputError(None, f"clinical table has no patient column {key!r}")
    account = JoinAccount(
        clinical_rows=len(clinical), missing_policy=config.missing,
        clinical_sources=sorted(clinical["_source"].unique()) if "_source" in clinical else [],
        biomarker_rows=len(biomarkers), biomarker_patients=biomarkers[BIOMARKER_KEY].nunique(),
        biomarker_source=", ".join(sorted(biomarkers["source"].dropna().unique()))
        if "source" in biomarkers else "")
    imaging = imaging_table(biomarkers, config)
    account.with_followup = imaging.attrs.get("with_followup", 0)
    clinical = clinical.set_index(clinical[key].astype(str))
    account.no_imaging = sorted(set(clinical.index) - set(imaging.index))
    account.no_clinical = sorted(set(imaging.index) - set(clinical.index))
    patients = sorted(set(clinical.index) & set(imaging.index))
    clinical, imaging = clinical.loc[patients], imaging.loc[patients]

    outcome, valid = _outcome(clinical, config)
    account.missing_outcome = [p for p in patients if pd.isna(outcome[p])]
    account.invalid_outcome = [p for p in patients if not pd.isna(outcome[p]) and not valid[p]]
    keep = [p for p in patients if valid[p]]
    encoded = encode_clinical(clinical.loc[keep], config)
    imaging = imaging.loc[keep]
    features = pd.concat([encoded, imaging], axis=1)
    account.missing_values = {c: int(n) for c, n in features.isna().sum().items() if n}
    if config.missing == "drop":
        account.dropped_missing_values = [p for p in keep if features.loc[p].isna().any()]
        keep = [p for p in keep if p not in set(account.dropped_missing_values)]
    notes = []
    empty = [c for c in features.columns if features.loc[keep, c].isna().all()]
    if empty:
        notes.append(f"features without any value, left out: {', '.join(empty)}")
    account.analysed = len(keep)
    time, event = _survival(clinical.loc[keep], config)
    return PrognosisData(
        patients=keep, clinical=encoded.loc[keep].drop(columns=empty, errors="ignore"),
        imaging=imaging.loc[keep].drop(columns=empty, errors="ignore"),
        outcome=outcome.loc[keep].to_numpy(dtype=float), time=time, event=event,
        account=account, notes=notes)


def _survival(clinical: pd.DataFrame, config: PrognosisConfig
              ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Survival days and event of each patient, when the table has both and they are complete."""
    if config.time_column not in clinical or config.event_column not in clinical:
        return None, None
    time = pd.to_numeric(clinical[config.time_column], errors="coerce")
    event = pd.to_numeric(clinical[config.event_column], errors="coerce")
    if time.isna().any() or not event.isin([0, 1]).all():
        return None, None
    return time.to_numpy(dtype=float), event.to_numpy(dtype=int)
