"""Patient-level train / validation / test splits and k-fold cross-validation.

Patients, never images, are assigned: all time points of a patient land in one split. Patients
are stratified by lesion presence (a patient is positive when any of its cases has foreground):
each stratum is shuffled with the seed and dealt round-robin, first to the test set (its share
``test_fraction``), then to the ``folds`` folds. Every validation fold and the test set must hold
a positive patient, or the split is refused with the counts that make it impossible.

With ``patient_strata`` (a key per patient, e.g. which of several findings it shows: see
`finding_strata`), each of the two strata is shuffled and then ordered by that key before the
test patients are taken at even steps and the rest dealt round-robin, so that every finding, not
only the first, is spread over the test set and the folds in proportion.

``splits.json``::

    {"0": {"train": [case ids], "validation": [case ids]}, "1": {...}, ..., "test": [case ids]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxelwise.errors import InputError
from voxelwise.fileio import write_text_atomic


@dataclass
class Splits:
    """Case ids per fold (train, validation) and the held-out test cases."""

    folds: list[dict[str, list[str]]]
    test: list[str]

    def as_dict(self) -> dict[str, object]:
        return {**{str(k): fold for k, fold in enumerate(self.folds)}, "test": self.test}

    def save(self, path: str | Path) -> Path:
        return write_text_atomic(path, json.dumps(self.as_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Splits:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            folds = [data[str(k)] for k in range(len(data) - 1)]
            return cls([{"train": list(f["train"]), "validation": list(f["validation"])}
                        for f in folds], list(data["test"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(path, f"not a splits file ({type(error).__name__}: {error})") \
                from error


def finding_strata(patient_findings: Mapping[str, Sequence[int]]) -> dict[str, str]:
    """A stratum key per patient from its 0/1 findings (1 when any of its cases shows one):
    the rarest findings first, so that ordering by the key groups their carriers together."""
    if not patient_findings:
        return {}
    matrix = np.array([list(v) for v in patient_findings.values()], dtype=int).reshape(
        len(patient_findings), -1)
    rarest = np.argsort(matrix.sum(axis=0), kind="stable")
    return {p: "".join("1" if row[j] else "0" for j in rarest)
            for p, row in zip(patient_findings, matrix, strict=True)}


def _ordered(patients: list[str], rng: np.random.Generator,
             strata: Mapping[str, str] | None) -> list[str]:
    """Shuffled; then, with strata, stably grouped by stratum key (carriers of each together)."""
    order = [patients[i] for i in rng.permutation(len(patients))]
    if strata:
        order.sort(key=lambda p: strata.get(p, ""), reverse=True)
    return order


def _deal(patients: list[str], parts: int, rng: np.random.Generator,
          offset: int = 0, strata: Mapping[str, str] | None = None) -> list[list[str]]:
    order = _ordered(patients, rng, strata)
    buckets: list[list[str]] = [[] for _ in range(parts)]
    for index, patient in enumerate(order):
        buckets[(index + offset) % parts].append(patient)
    return buckets


def _test_patients(strata: dict[bool, list[str]], fraction: float,
                   rng: np.random.Generator,
                   patient_strata: Mapping[str, str] | None = None) -> set[str]:
    chosen: set[str] = set()
    for positive in (True, False):
        members = strata[positive]
        count = int(round(fraction * len(members)))
        if positive and fraction > 0 and members:
            count = max(count, 1)
        if patient_strata and count:
            order = _ordered(members, rng, patient_strata)  # every len/count-th, from a start
            step = len(order) / count
            start = rng.random() * step
            chosen |= {order[min(int(start + k * step), len(order) - 1)] for k in range(count)}
            continue
        order = [members[i] for i in rng.permutation(len(members))]
        chosen |= set(order[:count])
    return chosen


def make_splits(case_patients: Mapping[str, str], positive_cases: Sequence[str] | set[str],
                folds: int = 5, test_fraction: float = 0.2, seed: int = 0,
                source: str | Path | None = None,
                patient_strata: Mapping[str, str] | None = None) -> Splits:
    """Split cases by patient, stratified by lesion presence (``source`` names the dataset)
    and, with ``patient_strata``, by those keys within it (module docstring).

    ``folds=1`` is a single hold-out split (a fifth of the non-test patients validate).
    """
    if not case_patients:
        raise InputError(source, "empty dataset: nothing to split")
    if folds < 1:
        raise ValueError(f"folds must be at least 1, not {folds}")
    positive_set = set(positive_cases)
    by_patient: dict[str, list[str]] = {}
    for case, patient in sorted(case_patients.items()):
        by_patient.setdefault(patient, []).append(case)
    patient_positive = {p: any(c in positive_set for c in cases)
                        for p, cases in by_patient.items()}
    strata = {flag: sorted(p for p, v in patient_positive.items() if v == flag)
              for flag in (True, False)}
    rng = np.random.default_rng(seed)
    test = _test_patients(strata, test_fraction, rng, patient_strata)
    remaining = {flag: [p for p in strata[flag] if p not in test] for flag in (True, False)}
    parts = max(folds, 5) if folds == 1 else folds
    buckets_pos = _deal(remaining[True], parts, rng, strata=patient_strata)
    buckets_neg = _deal(remaining[False], parts, rng, offset=len(remaining[True]),
                        strata=patient_strata)
    chosen_folds = range(1) if folds == 1 else range(folds)
    result: list[dict[str, list[str]]] = []
    for fold in chosen_folds:
        validation = set(buckets_pos[fold]) | set(buckets_neg[fold])
        train = [p for p in by_patient if p not in test and p not in validation]
        result.append({"train": _cases(by_patient, train),
                       "validation": _cases(by_patient, validation)})
    splits = Splits(result, _cases(by_patient, test))
    check_splits(splits, by_patient, positive_set, source, strata)
    return splits


def _cases(by_patient: dict[str, list[str]], patients: set[str] | list[str]) -> list[str]:
    return sorted(case for patient in sorted(patients) for case in by_patient[patient])


def check_splits(splits: Splits, by_patient: dict[str, list[str]], positive: set[str],
                 source: str | Path | None, strata: dict[bool, list[str]]) -> None:
    """Refuse splits with an empty or all-negative part (naming the counts)."""
    counts = f"{len(strata[True])} positive and {len(strata[False])} negative patients"
    parts = [(f"fold {k} {name}", fold[name]) for k, fold in enumerate(splits.folds)
             for name in ("train", "validation")]
    if splits.test:
        parts.append(("test", splits.test))
    for name, cases in parts:
        if not cases:
            raise InputError(source, f"{name} split is empty ({counts}); use fewer folds or "
                             "a smaller test fraction")
        if not any(case in positive for case in cases):
            raise InputError(source, f"{name} split has no positive case ({counts}); use fewer "
                             "folds or a smaller test fraction")
