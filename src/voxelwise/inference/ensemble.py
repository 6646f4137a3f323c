"""The k fold models of a segmentation run as one ensemble that averages their probabilities.

A run folder (see `voxelwise.data.plan`) holds ``plan.json`` and ``fold_K/checkpoint_best.pt``.
Every checkpoint must have been trained for the run's plan: its stored identity names the same
network, channels, classes and grid as ``plan.json``, or it is refused with an error that names
the checkpoint ("checkpoint from another configuration").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voxelwise.data.plan import network_channels
from voxelwise.errors import InputError
from voxelwise.inference.postprocess import load_min_volumes
from voxelwise.inference.sliding import WindowSettings, sliding_window_probabilities

if TYPE_CHECKING:
    import torch
    from torch import nn

CHECKPOINT = "checkpoint_best.pt"
_FOLD = re.compile(r"^fold_(\d+)$")
_PLAN_KEYS = ("dims", "spacing_mm", "patch_size", "channels", "classes", "normalization")
"""Plan fields that change what a network sees or predicts; a checkpoint must agree on them."""


@dataclass
class Ensemble:
    """The run's plan and the networks of the chosen folds, on one device."""

    run_dir: Path
    plan: Any
    models: list[nn.Module]
    folds: list[int]
    checkpoints: list[Path]
    device: torch.device
    min_volumes_ml: dict[int, float] = field(default_factory=dict)
    """Per class, the minimum component volume chosen on the validation cases at training
    (``RUN/postprocessing.json``; empty when the run has none)."""

    @property
    def classes(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in dict(self.plan.classes).items()}

    def window_settings(self, overlap: float = 0.5, batch_size: int | None = None
                        ) -> WindowSettings:
        """Windows of the plan's patch size (a 2-D plan's patch has two values)."""
        patch = tuple(int(p) for p in self.plan.patch_size)
        batch = batch_size or max(1, int(getattr(self.plan, "batch_size", 2) or 2))
        return WindowSettings(patch_size=patch, overlap=overlap, batch_size=batch)

    def probabilities(self, image: torch.Tensor, settings: WindowSettings, *,
                      tta: bool = False) -> torch.Tensor:
        """Mean softmax probabilities of every fold's model (and every flip with ``tta``)."""
        image = image.to(self.device)
        total = None
        for model in self.models:
            probabilities = sliding_window_probabilities(model, image, settings, tta=tta)
            total = probabilities if total is None else total.add_(probabilities)
        return total.div_(len(self.models))


def available_folds(run_dir: Path, checkpoint: str = CHECKPOINT) -> list[int]:
    """Folds of a run folder that hold ``checkpoint``, in order."""
    folds = [int(m.group(1)) for p in Path(run_dir).iterdir()
             if (m := _FOLD.match(p.name)) and (p / checkpoint).is_file()]
    return sorted(folds)


def parse_folds(text: str | Sequence[int] | None) -> list[int] | None:
    """``"0,1"`` -> [0, 1]; ``None`` or ``"all"`` -> None (every fold)."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "all")):
        return None
    if isinstance(text, str):
        try:
            return sorted({int(part) for part in text.split(",") if part.strip()})
        except ValueError as error:
            raise InputError(None, f"--folds takes fold numbers like 0,1; got {text!r}"
                             ) from error
    return sorted({int(f) for f in text})


def _plan_dict(plan: Any) -> dict[str, Any]:
    if hasattr(plan, "to_dict"):
        return plan.to_dict()
    from dataclasses import asdict, is_dataclass

    return asdict(plan) if is_dataclass(plan) else dict(plan)


def _normal(value: Any) -> Any:
    """JSON-like normal form so that tuples, lists and int/str keys compare equal."""
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def check_against_plan(checkpoint: Path, identity: dict[str, Any], plan: Any) -> None:
    """Refuse a checkpoint whose network or plan differs from the run's ``plan``."""
    plan_values = _normal(_plan_dict(plan))
    model = identity.get("model") or {}
    problems = []
    expected_model = plan_values.get("model") or {}
    for key in ("name", "kwargs"):
        if key in expected_model and _normal(model.get(key)) != expected_model[key]:
            problems.append(f"model {key} {model.get(key)!r} vs the plan's {expected_model[key]!r}")
    inputs = network_channels(plan_values.get("normalization") or [{}])
    if model.get("in_channels") not in (None, inputs):
        problems.append(f"{model.get('in_channels')} input channels vs the plan's {inputs}")
    classes = max((int(k) for k in plan_values.get("classes", {})), default=0) + 1
    if model.get("out_channels") not in (None, classes):
        problems.append(f"{model.get('out_channels')} output classes vs the plan's {classes}")
    stored_plan = _normal(identity.get("plan") or {})
    for key in _PLAN_KEYS:
        if key in stored_plan and key in plan_values and stored_plan[key] != plan_values[key]:
            problems.append(f"{key} {stored_plan[key]} vs the plan's {plan_values[key]}")
    if problems:
        raise InputError(checkpoint, "checkpoint from another configuration: "
                         + "; ".join(problems))


def load_plan(run_dir: Path) -> Any:
    """The run's ``plan.json`` as a `voxelwise.data.plan.Plan`."""
    from voxelwise.data.plan import Plan

    path = Path(run_dir) / "plan.json"
    if not path.is_file():
        raise InputError(run_dir, "not a segmentation run folder (no plan.json)")
    return Plan.load(path)


def load_ensemble(run_dir: str | Path, folds: Sequence[int] | None = None, *,
                  device: str = "cpu", checkpoint: str = CHECKPOINT) -> Ensemble:
    """The plan and fold models of a run folder (``folds=None``: every trained fold)."""
    from voxelwise.models.checkpoint import load_checkpoint_model
    from voxelwise.training.loop import resolve_device

    run_dir = Path(run_dir)
    plan = load_plan(run_dir)
    found = available_folds(run_dir, checkpoint)
    chosen = found if folds is None else list(folds)
    missing = [f for f in chosen if f not in found]
    if missing or not chosen:
        raise InputError(run_dir, f"no {checkpoint} for fold(s) "
                         f"{', '.join(map(str, missing)) or '(none trained)'}; trained folds: "
                         f"{', '.join(map(str, found)) or 'none'}")
    torch_device = resolve_device(device)
    models, paths = [], []
    for fold in chosen:
        path = run_dir / f"fold_{fold}" / checkpoint
        model, identity = load_checkpoint_model(path, device=str(torch_device))
        check_against_plan(path, identity, plan)
        models.append(model.eval())
        paths.append(path)
    classes = {int(k): str(v) for k, v in dict(plan.classes).items()}
    return Ensemble(run_dir, plan, models, chosen, paths, torch_device,
                    load_min_volumes(run_dir, classes))
