"""Plan decisions from fingerprints, and patient-level stratified splits."""

from __future__ import annotations

import numpy as np
import pytest

from voxelwise.data.plan import BUDGETS, PlanBudget, PlanConfig, make_plan, pooling_strides
from voxelwise.data.splits import make_splits
from voxelwise.errors import InputError


class _Dataset:
    channels = ["CT"]
    classes = {0: "background", 1: "haematoma", 2: "oedema"}

    def describe(self) -> dict:
        return {"name": "synthetic", "path": "/nowhere", "kind": "folder"}


def _fingerprint(spacing, shape, n: int = 6) -> dict:
    return {"spacings_mm": [list(spacing)] * n, "shapes": [list(shape)] * n, "cases": n,
            "patients": n, "positive_cases": [], "case_ids": [f"c{i}" for i in range(n)],
            "foreground_intensity": [{"channel": "CT", "n": 100, "mean": 50.0, "std": 20.0,
                                      "p00_5": 5.0, "p99_5": 90.0, "zero_fraction": 0.0}]}


def test_thick_slices_give_a_2d_plan() -> None:
    plan = make_plan(_Dataset(), _fingerprint((5.0, 0.45, 0.45), (32, 512, 512)),
                     PlanConfig(budget="gpu"))
    assert plan.dims == 2 and len(plan.patch_size) == 2
    assert plan.spacing_mm == pytest.approx([5.0, 0.45, 0.45])
    assert plan.normalization[0] == {"scheme": "ct", "clip": [5.0, 90.0], "mean": 50.0,
                                     "std": 20.0, "windows": [[80.0, 200.0], [600.0, 2800.0]]}
    assert plan.model_spec()["in_channels"] == 3  # the clipped CT and its two windows


def test_small_budget_coarsens_in_plane_spacing_only() -> None:
    plan = make_plan(_Dataset(), _fingerprint((5.0, 0.45, 0.45), (32, 512, 512)),
                     PlanConfig(budget="cpu"))
    assert plan.spacing_mm[0] == 5.0 and plan.spacing_mm[1] == plan.spacing_mm[2] > 1.0
    voxels = 32 * (512 * 0.45 / plan.spacing_mm[1]) ** 2
    assert voxels <= BUDGETS["cpu"].max_case_voxels * 1.01


def test_mild_anisotropy_gives_3d_with_anisotropic_pooling() -> None:
    plan = make_plan(_Dataset(), _fingerprint((2.5, 1.0, 1.0), (60, 200, 200)),
                     PlanConfig(budget="gpu"))
    assert plan.dims == 3
    strides = plan.model["kwargs"]["strides"]
    assert strides[0] == [1, 2, 2]               # the thick axis waits until the others catch up
    assert [2, 2, 2] in strides
    for axis, size in enumerate(plan.patch_size):
        assert size % int(np.prod([s[axis] for s in strides])) == 0


def test_patch_fits_the_memory_budget() -> None:
    budget = PlanBudget("tiny", None, 2 * 32**3, 8, 64)
    config = PlanConfig(budget="gpu", max_batch_voxels=budget.max_batch_voxels)
    plan = make_plan(_Dataset(), _fingerprint((1.0, 1.0, 1.0), (160, 160, 160)), config)
    assert plan.dims == 3 and plan.batch_size == 2
    assert plan.batch_size * np.prod(plan.patch_size) <= budget.max_batch_voxels
    assert plan.budget["max_batch_voxels"] == budget.max_batch_voxels


def test_every_decision_can_be_overridden() -> None:
    config = PlanConfig(budget="cpu", dims=3, spacing_mm=[5.0, 1.0, 1.0], patch_size=[8, 64, 64],
                        batch_size=3, model="deepmedic")
    plan = make_plan(_Dataset(), _fingerprint((5.0, 0.45, 0.45), (32, 512, 512)), config)
    assert (plan.dims, plan.spacing_mm, plan.patch_size, plan.batch_size) == \
        (3, [5.0, 1.0, 1.0], [8, 64, 64], 3)
    assert plan.model["name"] == "deepmedic" and plan.model["kwargs"]["factor"] == [1, 3, 3]


def test_pooling_stops_at_small_feature_maps() -> None:
    assert len(pooling_strides([64, 64], [1.0, 1.0])) == 4
    assert pooling_strides([8, 64, 64], [5.0, 1.0, 1.0])[0] == [1, 2, 2]


def _cohort(patients: int = 24, timepoints: int = 3) -> tuple[dict, list]:
    cases = {f"p{i:02d}_t{t}": f"p{i:02d}" for i in range(patients) for t in range(timepoints)}
    positive = [c for c in cases if int(c[1:3]) % 3 != 0]   # two thirds of patients positive
    return cases, positive


def test_splits_are_patient_level_stratified_and_cover_every_case() -> None:
    cases, positive = _cohort()
    splits = make_splits(cases, positive, folds=4, test_fraction=0.25, seed=1)
    test_patients = {cases[c] for c in splits.test}
    assert len(test_patients) == 6
    for fold in splits.folds:
        train = {cases[c] for c in fold["train"]}
        validation = {cases[c] for c in fold["validation"]}
        assert not (train & validation) and not (train & test_patients)
        assert not (validation & test_patients)
        assert set(fold["train"]) | set(fold["validation"]) | set(splits.test) == set(cases)
        positives = sum(c in positive for c in fold["validation"]) / len(fold["validation"])
        assert 0.4 <= positives <= 0.9   # near the cohort's 2/3
    validations = [c for fold in splits.folds for c in fold["validation"]]
    assert len(validations) == len(set(validations)) == len(cases) - len(splits.test)
    again = make_splits(cases, positive, folds=4, test_fraction=0.25, seed=1)
    assert again.as_dict() == splits.as_dict()


def test_splits_without_enough_positive_patients_are_refused() -> None:
    cases, _ = _cohort(6, 2)
    with pytest.raises(InputError, match="no positive case"):
        make_splits(cases, ["p00_t0", "p01_t0"], folds=3, test_fraction=0.2, source="data")
    with pytest.raises(InputError, match="empty dataset"):
        make_splits({}, [], source="data")


def test_ct_windows_keep_bone_apart_from_blood() -> None:
    from voxelwise.data.preprocess import normalise

    scheme = {"scheme": "ct", "clip": [5.0, 90.0], "mean": 50.0, "std": 20.0,
              "windows": [[80.0, 200.0], [600.0, 2800.0]]}
    hu = np.array([[-1000.0, 0.0, 70.0, 1500.0]], dtype=np.float32)
    channels = normalise(hu, scheme)
    assert channels.shape == (3, 1, 4)
    # the clipped channel cannot tell blood (70 HU) from bone (1500 HU) ...
    assert channels[0, 0, 3] == pytest.approx((90.0 - 50.0) / 20.0)
    assert channels[0, 0, 2] == pytest.approx((70.0 - 50.0) / 20.0)
    # ... the windows can: each maps level - width / 2 .. level + width / 2 to 0..1
    assert channels[1, 0].tolist() == pytest.approx([0.0, 0.1, 0.45, 1.0])
    assert channels[2, 0, 3] == pytest.approx(2300 / 2800)
    assert channels[2, 0, 2] < channels[2, 0, 3] - 0.5
    # a plan without windows (made before them) still gives one channel
    assert normalise(hu, {k: v for k, v in scheme.items() if k != "windows"}).shape == (1, 1, 4)
