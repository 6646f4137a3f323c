"""Checkpoint files: written atomically, read back with a clear error, networks rebuilt by name.

A checkpoint is a ``torch.save`` dictionary with ``format`` = "voxelwise-checkpoint", the
``identity`` of the run (task, model recipe, plan, classes: what must match to resume or to use
it), ``model_state`` and, from the training loop, the optimizer, scheduler and AMP scaler states,
the epoch, the best metric and the history. It holds only tensors and plain Python values, so it
is read with ``weights_only=True`` (no code runs when a checkpoint is opened).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from voxelwise.errors import InputError
from voxelwise.fileio import atomic_path
from voxelwise.models.registry import build_from_spec

FORMAT = "voxelwise-checkpoint"
VERSION = 1


def normalise_identity(identity: dict[str, Any] | None) -> dict[str, Any]:
    """The identity as JSON would give it back (tuples become lists), for comparisons."""
    return json.loads(json.dumps(identity or {}, sort_keys=True, default=str))


def identity_differences(stored: dict[str, Any], expected: dict[str, Any],
                         prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two identities."""
    keys = sorted(set(stored) | set(expected))
    differences: list[str] = []
    for key in keys:
        a, b = stored.get(key), expected.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            differences += identity_differences(a, b, f"{name}.")
        elif a != b:
            differences.append(name)
    return differences


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the format marker) to ``path`` through a temporary file."""
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, temporary)
    return path


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dictionary; `InputError` naming the file when it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many kinds for a damaged file
        raise InputError(path, f"not a readable checkpoint ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "not a voxelwise checkpoint (no format marker)")
    if "model_state" not in payload:
        raise InputError(path, "checkpoint holds no model weights")
    return payload


def check_identity(path: str | Path, payload: dict[str, Any],
                   expected: dict[str, Any] | None) -> None:
    """Refuse a checkpoint whose identity differs from ``expected`` (naming what differs)."""
    stored = normalise_identity(payload.get("identity"))
    wanted = normalise_identity(expected)
    differences = identity_differences(stored, wanted)
    if differences:
        raise InputError(path, "checkpoint from another configuration (differs in "
                         f"{', '.join(differences[:8])})")


def load_checkpoint_model(path: str | Path,
                          device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network recorded in ``identity["model"]`` and load its weights (eval mode)."""
    payload = read_checkpoint(path, device)
    identity = payload.get("identity") or {}
    spec = identity.get("model")
    if not isinstance(spec, dict) or "name" not in spec:
        raise InputError(path, "checkpoint does not record its model (identity['model'])")
    try:
        model = build_from_spec(spec)
        model.load_state_dict(payload["model_state"])
    except (ValueError, TypeError, KeyError, RuntimeError) as error:
        raise InputError(path, f"weights do not fit model {spec.get('name')!r}: "
                         f"{str(error).splitlines()[0]}") from error
    model.to(device).eval()
    return model, identity
