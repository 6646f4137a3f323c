"""ICH detector: labels CSV checks, 2-D images, evaluation, training end to end, interface F."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from voxelwise.cli.main import main
from voxelwise.data.images2d import load_images, read_label_table, resize_keep_aspect
from voxelwise.errors import InputError
from voxelwise.tasks.classification.data import ICH_FINDINGS, InputSpec, load_detection_data
from voxelwise.tasks.classification.evaluate import evaluate_classifier, roc_figure

torch.set_num_threads(1)
FINDINGS = ("any_ich", "subdural")


def _image_set(folder: Path, n: int = 24, seed: int = 0) -> Path:
    """PNG images (grey and RGB, varying size): positives carry a bright blob."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["file,patient_id,any_ich,subdural"]
    for i in range(n):
        h, w = (40, 56) if i % 2 else (48, 48)
        pixels = rng.normal(80, 10, (h, w))
        positive = i % 3 != 0
        if positive:
            pixels[10:22, 12:24] = 230
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
        if i % 4 == 1:
            pixels = np.stack([pixels] * 3, axis=-1)
        Image.fromarray(pixels).save(folder / f"img{i:02d}.png")
        lines.append(f"img{i:02d}.png,p{i // 2},{int(positive)},{int(positive and i % 2)}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder / "labels.csv"


def test_resize_keeps_aspect_ratio() -> None:
    image = np.ones((3, 20, 40), np.float32)
    out = resize_keep_aspect(image, 32)
    assert out.shape == (3, 32, 32)
    rows = np.flatnonzero(out[0].max(axis=1) > 0.5)
    assert len(rows) == 16 and np.all(out[0, :8] == 0)  # 20 x 40 -> 16 x 32, padded


def test_labels_csv_bad_values_are_reported_by_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("file,any_ich,subdural\na.png,1,0\nb.png,2,0\nc.png,0,yes\n")
    with pytest.raises(InputError) as error:
        read_label_table(path, known=ICH_FINDINGS)
    message = str(error.value)
    assert "labels.csv" in message and "line 3: any_ich = '2'" in message
    assert "line 4: subdural = 'yes'" in message


def test_labels_csv_unknown_columns(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("file,any_ich,subdual\na.png,1,0\n")
    with pytest.raises(InputError, match="unknown column.*subdual"):
        read_label_table(path, known=ICH_FINDINGS)
    with pytest.raises(InputError, match="unknown column.*extradural"):
        read_label_table(path, known=ICH_FINDINGS, findings=["any_ich", "extradural"])
    table = read_label_table(path, known=ICH_FINDINGS, ignore=["subdual"])
    assert table.findings == ["any_ich"]


def test_missing_and_undecodable_images_are_reported(tmp_path: Path) -> None:
    csv_path = _image_set(tmp_path / "set", n=4)
    (tmp_path / "set" / "img01.png").write_bytes(b"not a png")
    (tmp_path / "set" / "img02.png").unlink()
    table = read_label_table(csv_path, known=ICH_FINDINGS)
    with pytest.raises(InputError) as error:
        load_images(table, 32)
    message = str(error.value)
    assert "line 3: img01.png cannot be decoded" in message
    assert "line 4: file 'img02.png' not found" in message


def test_images_in_an_images_subfolder_are_found(tmp_path: Path) -> None:
    """The layout public sets use (NIH ChestX-ray14: labels.csv beside images/)."""
    csv_path = _image_set(tmp_path / "set" / "images", n=4)
    csv_path = csv_path.rename(tmp_path / "set" / "labels.csv")
    data = load_detection_data(tmp_path / "set", spec=InputSpec(size=32))
    assert data.x.shape == (4, 3, 32, 32) and data.x.max() > 0
    (tmp_path / "set" / "images" / "img03.png").unlink()
    with pytest.raises(InputError, match="line 5: file 'img03.png' not found"):
        load_detection_data(tmp_path / "set", spec=InputSpec(size=32))


def test_grey_and_rgb_images_load_as_three_channels(tmp_path: Path) -> None:
    csv_path = _image_set(tmp_path / "set", n=4)
    data = load_detection_data(csv_path, spec=InputSpec(size=32))
    assert data.x.shape == (4, 3, 32, 32) and data.spec.kind == "image"
    assert data.findings == list(FINDINGS)
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0


def test_evaluation_says_when_auc_is_undefined() -> None:
    rng = np.random.default_rng(0)
    y_val = np.stack([np.r_[np.ones(20), np.zeros(20)], np.zeros(40)], axis=1)
    y_test = y_val.copy()
    s_val = y_val * 0.5 + rng.random(y_val.shape) * 0.6
    s_test = y_test * 0.5 + rng.random(y_test.shape) * 0.6
    evaluation = evaluate_classifier(["any_ich", "subdural"], y_val, s_val, y_test, s_test)
    table = evaluation.table()
    assert np.isnan(evaluation.rows[1]["auc"])
    assert "subdural: no positive case in the test split (0 of 40): AUC undefined" in table
    assert 0.8 < evaluation.rows[0]["auc"] <= 1.0
    points = evaluation.operating_points()
    assert points["any_ich"]["high_sensitivity"]["validation_sensitivity"] >= 0.9
    assert {c["operating_point"] for c in evaluation.confusion} == {"high_sensitivity",
                                                                     "high_specificity"}
    assert "mcc" in evaluation.confusion[0] and "lr_positive" in evaluation.confusion[0]
    roc_figure(evaluation)


def test_train_on_image_folder_from_the_command_line(tmp_path: Path, capsys) -> None:
    from voxelwise.tasks.classification import findings, operating_points, predict_images

    csv_path = _image_set(tmp_path / "set", n=40)
    run = tmp_path / "run"
    assert main(["train", str(csv_path.parent), "--out", str(run), "--task", "ich-detection",
                 "--epochs", "2", "--image-size", "32", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "any_ich" in printed and "AUC (95% CI)" in printed
    assert findings(run) == list(FINDINGS)
    points = operating_points(run)
    assert set(points["any_ich"]) == {"high_sensitivity", "high_specificity"}
    for name in ("findings.csv", "confusion.csv", "predictions.csv", "train.json",
                 "splits.json", "fold_0/checkpoint_best.pt"):
        assert (run / name).is_file(), name
    probabilities = predict_images(run, [csv_path.parent / "img00.png"])
    assert probabilities.shape == (1, 2) and np.all((0 <= probabilities) & (probabilities <= 1))
    # resuming a finished run trains nothing more and evaluates again
    assert main(["train", str(csv_path.parent), "--out", str(run), "--task", "ich-detection",
                 "--epochs", "2", "--image-size", "32", "--threads", "1", "--resume"]) == 0


def test_bad_labels_on_the_command_line_exit_2(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "set"
    _image_set(folder, n=4)
    (folder / "labels.csv").write_text("file,any_ich\nimg00.png,1\nmissing.png,0\n")
    assert main(["train", str(folder), "--out", str(tmp_path / "run"), "--task",
                 "ich-detection", "--epochs", "1"]) == 2
    assert "line 3: file 'missing.png' not found" in capsys.readouterr().err


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study

    out = tmp_path_factory.mktemp("ich") / "phantom"
    return generate_head_ct_study(out, centers=2, patients=2, followups=1, size="small",
                                  progress=False, workers=1).root


@pytest.mark.parametrize("dims", [2, 3])
def test_detector_on_phantom_series_and_interface_f(phantom: Path, tmp_path: Path,
                                                    dims: int) -> None:
    from voxelwise.imaging import read_dicom_series
    from voxelwise.tasks.classification import findings, predict_studies
    from voxelwise.tasks.classification.gradcam import study_heatmap
    from voxelwise.tasks.classification.model import load_detector
    from voxelwise.tasks.classification.train import DetectionConfig, train_detector
    from voxelwise.training import TrainingConfig

    data = load_detection_data(phantom, spec=InputSpec(size=32, slices=8))
    assert data.x.shape == (8, 3, 8, 32, 32) and data.findings == list(ICH_FINDINGS)
    config = DetectionConfig(dims=dims, training=TrainingConfig(
        epochs=1, batch_size=4, learning_rate=1e-3, optimizer="adamw", threads=1))
    result = train_detector(data, tmp_path / "run", config)
    assert findings(result.run_dir)[0] == "any_ich"
    points = json.loads((result.run_dir / "operating_points.json").read_text())
    assert list(points) == list(ICH_FINDINGS)
    row = next(r for r in (phantom / "labels.csv").read_text().splitlines()[1:])
    dicom_dir = row.split(",")[7]
    volume = read_dicom_series(phantom / dicom_dir)
    probabilities = predict_studies(result.run_dir, [volume])
    assert probabilities.shape == (1, len(ICH_FINDINGS))
    model, _ = load_detector(result.run_dir / "fold_0" / "checkpoint_best.pt")
    index, heat = study_heatmap(model, data.x[0])
    assert 0 <= index < 8 and heat.shape == (32, 32)


def test_detect_command_prints_findings(tmp_path: Path, capsys) -> None:
    csv_path = _image_set(tmp_path / "set", n=24)
    run = tmp_path / "run"
    assert main(["train", str(csv_path.parent), "--out", str(run), "--task", "ich-detection",
                 "--epochs", "1", "--image-size", "32", "--threads", "1"]) == 0
    capsys.readouterr()
    out_csv = tmp_path / "calls.csv"
    assert main(["detect", str(run), str(csv_path.parent / "img00.png"), "--out",
                 str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "img00.png" in printed and "any_ich" in printed
    assert out_csv.is_file() and Path(f"{out_csv}.json").is_file()


def test_repository_with_labels_csv(phantom: Path, tmp_path: Path) -> None:
    from voxelwise.ingest.pipeline import ingest_folder
    from voxelwise.store import Repository

    key = tmp_path / "deid.key"
    with Repository.open(tmp_path / "repo") as repository:
        ingest_folder(phantom / "dicom" / "AVGH", repository, "AVGH", key_path=key)
    lines = (phantom / "labels.csv").read_text().splitlines()
    rows = [lines[0], *(line for line in lines[1:] if line.startswith("AVGH,"))]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_detection_data(tmp_path / "repo", labels=tmp_path / "labels.csv", key_path=key,
                               spec=InputSpec(size=32, slices=8))
    originals = {line.split(",")[5] for line in rows[1:]}
    assert len(data.case_ids) == 4 and not set(data.case_ids) & originals  # de-identified
    assert len(set(data.patients)) == 2 and "AV" not in "".join(data.patients)[:2]
    bad = tmp_path / "bad.csv"
    bad.write_text(rows[0] + "\n" + rows[1].replace(rows[1].split(",")[5], "1.2.3.4") + "\n")
    with pytest.raises(InputError, match="line 2: no series with Series Instance UID 1.2.3.4"):
        load_detection_data(tmp_path / "repo", labels=bad, key_path=key)
