"""ICH detector regressions: ICH-free patients in the phantom on request, splits that hold both
classes, and a detector that learns a hyperdense blob within a small training budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxelwise.data.phantoms import head_ct
from voxelwise.data.phantoms.head_ct import PhantomParameters
from voxelwise.data.splits import make_splits
from voxelwise.tasks.classification.data import DetectionData, InputSpec
from voxelwise.tasks.classification.train import DetectionConfig, make_detection_splits

torch.set_num_threads(1)


def test_phantom_ich_free_fraction_is_a_parameter_that_keeps_old_phantoms() -> None:
    default = PhantomParameters(centers=2, patients=10)
    assert "ich_free_fraction" not in default.fingerprint()  # same key, UIDs and PHI as before
    free = [not plan.mix.subtypes for plan in head_ct._plan_study(default)]
    assert sum(free) == 4  # 20% of 20
    half = PhantomParameters(centers=2, patients=10, ich_free_fraction=0.5)
    assert half.fingerprint()["ich_free_fraction"] == 0.5 and half.key() != default.key()
    assert sum(not plan.mix.subtypes for plan in head_ct._plan_study(half)) == 10
    with pytest.raises(ValueError, match="ich_free_fraction"):
        PhantomParameters(ich_free_fraction=1.5)


def _cohort(patients: int, negatives: int, scans: int = 3) -> DetectionData:
    """``patients`` patients with ``scans`` studies each; the first ``negatives`` have no ICH."""
    ids, owners, labels = [], [], []
    for p in range(patients):
        for t in range(scans):
            ids.append(f"p{p:02d}_t{t}")
            owners.append(f"p{p:02d}")
            labels.append([0 if p < negatives else 1, 0])
    y = np.array(labels, np.float32)
    return DetectionData(ids, owners, np.zeros((len(ids), 1, 1, 2, 2), np.float32), y,
                         ["any_ich", "subdural"], InputSpec(), None)


def _classes(data: DetectionData, cases: list[str]) -> set[int]:
    index = {c: i for i, c in enumerate(data.case_ids)}
    return {int(data.y[index[c], 0]) for c in cases}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detection_splits_hold_negative_patients_where_the_cohort_allows(seed: int) -> None:
    data = _cohort(12, 3)  # the demo's 12 patients with 3 ICH-free
    config = DetectionConfig(test_fraction=0.25)
    config.training.seed = seed
    splits = make_detection_splits(data, config)
    fold = splits.folds[0]
    for part in (splits.test, fold["validation"], fold["train"]):
        assert _classes(data, part) == {0, 1}
    everything = sorted(splits.test + fold["validation"] + fold["train"])
    assert everything == sorted(data.case_ids)  # each case once, patients kept together
    patients = [{c[:3] for c in part} for part in (splits.test, fold["validation"], fold["train"])]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])


def test_detection_splits_never_take_the_last_negative_from_training() -> None:
    data = _cohort(12, 2)  # the default demo's cohort: 20% of 12 patients ICH-free
    plain = make_splits(dict(zip(data.case_ids, data.patients, strict=True)),
                        [c for c, y in zip(data.case_ids, data.y[:, 0], strict=True) if y],
                        folds=1, test_fraction=0.25, seed=0)
    assert _classes(data, plain.test) == {1}  # the shared splitter alone: AUC undefined
    splits = make_detection_splits(data, DetectionConfig(test_fraction=0.25))
    fold = splits.folds[0]
    assert 0 in _classes(data, fold["train"]) and 0 in _classes(data, splits.test)
    assert _classes(data, fold["validation"]) == {1}  # too few: evaluated as undefined


def test_kfold_detection_splits_keep_negatives_in_every_part() -> None:
    data = _cohort(20, 6)
    splits = make_detection_splits(data, DetectionConfig(folds=3, test_fraction=0.2))
    assert _classes(data, splits.test) == {0, 1}
    for fold in splits.folds:
        assert _classes(data, fold["train"]) == {0, 1}
        assert _classes(data, fold["validation"]) == {0, 1}
        assert not set(fold["validation"]) & set(splits.test)


def test_phantom_cli_ich_free_fraction(tmp_path, capsys) -> None:
    import csv

    from voxelwise.cli.main import main
    from voxelwise.cli.phantom import ICH_FREE_DEFAULT

    assert ICH_FREE_DEFAULT == head_ct.DEFAULT_ICH_FREE_FRACTION
    out = tmp_path / "phantom"
    assert main(["phantom", "head-ct", "--out", str(out), "--centers", "1", "--patients", "4",
                 "--followups", "0", "--size", "small", "--ich-free-fraction", "0.5"]) == 0
    with (out / "labels.csv").open() as handle:
        labels = [int(row["any_ich"]) for row in csv.DictReader(handle)]
    assert sorted(labels) == [0, 0, 1, 1]
    with pytest.raises(SystemExit):
        main(["phantom", "head-ct", "--out", str(tmp_path / "bad"), "--ich-free-fraction", "2"])
    assert "between 0 and 1" in capsys.readouterr().err


def test_checkpoints_are_chosen_on_validation_auc_where_it_is_defined() -> None:
    from voxelwise.tasks.classification.train import mean_auc, monitored_metric

    y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]], np.float32)
    assert monitored_metric(y) == ("val_auc", "max")
    assert monitored_metric(np.ones((4, 2), np.float32)) == ("val_loss", "min")
    perfect = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.5], [0.8, 0.5, 0.5], [0.1, 0.7, 0.5]])
    assert mean_auc(y, perfect) == 1.0  # only the first finding holds both classes
    assert mean_auc(y, 1 - perfect) == 0.0
    assert np.isnan(mean_auc(np.ones((4, 1)), perfect[:, :1]))


def test_slice_labels_follow_the_input_slabs() -> None:
    from voxelwise.imaging.volume import Volume
    from voxelwise.tasks.classification.data import slice_labels

    labels = np.zeros((16, 8, 8), np.uint8)
    labels[5, 2:4, 2:4] = 1   # haematoma on slice 5
    labels[9, 1, 1] = 2       # oedema only: not a bleeding slice
    volume = Volume(labels)
    assert np.flatnonzero(slice_labels(volume, 16)).tolist() == [5]
    assert np.flatnonzero(slice_labels(volume, 8)).tolist() == [2]   # slab 10-12 mm
    assert np.flatnonzero(slice_labels(volume, 32)).tolist() == [10, 11]
    feet_first = np.eye(3)[:, ::-1].copy()
    feet_first[:, 0] *= -1  # axis 0 towards the feet
    flipped = Volume(labels[::-1].copy(), direction=feet_first)
    assert np.flatnonzero(slice_labels(flipped, 16)).tolist() == [5]  # canonical order


def test_detection_loss_adds_known_slice_labels_only() -> None:
    from voxelwise.tasks.classification.model import SliceAggregation
    from voxelwise.tasks.classification.train import DetectionLoss

    loss = DetectionLoss(torch.ones(2))
    study = torch.tensor([[2.0, -1.0]])
    target = torch.tensor([[1.0, 0.0]])
    plain = loss(study, target)
    unknown = loss(torch.cat([study, torch.zeros(1, 3)], 1),
                   torch.cat([target, torch.full((1, 3), float("nan"))], 1))
    assert torch.isclose(plain, unknown)
    known = loss(torch.cat([study, torch.tensor([[5.0, -5.0, 0.0]])], 1),
                 torch.cat([target, torch.tensor([[1.0, 0.0, float("nan")]])], 1))
    assert known > plain and torch.isfinite(known)

    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    model = SliceAggregation(backbone)
    x = torch.rand(2, 3, 5, 4, 4)
    assert model(x).shape == (2, 2)
    model.slice_outputs = True
    assert model.train()(x).shape == (2, 2 + 5)
    assert model.eval()(x).shape == (2, 2)  # predictions stay study logits


def test_phantom_label_maps_give_slice_labels(tmp_path) -> None:
    from voxelwise.tasks.classification.data import load_detection_data

    root = head_ct.generate_head_ct_study(tmp_path / "p", centers=1, patients=2, followups=0,
                                          size="small", progress=False, workers=1,
                                          ich_free_fraction=0.5).root
    data = load_detection_data(root, spec=InputSpec(size=16, slices=8))
    assert data.slice_labels is not None and data.slice_labels.shape == (2, 8)
    bleeding = data.slice_labels.max(axis=1)
    assert bleeding.tolist() == data.y[:, 0].tolist()  # slices bleed exactly in ICH studies


def test_splits_spread_every_finding_not_only_the_first() -> None:
    from voxelwise.data.splits import finding_strata

    assert finding_strata({"a": [1, 1], "b": [1, 0], "c": [0, 0]}) == {
        "a": "11", "b": "01", "c": "00"}  # rarest finding (the second) first
    data = _cohort(24, 6)
    data.y[:, 1] = [float(c[:3] in {"p06", "p07", "p08", "p09", "p10", "p11"})
                    for c in data.case_ids]  # 6 ICH patients with a subdural bleed
    carriers = {c[:3] for c, y in zip(data.case_ids, data.y[:, 1], strict=True) if y}

    def subdural(cases: list[str]) -> set[str]:
        return {c[:3] for c in cases} & carriers

    for seed in range(5):
        config = DetectionConfig(folds=3, test_fraction=0.25)
        config.training.seed = seed
        splits = make_detection_splits(data, config)
        assert len(subdural(splits.test)) in (1, 2)  # a quarter of 6, not 0 or 4 by chance
        for fold in splits.folds:
            assert subdural(fold["validation"])  # every fold validates the rare finding
            assert _classes(data, fold["validation"]) == {0, 1}


def test_cli_switches_slice_labels_off() -> None:
    from voxelwise.cli.main import build_parser
    from voxelwise.tasks.classification import _config

    parser = build_parser()
    base = ["train", "phantom", "--out", "run", "--task", "ich-detection"]
    assert _config(parser.parse_args(base)).slice_labels is True
    assert _config(parser.parse_args([*base, "--no-slice-labels"])).slice_labels is False


def test_slice_targets_say_only_what_the_study_implies() -> None:
    from voxelwise.tasks.classification.train import slice_targets

    findings = ["any_ich", "subdural", "subarachnoid", "midline_shift"]
    y = np.array([[1, 1, 0, 1], [1, 1, 1, 0], [0, 0, 0, 0]], np.float32)
    labels = np.array([[1, 0], [1, 0], [0, np.nan]], np.float32)
    t = slice_targets(y, labels, findings)
    nan = np.nan
    np.testing.assert_array_equal(t[0], [[1, 1, 0, nan], [0, 0, 0, nan]])  # one subtype
    np.testing.assert_array_equal(t[1], [[1, nan, nan, nan], [0, 0, 0, nan]])  # two: unknown
    np.testing.assert_array_equal(t[2], [[0, 0, 0, nan], [nan, nan, nan, nan]])


def test_balanced_slice_batches_train_through_the_masked_loss() -> None:
    import torch

    from voxelwise.tasks.classification.train import DetectionLoss, _SliceBatches, slice_targets

    rng = np.random.default_rng(0)
    x = rng.random((3, 2, 4, 8, 8)).astype(np.float32)
    y = np.array([[1, 1], [0, 0], [1, 1]], np.float32)
    labels = np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]], np.float32)
    batches = _SliceBatches(x, slice_targets(y, labels, ["any_ich", "subdural"]), 8, 3, True)
    seen = list(batches)
    assert len(seen) == 3
    for inputs, targets in seen:
        assert inputs.shape == (8, 2, 1, 8, 8) and targets.shape == (8, 3)
        assert targets[:, 0].sum() == 4  # half the slices bleed
        assert torch.isnan(targets[:, 2]).all()  # no slice-output target: it is the study's
    loss = DetectionLoss(torch.ones(2))
    outputs = torch.zeros(8, 3, requires_grad=True)
    value = loss(outputs, seen[0][1])
    assert torch.isfinite(value) and abs(float(value) - float(np.log(2))) < 1e-6
    value.backward()
    assert torch.isfinite(outputs.grad).all()


def test_the_phantom_command_offers_the_generators_default_ich_free_fraction() -> None:
    """The CLI keeps its own copy of the default (importing the generator would load pydicom
    for `voxelwise --help`); this pins the copy to the generator's value."""
    from voxelwise.cli.phantom import ICH_FREE_DEFAULT
    from voxelwise.data.phantoms.lesions import DEFAULT_ICH_FREE_FRACTION

    assert ICH_FREE_DEFAULT == DEFAULT_ICH_FREE_FRACTION
