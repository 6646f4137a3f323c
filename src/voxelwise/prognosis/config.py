"""What a prognosis analysis runs on: a typed configuration, loadable from TOML or JSON.

Every field is also a ``voxelwise prognosis`` option (the command line wins over the file).
Example ``prognosis.toml`` (every key optional)::

    outcome = "mortality"                  # mortality | unfavourable | gose | survival
    clinical_features = ["age", "gcs", "pupils", "hypoxia", "hypotension", "lactate"]
    one_hot = ["mechanism"]                # string columns turned into 0/1 indicators
    imaging_features = ["haematoma_ml", "oedema_ml", "haematoma_lesions", "midline_shift_mm"]
    change_features = ["haematoma_ml"]     # last follow-up minus admission
    models = ["logistic", "gradient_boosting"]
    outer_folds = 5
    inner_folds = 3
    seed = 0

    [encodings.pupils]                     # a string column as numbers
    both = 0
    one = 1
    none = 2
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from voxelwise.config import load_config_mapping
from voxelwise.errors import InputError

OUTCOMES = ("mortality", "unfavourable", "gose", "survival")
"""mortality: death (0/1); unfavourable: GOS-E <= 4; gose: GOS-E 1-8 (ordinal);
survival: time to death with censoring (Cox model)."""

BINARY_MODELS = ("logistic", "gradient_boosting")
MODELS_FOR = {"mortality": BINARY_MODELS, "unfavourable": BINARY_MODELS,
              "gose": ("ordinal",), "survival": ("cox",)}
"""The models each outcome can use; the first is the default."""


def _default_encodings() -> dict[str, dict[str, float]]:
    return {"pupils": {"both": 0.0, "one": 1.0, "none": 2.0},
            "sex": {"F": 0.0, "M": 1.0}}


@dataclass
class PrognosisConfig:
    """Columns, encodings, models, folds and seed of one clinical vs clinical + imaging analysis.

    Clinical columns are read from the clinical table (one row per patient); imaging columns from
    biomarkers.csv (one row per series): ``imaging_features`` at admission (the earliest scan),
    ``change_features`` as last follow-up minus admission (``<name>_change``; only when some
    patient has a follow-up). ``log_features`` enter as log(1 + value) (volumes are skewed).
    ``models`` empty means every model the outcome can use (`MODELS_FOR`).
    """

    outcome: str = "mortality"
    patient_column: str = "patient_id"
    clinical_features: list[str] = field(default_factory=lambda: [
        "age", "gcs", "pupils", "hypoxia", "hypotension"])
    encodings: dict[str, dict[str, float]] = field(default_factory=_default_encodings)
    one_hot: list[str] = field(default_factory=list)
    imaging_features: list[str] = field(default_factory=lambda: [
        "haematoma_ml", "oedema_ml", "haematoma_lesions", "midline_shift_mm"])
    change_features: list[str] = field(default_factory=lambda: [
        "haematoma_ml", "midline_shift_mm"])
    log_features: list[str] = field(default_factory=lambda: ["haematoma_ml", "oedema_ml"])
    biomarker_source: str | None = None
    death_column: str = "death"
    gose_column: str = "gose"
    time_column: str = "survival_days"
    event_column: str = "event"
    unfavourable_max_gose: int = 4
    models: list[str] = field(default_factory=list)
    outer_folds: int = 5
    inner_folds: int = 3
    seed: int = 0
    alpha: float = 0.05
    min_events: int = 10
    missing: str = "impute"
    risk_groups: int = 3
    n_bootstrap: int = 1000

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InputError(None, "prognosis configuration: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """What is wrong with this configuration (empty when it is usable)."""
        found = []
        if self.outcome not in OUTCOMES:
            found.append(f"outcome must be one of {', '.join(OUTCOMES)}; got {self.outcome!r}")
        else:
            allowed = MODELS_FOR[self.outcome]
            found += [f"model {m!r} does not fit outcome {self.outcome!r} (use "
                      f"{', '.join(allowed)})" for m in self.models if m not in allowed]
        outcome_columns = {self.death_column, self.gose_column, self.time_column,
                           self.event_column}
        leaking = sorted(outcome_columns & {*self.clinical_features, *self.one_hot})
        if leaking:
            found.append(f"outcome columns cannot be features: {', '.join(leaking)}")
        if self.outer_folds < 2 or self.inner_folds < 2:
            found.append("outer_folds and inner_folds must be 2 or more")
        if self.missing not in ("impute", "drop"):
            found.append(f"missing must be 'impute' or 'drop'; got {self.missing!r}")
        if self.min_events < 2:
            found.append("min_events must be 2 or more")
        if self.risk_groups < 2:
            found.append("risk_groups must be 2 or more")
        if not 0 < self.alpha < 1:
            found.append("alpha must lie in (0, 1)")
        return found

    @property
    def model_names(self) -> list[str]:
        """The models to fit: ``models``, or every model the outcome can use."""
        return list(self.models) if self.models else list(MODELS_FOR[self.outcome])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> PrognosisConfig:
        """A copy with ``changes`` (None values are ignored: "not given on the command line")."""
        values = self.as_dict()
        values.update({k: v for k, v in changes.items() if v is not None})
        return PrognosisConfig(**values)


def load_config(path: str | Path) -> PrognosisConfig:
    """A `PrognosisConfig` from a ``.toml`` or ``.json`` file; unknown keys are refused."""
    path = Path(path)
    data = load_config_mapping(path)
    known = {f.name for f in fields(PrognosisConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(path, f"unknown keys {', '.join(unknown)} (known: "
                               f"{', '.join(sorted(known))})")
    try:
        return PrognosisConfig(**data)
    except InputError as error:
        raise InputError(path, error.problem) from error
    except TypeError as error:
        raise InputError(path, str(error)) from error
