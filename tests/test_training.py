"""The training loop: determinism, checkpoint/resume equivalence, identity refusal, stopping."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from voxelwise.errors import InputError
from voxelwise.models import build_model
from voxelwise.training import TrainingConfig, fit, resolve_device, seed_everything
from voxelwise.training.loop import schedule_factor

torch.set_num_threads(1)


class RandomBatches:
    """A fresh random stream each pass, drawn from the global torch RNG (as samplers do)."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(3):
            x = torch.randn(2, 1, 8, 8)
            yield x, (x > 0).long()[:, 0]


def _model() -> nn.Module:
    seed_everything(0)
    return build_model("unet", spatial_dims=2, in_channels=1, out_channels=2,
                       channels=(4, 8), strides=(2,), num_res_units=0)


def _config(**changes) -> TrainingConfig:
    return TrainingConfig(**({"epochs": 4, "learning_rate": 1e-2, "device": "cpu"} | changes))


def _validate(model: nn.Module) -> dict[str, float]:
    x = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    return {"val_loss": float(nn.functional.cross_entropy(model(x), (x > 0).long()[:, 0]))}


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


def test_same_seed_same_weights_and_run_files(tmp_path: Path) -> None:
    first, second = _model(), _model()
    result = fit(first, RandomBatches(), nn.CrossEntropyLoss(), tmp_path / "a", _config(),
                 validate=_validate)
    fit(second, RandomBatches(), nn.CrossEntropyLoss(), tmp_path / "b", _config(),
        validate=_validate)
    assert all(torch.equal(a, b) for a, b in zip(_weights(first), _weights(second), strict=True))
    rows = list(csv.DictReader((tmp_path / "a" / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "learning_rate", "seconds"} <= set(rows[0])
    assert (tmp_path / "a" / "checkpoint_last.pt").exists()
    assert (tmp_path / "a" / "checkpoint_best.pt").exists()
    assert result.best_epoch is not None and len(result.history) == 4
    assert float(rows[1]["learning_rate"]) < float(rows[0]["learning_rate"])  # poly schedule


def test_resumed_run_ends_with_the_same_weights(tmp_path: Path) -> None:
    reference = _model()
    fit(reference, RandomBatches(), nn.CrossEntropyLoss(), tmp_path / "ref", _config(),
        validate=_validate)
    calls = {"n": 0}

    def interrupted(model: nn.Module) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return _validate(model)

    with pytest.raises(KeyboardInterrupt):
        fit(_model(), RandomBatches(), nn.CrossEntropyLoss(), tmp_path / "run", _config(),
            validate=interrupted)
    rows = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert len(rows) == 2
    torch.manual_seed(123)  # whatever the RNG state now, resume must not depend on it
    resumed = _model()
    result = fit(resumed, RandomBatches(), nn.CrossEntropyLoss(), tmp_path / "run", _config(),
                 validate=_validate, resume=True)
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert all(torch.equal(a, b)
               for a, b in zip(_weights(reference), _weights(resumed), strict=True))


def test_checkpoint_from_another_configuration_is_refused(tmp_path: Path) -> None:
    fit(_model(), RandomBatches(), nn.CrossEntropyLoss(), tmp_path, _config(epochs=1),
        identity={"task": "segmentation", "classes": {"1": "haematoma"}})
    with pytest.raises(InputError, match=r"checkpoint_last.pt: checkpoint from another "
                       r"configuration \(differs in classes.2"):
        fit(_model(), RandomBatches(), nn.CrossEntropyLoss(), tmp_path, _config(epochs=2),
            identity={"task": "segmentation", "classes": {"1": "haematoma", "2": "oedema"}},
            resume=True)
    other = build_model("unet", spatial_dims=2, in_channels=1, out_channels=2,
                        channels=(4, 16), strides=(2,))
    with pytest.raises(InputError, match="differs in model.kwargs.channels"):
        fit(other, RandomBatches(), nn.CrossEntropyLoss(), tmp_path, _config(epochs=2),
            identity={"task": "segmentation", "classes": {"1": "haematoma"}}, resume=True)


def test_early_stopping_on_a_metric_that_stops_improving(tmp_path: Path) -> None:
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.69, 0.9, 0.95])
    result = fit(_model(), RandomBatches(), nn.CrossEntropyLoss(), tmp_path,
                 _config(epochs=7, patience=3),
                 validate=lambda model: {"val_dice": next(scores)}, monitor="val_dice",
                 mode="max")
    assert result.stopped_early and len(result.history) == 5
    assert result.best_epoch == 2 and result.best_metric == pytest.approx(0.7)
    best = torch.load(tmp_path / "checkpoint_best.pt", weights_only=True)
    assert best["epoch"] == 2


def test_iterations_per_epoch_restarts_the_stream(tmp_path: Path) -> None:
    result = fit(_model(), RandomBatches(), nn.CrossEntropyLoss(), tmp_path,
                 _config(epochs=1, iterations_per_epoch=7))
    assert result.history[0]["batches"] == 7 and result.monitor == "train_loss"


def test_empty_training_set_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="training set is empty"):
        fit(_model(), [], nn.CrossEntropyLoss(), tmp_path, _config(epochs=1))


def test_schedules_and_devices() -> None:
    assert schedule_factor("poly", 0, 10) == 1.0 and schedule_factor("poly", 10, 10) == 0.0
    assert schedule_factor("cosine", 5, 10) == pytest.approx(0.5)
    assert schedule_factor("constant", 7, 10) == 1.0
    with pytest.raises(ValueError, match="unknown schedule"):
        schedule_factor("step", 0, 10)
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            resolve_device("cuda")
