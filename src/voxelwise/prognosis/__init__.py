"""Outcome and survival models on clinical + imaging features: does imaging add anything?

Every analysis compares clinical-only against clinical + imaging on the same patients and the
same outer folds of a nested cross-validation: AUC with DeLong CIs and the paired DeLong test
(binary outcomes, and GOS-E dichotomised), Harrell's C with CIs (survival, ordinal GOS-E),
calibration and Kaplan-Meier by predicted-risk group. Example::

    from voxelwise.prognosis import PrognosisConfig, run_prognosis

    config = PrognosisConfig(outcome="mortality", models=["logistic"])
    result = run_prognosis(config, "prognosis-out", clinical=["clinical/AVGH.csv"],
                           biomarkers="biomarkers.csv").check()
    print("\\n".join(result.summary_lines()))

Modules: ``config`` (the dataclass and its TOML/JSON loader), ``features`` (the join and its
account), ``models`` (nested cross-validation), ``evaluate`` (the paired comparison),
``plots``, ``outputs`` (files, manifest, report section), ``pipeline`` (`run_prognosis`).
"""

from voxelwise.prognosis.config import OUTCOMES, PrognosisConfig, load_config
from voxelwise.prognosis.evaluate import (
    Comparison,
    InsufficientData,
    PrognosisResult,
    analyse,
)
from voxelwise.prognosis.features import (
    JoinAccount,
    PrognosisData,
    biomarkers_from_phantom_labels,
    biomarkers_from_repository,
    build_dataset,
    read_biomarkers,
    read_clinical,
)
from voxelwise.prognosis.outputs import add_prognosis_section, write_outputs
from voxelwise.prognosis.pipeline import run_prognosis

__all__ = [
    "OUTCOMES",
    "Comparison",
    "InsufficientData",
    "JoinAccount",
    "PrognosisConfig",
    "PrognosisData",
    "PrognosisResult",
    "add_prognosis_section",
    "analyse",
    "biomarkers_from_phantom_labels",
    "biomarkers_from_repository",
    "build_dataset",
    "load_config",
    "read_biomarkers",
    "read_clinical",
    "run_prognosis",
    "write_outputs",
]
