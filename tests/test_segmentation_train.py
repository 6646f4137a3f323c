"""Segmentation datasets (MSD / nnU-Net folders, bad input), preprocessing and a tiny training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from voxelwise.cli.main import main
from voxelwise.data.datasets import export_msd_folder, load_case, open_dataset
from voxelwise.data.phantoms.head_ct import generate_head_ct_study
from voxelwise.data.plan import Plan, PlanConfig
from voxelwise.data.preprocess import preprocess_image
from voxelwise.errors import InputError
from voxelwise.imaging import Volume, read_nifti, write_nifti
from voxelwise.models import load_checkpoint_model
from voxelwise.tasks.segmentation.train import (
    SegmentationConfig,
    load_segmentation_config,
    train_segmentation,
)
from voxelwise.training import TrainingConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seg") / "phantom"
    generate_head_ct_study(root, centers=2, patients=2, followups=1, size="small", seed=0,
                           progress=False)
    return root


@pytest.fixture(scope="module")
def msd(phantom: Path) -> Path:
    return export_msd_folder(phantom, phantom.parent / "msd").root


def _copy(msd: Path, tmp_path: Path) -> Path:
    target = tmp_path / "dataset"
    shutil.copytree(msd, target)
    return target


def _tiny(**changes) -> SegmentationConfig:
    return SegmentationConfig(
        plan=PlanConfig(budget="cpu", patch_size=[64, 64], batch_size=4),
        training=TrainingConfig(epochs=2, iterations_per_epoch=3, device="cpu",
                                optimizer="adamw", learning_rate=1e-2),
        folds=1, test_fraction=0.25, **changes)


def test_exported_folder_reads_back_with_patients(msd: Path) -> None:
    dataset = open_dataset(msd)
    assert len(dataset.cases) == 8 and len({c.patient for c in dataset.cases}) == 4
    assert dataset.channels == ["CT"] and dataset.classes[2] == "oedema"
    loaded = load_case(dataset, dataset.cases[0])
    assert loaded.label.same_grid(loaded.images[0])
    description = json.loads((msd / "dataset.json").read_text())
    assert description["labels"] == {"background": 0, "haematoma": 1, "oedema": 2}


def test_label_on_another_grid_is_refused(msd: Path, tmp_path: Path) -> None:
    root = _copy(msd, tmp_path)
    dataset = open_dataset(root)
    case = dataset.cases[0]
    label = read_nifti(case.label)
    shifted = Volume(label.array, label.spacing, np.asarray(label.origin) + 7.0, label.direction)
    write_nifti(shifted, case.label)
    with pytest.raises(InputError, match=rf"{Path(case.label).name}: label map geometry .* "
                       "differs from its image"):
        load_case(dataset, case)


def test_undeclared_labels_are_refused(msd: Path, tmp_path: Path) -> None:
    root = _copy(msd, tmp_path)
    dataset = open_dataset(root)
    case = dataset.cases[1]
    label = read_nifti(case.label)
    array = label.array.copy()
    array[0, 0, 0] = 5
    write_nifti(label.with_array(array), case.label)
    with pytest.raises(InputError, match=r"labels \[5\] are not among the dataset's declared"):
        load_case(dataset, case)
    run = tmp_path / "run"
    with pytest.raises(InputError, match="labels"):
        train_segmentation(root, run, _tiny(), progress=False)
    assert not (run / "plan.json").exists()   # nothing half-written


def test_empty_or_broken_dataset_folders(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    (root / "labelsTr").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": {"background": 0, "lesion": 1}}))
    with pytest.raises(InputError, match="empty dataset"):
        open_dataset(root)
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(InputError, match="dataset.json: is not valid JSON"):
        open_dataset(root)
    with pytest.raises(InputError, match="neither a dataset folder"):
        open_dataset(tmp_path)


def test_preprocess_image_lies_on_the_plan_grid(msd: Path) -> None:
    dataset = open_dataset(msd)
    image = load_case(dataset, dataset.cases[0]).images[0]
    plan = Plan({}, {}, 2, [10.0, 2.0, 2.0], [64, 64], 4,
                [{"scheme": "ct", "clip": [0.0, 100.0], "mean": 50.0, "std": 25.0}], ["CT"],
                {"0": "background", "1": "haematoma"}, {"name": "unet", "kwargs": {}})
    array, grid = preprocess_image(image, plan)
    assert array.dtype == np.float32 and array.shape == (1, *grid.shape)
    assert grid.spacing == pytest.approx((10.0, 2.0, 2.0))
    assert array.min() == pytest.approx(-2.0) and array.max() == pytest.approx(2.0)


def test_tiny_training_end_to_end_and_resume_rules(phantom: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = train_segmentation(phantom, run, _tiny(), progress=False)
    for name in ("plan.json", "splits.json", "train.json", "preprocessed/preprocessed.json",
                 "fold_0/checkpoint_best.pt", "fold_0/checkpoint_last.pt", "fold_0/history.csv",
                 "postprocessing.json"):
        assert (run / name).exists(), name
    # the minimum volumes were chosen on the validation cases, and inference applies them
    choice = json.loads((run / "postprocessing.json").read_text())
    assert set(choice["min_volume_ml"]) == {"haematoma", "oedema"}
    assert choice["cases"] == len(result.splits.folds[0]["validation"]) > 0
    from voxelwise.inference import load_ensemble

    chosen = load_ensemble(run, [0]).min_volumes_ml
    assert chosen == {1: choice["min_volume_ml"]["haematoma"], 2: choice["min_volume_ml"]["oedema"]}
    history = result.folds[0].history
    assert len(history) == 2 and {"val_dice", "val_dice_haematoma"} <= set(history[0])
    model, identity = load_checkpoint_model(run / "fold_0" / "checkpoint_best.pt")
    assert identity["task"] == "segmentation" and identity["plan"]["dims"] == 2
    splits = json.loads((run / "splits.json").read_text())
    patients = json.loads((run / "dataset" / "dataset.json").read_text())["patients"]
    groups = [{patients[c] for c in splits["0"][k]} for k in ("train", "validation")]
    groups.append({patients[c] for c in splits["test"]})
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2])
    with pytest.raises(InputError, match="already holds a training run"):
        train_segmentation(phantom, run, _tiny(), progress=False)
    with pytest.raises(InputError, match="checkpoint from another configuration"):
        train_segmentation(phantom, run, _tiny(loss="dice"), resume=True, progress=False)
    longer = _tiny()
    longer.training.epochs = 3
    resumed = train_segmentation(phantom, run, longer, resume=True, progress=False)
    assert [row["epoch"] for row in resumed.folds[0].history] == [1, 2, 3]


def test_config_file_and_command_line(msd: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "seg.toml"
    config_file.write_text('folds = 1\ntest_fraction = 0.25\n[plan]\nbudget = "cpu"\n'
                           'patch_size = [64, 64]\nbatch_size = 4\n[training]\nepochs = 1\n'
                           'iterations_per_epoch = 2\ndevice = "cpu"\n')
    config = load_segmentation_config(config_file)
    assert config.plan.patch_size == [64, 64] and config.training.epochs == 1
    (tmp_path / "bad.toml").write_text("[training]\nepochz = 3\n")
    with pytest.raises(InputError, match="unknown setting.*training.epochz"):
        load_segmentation_config(tmp_path / "bad.toml")
    run = tmp_path / "cli-run"
    assert main(["plan", str(msd), "--out", str(run), "--budget", "cpu"]) == 0
    assert main(["train", str(msd), "--out", str(run), "--config", str(config_file),
                 "--budget", "cpu", "--seed", "3"]) == 2   # plan made with other settings
    assert main(["train", str(msd), "--out", str(tmp_path / "cli-2"), "--config",
                 str(config_file), "--learning-rate", "0.005"]) == 0
    manifest = json.loads((tmp_path / "cli-2" / "train.json").read_text())
    assert manifest["config"]["training"]["learning_rate"] == 0.005


def test_validation_dice_does_not_reward_predicting_nothing(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """Lesion-free cases predicted empty are left out of a class's mean, not scored 1."""
    from types import SimpleNamespace

    from voxelwise.data.preprocess import PreprocessedCase
    from voxelwise.tasks.segmentation import train

    lesion = np.zeros((4, 8, 8), np.uint8)
    lesion[1:3, 2:6, 2:6] = 1
    cases = [PreprocessedCase(f"c{i}", np.zeros((1, 4, 8, 8), np.float32),
                              lesion if i == 0 else np.zeros_like(lesion), {}) for i in range(4)]
    plan = SimpleNamespace(classes={"0": "background", "1": "haematoma", "2": "oedema"})

    def predicts(label: np.ndarray):
        def predict_case(model, image, plan, device, overlap, amp):
            return np.stack([label == k for k in range(3)]).astype(np.float32)
        return predict_case

    monkeypatch.setattr(train, "predict_case", predicts(np.zeros_like(lesion)))
    nothing = train.validation_dice(None, cases, plan, torch.device("cpu"))
    assert nothing["val_dice_haematoma"] == 0.0  # 3 of 4 cases lesion-free: it was 0.75
    assert nothing["val_dice_oedema"] == 1.0     # no case holds oedema, none predicted

    monkeypatch.setattr(train, "predict_case", predicts(lesion))
    everywhere = train.validation_dice(None, cases, plan, torch.device("cpu"))
    assert everywhere["val_dice_haematoma"] == pytest.approx(0.25)  # 3 false-positive cases
    perfect = [cases[0]]
    assert train.validation_dice(None, perfect, plan, torch.device("cpu"))["val_dice"] == 1.0


