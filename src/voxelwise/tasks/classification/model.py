"""The detector's network: a MONAI backbone from `voxelwise.models`, 3-D on whole studies, or 2-D
on every slice with the slices' logits pooled into one study logit per finding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from voxelwise.errors import InputError
from voxelwise.models import build_from_spec, build_model

POOL_SHARPNESS = 5.0  # log-sum-exp pooling: between mean (0) and max (inf) of slice logits


class SliceAggregation(nn.Module):
    """A 2-D classifier applied to each slice of (N, C, Z, H, W); study logits by log-sum-exp
    pooling over slices (a smooth maximum, so one bleeding slice can carry the study).

    With ``slice_outputs`` set, training-mode outputs are (N, findings + Z): the study logits,
    then the first finding's logit of every slice, for a loss on slice labels
    (`voxelwise.tasks.classification.train.DetectionLoss`); eval mode always gives study logits.
    """

    def __init__(self, backbone: nn.Module, sharpness: float = POOL_SHARPNESS) -> None:
        super().__init__()
        self.backbone = backbone
        self.sharpness = sharpness
        self.slice_outputs = False

    def slice_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, Z, findings) logits of every slice."""
        n, c, z, h, w = x.shape
        flat = x.permute(0, 2, 1, 3, 4).reshape(n * z, c, h, w)
        return self.backbone(flat).reshape(n, z, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.slice_logits(x)
        r = self.sharpness
        study = (torch.logsumexp(r * logits, dim=1)
                 - torch.log(torch.tensor(float(logits.shape[1])))) / r
        if self.slice_outputs and self.training:
            return torch.cat([study, logits[:, :, 0]], dim=1)
        return study


def model_identity(name: str, dims: int, in_channels: int, findings: int,
                   kind: str, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``identity["model"]`` (the backbone's recipe) and how slices are handled."""
    aggregate = kind == "volume" and dims == 2
    return {"model": {"name": name, "spatial_dims": dims, "in_channels": in_channels,
                      "out_channels": findings, "kwargs": dict(kwargs or {})},
            "aggregation": "slices-logsumexp" if aggregate else "none"}


def build_detector(identity: dict[str, Any]) -> nn.Module:
    """The network an identity (from `model_identity`) describes, with fresh weights."""
    spec = identity["model"]
    if identity.get("aggregation", "none") == "none":
        return build_from_spec(spec)
    backbone = build_model(spec["name"], spatial_dims=2, in_channels=spec["in_channels"],
                           out_channels=spec["out_channels"], **spec.get("kwargs", {}))
    return SliceAggregation(backbone)


def load_detector(checkpoint: Path, device: str | torch.device = "cpu"
                  ) -> tuple[nn.Module, dict[str, Any]]:
    """(network in eval mode, identity) from a detector checkpoint."""
    from voxelwise.models.checkpoint import read_checkpoint

    payload = read_checkpoint(checkpoint, device)
    identity = payload.get("identity") or {}
    if identity.get("task") != "ich-detection":
        raise InputError(checkpoint, "not an ICH-detector checkpoint (task "
                         f"{identity.get('task')!r})")
    model = build_detector(identity)
    model.load_state_dict(payload["model_state"])
    return model.to(device).eval(), identity


def gradcam_layer(model: nn.Module) -> tuple[nn.Module, str]:
    """(2-D or 3-D network, name of its last convolutional stage) for Grad-CAM."""
    network = model.backbone if isinstance(model, SliceAggregation) else model
    names = dict(network.named_modules())
    if getattr(network, "last_stage", None) in names:
        return network, network.last_stage
    for candidate in ("class_layers.relu", "layer4"):
        if candidate in names:
            return network, candidate
    raise ValueError(f"no Grad-CAM layer known for {type(network).__name__}")
