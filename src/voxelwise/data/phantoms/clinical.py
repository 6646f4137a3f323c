"""Synthetic clinical records of the head-CT phantom, and the outcome formula they follow.

Inputs per patient: age, the admission haematoma volume H (mL, label 1 of the admission label
map) and the admission midline shift S (mm); ``e`` is the phantom's ``imaging_effect`` and
``e1 = min(e, 1)``. With N(0, s) a normal draw and Exp(m) an exponential draw of mean m:

    burden   = 0.6 * log1p(H) + 0.12 * S
    GCS      = clip(round(15.4 - e1 * burden - (1 - e1) * B - Exp(1.8)), 3, 15)
               where B, drawn independently of the images, is 0 (probability 0.2) or U(0.3, 3)
    P(a non-reactive pupil) = sigmoid(-4.2 + 0.45 * (15 - GCS) + e1 * 0.25 * max(S - 4, 0))
    P(both non-reactive | a non-reactive pupil) = 0.45
    hypoxia ~ Bernoulli(0.15);  hypotension ~ Bernoulli(0.12)

    lp = b_age * (age - 50) + b_gcs * (GCS - 15) + b_pupils * nonreactive_pupils
         + b_hypoxia * hypoxia + b_hypotension * hypotension
         + e * (b_volume * (log1p(H) - log1p(10)) + b_shift * (S - 2)) + N(0, noise_sd)

    cumulative hazard of death   Lambda(t) = exp(intercept + lp) * (t / 180) ** shape
    survival time T: drawn from that Weibull model given survival to the last scan (the patient
        was alive at every scan), death = event = T <= 180, survival_days = min(ceil(T), 180)
    GOS-E at 6 months: 1 if dead, else 8 - (number of cut points below lp + N(0, gose_sd)),
        a value from 2 (vegetative) to 8 (upper good recovery)

With ``imaging_effect = 0`` (the control phantom) the outcome and GCS do not depend on the
images at all: imaging adds nothing to the clinical variables. With the default 1 the imaging
terms are the strongest single predictor, so a model with imaging beats clinical-only.
The coefficients are the fields of `OutcomeModel` and are written to the phantom's manifest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

PUPILS = ("both", "one", "none")
"""Pupil reactivity values: both reactive, one reactive, none reactive."""


@dataclass(frozen=True)
class OutcomeModel:
    """Coefficients of the outcome formula (see the module docstring)."""

    b_age: float = 0.04              # per year above 50
    b_gcs: float = -0.2              # per GCS point (GCS - 15 is <= 0)
    b_pupils: float = 0.55           # per non-reactive pupil
    b_hypoxia: float = 0.45
    b_hypotension: float = 0.55
    b_volume: float = 0.9            # per unit of log1p(haematoma mL)
    b_shift: float = 0.18            # per mm of midline shift
    noise_sd: float = 0.35
    intercept: float = -2.2
    shape: float = 0.6               # Weibull shape (< 1: most deaths early)
    horizon_days: int = 180
    gose_sd: float = 0.7
    gose_cuts: tuple[float, ...] = (-0.8, -0.2, 0.3, 0.8, 1.3, 1.9)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "gose_cuts": list(self.gose_cuts)}


@dataclass(frozen=True)
class ClinicalRecord:
    """One patient's row of ``clinical/<CENTER>.csv``."""

    patient_id: str
    age: int
    sex: str
    gcs: int
    pupils: str
    hypoxia: int
    hypotension: int
    gose: int
    death: int
    survival_days: int
    event: int
    linear_predictor: float   # kept in the manifest, not in the CSV

    def row(self) -> dict[str, object]:
        row = asdict(self)
        del row["linear_predictor"]
        return row


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def sample_clinical(rng: np.random.Generator, patient_id: str, age: int, sex: str,
                    haematoma_ml: float, shift_mm: float, last_scan_day: int,
                    imaging_effect: float, model: OutcomeModel | None = None) -> ClinicalRecord:
    """Draw admission clinical variables and 6-month outcome from the formula above."""
    model = model or OutcomeModel()
    e1 = min(imaging_effect, 1.0)
    burden = 0.6 * math.log1p(haematoma_ml) + 0.12 * shift_mm
    unrelated = 0.0 if rng.random() < 0.2 else rng.uniform(0.3, 3.0)  # burden-like, not imaging
    gcs = int(np.clip(round(15.4 - e1 * burden - (1 - e1) * unrelated - rng.exponential(1.8)),
                      3, 15))
    p_one = _sigmoid(-4.2 + 0.45 * (15 - gcs) + e1 * 0.25 * max(shift_mm - 4.0, 0.0))
    nonreactive = 0
    if rng.random() < p_one:
        nonreactive = 2 if rng.random() < 0.45 else 1
    hypoxia = int(rng.random() < 0.15)
    hypotension = int(rng.random() < 0.12)

    imaging = (model.b_volume * (math.log1p(haematoma_ml) - math.log1p(10.0))
               + model.b_shift * (shift_mm - 2.0))
    lp = (model.b_age * (age - 50) + model.b_gcs * (gcs - 15) + model.b_pupils * nonreactive
          + model.b_hypoxia * hypoxia + model.b_hypotension * hypotension
          + imaging_effect * imaging + rng.normal(0.0, model.noise_sd))

    horizon = model.horizon_days
    rate = math.exp(model.intercept + lp)
    already = (last_scan_day / horizon) ** model.shape
    time = horizon * (already + rng.exponential(1.0) / rate) ** (1 / model.shape)
    event = int(time <= horizon)
    survival_days = min(math.ceil(time), horizon)
    ordinal = lp + rng.normal(0.0, model.gose_sd)
    gose = 1 if event else 8 - int(np.searchsorted(np.asarray(model.gose_cuts), ordinal))
    return ClinicalRecord(
        patient_id=patient_id, age=age, sex=sex, gcs=gcs, pupils=PUPILS[nonreactive],
        hypoxia=hypoxia, hypotension=hypotension, gose=gose, death=event,
        survival_days=survival_days, event=event, linear_predictor=round(lp, 4))