def test_repository_dataset_trains_from_de_identified_series(phantom: Path,
                                                             tmp_path: Path) -> None:
    """QC-passed repository series with label maps form a dataset: cases, patients, geometry."""
    from voxelwise.ingest.annotations import import_label_map_table
    from voxelwise.ingest.pipeline import ingest_folder
    from voxelwise.store import Repository

    key = tmp_path / "deid.key"
    with Repository.open(tmp_path / "repository") as repository:
        for center in sorted((phantom / "dicom").iterdir()):
            ingest_folder(center, repository, center.name, key_path=key, progress=False,
                          workers=1)
        imported = import_label_map_table(phantom / "labels.csv", repository, key_path=key)
    dataset = open_dataset(tmp_path / "repository")
    assert dataset.kind == "repository" and len(dataset.cases) == len(imported)
    phantom_cases = open_dataset(export_msd_folder(phantom, tmp_path / "msd").root)
    assert len(dataset.cases) == len(phantom_cases.cases)
    assert len({c.patient for c in dataset.cases}) == len({c.patient
                                                          for c in phantom_cases.cases})
    assert set(dataset.classes.values()) >= {"haematoma", "oedema"}
    loaded = load_case(dataset, dataset.cases[0])
    assert loaded.label.array.shape == loaded.images[0].array.shape
    assert np.allclose(loaded.label.spacing, loaded.images[0].spacing)
    result = train_segmentation(tmp_path / "repository", tmp_path / "run", _tiny(),
                                progress=False)
    assert len(result.folds[0].history) == 2
    splits = result.splits
    patient = {c.case_id: c.patient for c in dataset.cases}
    train = {patient[c] for c in splits.folds[0]["train"]}
    assert not train & {patient[c] for c in splits.test}
