"""`run_prognosis`: from files (or the repository) to the written comparison, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from voxelwise.prognosis.config import PrognosisConfig
from voxelwise.prognosis.evaluate import PrognosisResult, analyse
from voxelwise.prognosis.features import (
    BIOMARKER_KEY,
    biomarkers_from_repository,
    build_dataset,
    clinical_from_repository,
    read_biomarkers,
    read_clinical,
    select_biomarkers,
)
from voxelwise.prognosis.outputs import write_outputs


def run_prognosis(config: PrognosisConfig, out_dir: str | Path | None = None, *,
                  clinical: Sequence[str | Path] | pd.DataFrame | None = None,
                  biomarkers: str | Path | pd.DataFrame | None = None,
                  repository: Any = None, verbose: bool = False) -> PrognosisResult:
    """Join, cross-validate, compare, and (with ``out_dir``) write every output.

    ``clinical``: CSV paths (joined on ``config.patient_column``) or a table; with
    ``repository`` (an open `voxelwise.store.Repository`) and no ``clinical``, its clinical
    records are used, keyed by pseudonym. ``biomarkers``: biomarkers.csv or a table in its
    format; with ``repository`` and no ``biomarkers``, the repository's biomarkers table.
    A refusal is returned as ``result.refusal`` (its manifest is written too); call
    ``result.check()`` to raise it.
    """
    key = config.patient_column
    if clinical is None:
        if repository is None:
            raise ValueError("give clinical tables or a repository")
        table, key = clinical_from_repository(repository), BIOMARKER_KEY
    elif isinstance(clinical, pd.DataFrame):
        table = clinical
    else:
        table = read_clinical(clinical, key)
    if biomarkers is None:
        if repository is None:
            raise ValueError("give biomarkers (biomarkers.csv or a table in its format) or a "
                             "repository")
        imaging = biomarkers_from_repository(repository, config.biomarker_source)
    elif isinstance(biomarkers, pd.DataFrame):
        imaging = select_biomarkers(biomarkers, config.biomarker_source)
    else:
        imaging = read_biomarkers(biomarkers, config.biomarker_source)
    data = build_dataset(table, imaging, config, patient_column=key)
    if verbose:
        print("\n".join(data.account.lines()), flush=True)
    result = analyse(data, config)
    if out_dir is not None:
        inputs = {"clinical": "repository" if clinical is None else
                  ("table" if isinstance(clinical, pd.DataFrame) else [str(p) for p in clinical]),
                  "biomarkers": "repository" if biomarkers is None else
                  ("table" if isinstance(biomarkers, pd.DataFrame) else str(biomarkers)),
                  "repository": str(repository.root) if repository is not None else None}
        write_outputs(result, out_dir, inputs)
    return result
