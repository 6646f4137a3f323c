"""Self-configuration: from a dataset's fingerprint to a plan (spacing, 2D/3D, patch, network).

The rules follow nnU-Net's, simplified and written out so a reader can check them:

- **Target spacing**: the median spacing; for anisotropic data (largest / smallest median
  spacing > 3) the thick axis takes the 10th percentile of its spacings. When the median case on
  that grid has more voxels than the budget's ``max_case_voxels`` (a small machine), the finest
  axes are coarsened together, never beyond the thickest one, until it fits.
- **2D or 3D**: 2D (slices) when the target grid is still strongly anisotropic (ratio >
  ``anisotropy_threshold``), else 3D; a 3D network pools an axis only while its spacing is at
  most twice the finest one, so thick-slice volumes get anisotropic kernels and patches.
- **Patch and batch**: start from the median case shape (in 2D its slice) and shrink the largest
  axis until ``batch_size x patch voxels`` fits ``max_batch_voxels`` (batch 2 in 3D, at least 12
  in 2D); each axis is a multiple of its total pooling factor. 2D batches then fill the budget
  (at most 32).
- **Normalisation**: CT is clipped to the foreground's 0.5-99.5th percentiles and z-scored with
  the foreground's mean and standard deviation; other modalities (MRI) are z-scored per image
  and channel (inside the non-zero region when the background is zero, as brain-extracted MRI).
  Clipping to the lesions' own range makes bone and blood the same value, so a CT channel also
  gives the network the radiologists' subdural and bone windows (`CT_WINDOWS`, stored in the
  plan as level and width; 0..1 as `voxelwise.imaging.apply_window` maps them) as extra input
  channels (the multi-window input of the RSNA haemorrhage work): a
  haematoma against the inner table stays apart from the skull.

Every decision can be overridden (`PlanConfig`); the plan is `plan.json` in the run folder.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from voxelwise.errors import InputError
from voxelwise.fileio import write_text_atomic
from voxelwise.imaging.windows import WINDOWS

PLAN_VERSION = 1
MIN_BATCH_2D = 12  # 2D networks want many slices a batch (nnU-Net's 2D batches are 12 or more)


@dataclass(frozen=True)
class PlanBudget:
    """What the machine can afford: voxels of one resampled case, of one training batch."""

    name: str
    max_case_voxels: int | None
    max_batch_voxels: int
    base_channels: int
    max_channels: int


BUDGETS = {
    # 2 CPU cores: about a million voxels a case, 16 x 96^2 voxels a batch, a narrow network
    "cpu": PlanBudget("cpu", 1_000_000, 16 * 96**2, 16, 256),
    # one GPU: native resolution, nnU-Net's 3D full-resolution batch (2 x 128^3), 32-320 wide
    "gpu": PlanBudget("gpu", None, 2 * 128**3, 32, 320),
}


CT_WINDOWS = ("subdural", "bone")
"""Extra input channels of a CT image: these `voxelwise.imaging.WINDOWS` (level, width in HU)."""


def network_channels(normalization: list[dict[str, Any]]) -> int:
    """How many network input channels the image channels give under ``normalization``."""
    return sum(1 + len(scheme.get("windows") or ()) for scheme in normalization)


@dataclass
class PlanConfig:
    """Overrides of the plan's decisions (None: derive from the fingerprint)."""

    budget: str = "auto"                    # "auto" (gpu when torch sees one) | "cpu" | "gpu"
    model: str = "unet"                     # "unet" | "vnet" | "deepmedic"
    model_kwargs: dict[str, Any] | None = None
    dims: int | None = None                 # 2 | 3
    spacing_mm: list[float] | None = None
    patch_size: list[int] | None = None
    batch_size: int | None = None
    anisotropy_threshold: float = 3.0
    max_case_voxels: int | None = None
    max_batch_voxels: int | None = None
    normalization: list[dict[str, Any]] | None = None


@dataclass
class Plan:
    """Everything the stages after planning need to know about the data and the network."""

    dataset: dict[str, Any]
    fingerprint: dict[str, Any]
    dims: int
    spacing_mm: list[float]
    patch_size: list[int]
    batch_size: int
    normalization: list[dict[str, Any]]
    channels: list[str]
    classes: dict[str, str]
    model: dict[str, Any]
    budget: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)   # the PlanConfig it was made with
    version: int = PLAN_VERSION

    @property
    def num_classes(self) -> int:
        return max(int(k) for k in self.classes) + 1

    def model_spec(self) -> dict[str, Any]:
        """The `build_model` recipe (name, spatial_dims, channels in and out, kwargs)."""
        return {"name": self.model["name"], "spatial_dims": self.dims,
                "in_channels": network_channels(self.normalization),
                "out_channels": self.num_classes,
                "kwargs": dict(self.model.get("kwargs") or {})}

    def preprocessing_key(self) -> str:
        """A hash of what preprocessing depends on (cached arrays are reused while it holds)."""
        keep = {"dataset": self.dataset.get("path"), "spacing_mm": self.spacing_mm,
                "normalization": self.normalization, "channels": self.channels,
                "classes": self.classes, "cases": self.fingerprint.get("case_ids")}
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]

    def identity(self) -> dict[str, Any]:
        """What a checkpoint trained on this plan must match."""
        return {"dims": self.dims, "spacing_mm": self.spacing_mm, "patch_size": self.patch_size,
                "normalization": self.normalization, "channels": self.channels,
                "classes": self.classes}

    def save(self, path: str | Path) -> Path:
        return write_text_atomic(path, json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise InputError(path, "plan not found (run `voxelwise plan` first)") from error
        except ValueError as error:
            raise InputError(path, f"is not valid JSON: {error}") from error
        known = {f.name for f in fields(cls)}
        required = ("dims", "spacing_mm", "patch_size", "normalization", "channels", "classes",
                    "model")
        missing = [name for name in required if not isinstance(data, dict) or name not in data]
        if missing or not isinstance(data, dict):
            raise InputError(path, f"not a voxelwise plan (missing {', '.join(missing)})")
        if int(data.get("version", 1)) > PLAN_VERSION:
            raise InputError(path, f"plan version {data['version']} is newer than this "
                             f"voxelwise reads ({PLAN_VERSION})")
        return cls(**{k: v for k, v in data.items() if k in known})


# ------------------------------------------------------------------------------ decisions
def resolve_budget(config: PlanConfig) -> PlanBudget:
    name = config.budget
    if name == "auto":
        import torch

        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in BUDGETS:
        raise InputError(None, f"unknown budget {config.budget!r} (auto, cpu, gpu)")
    budget = BUDGETS[name]
    return PlanBudget(budget.name, config.max_case_voxels or budget.max_case_voxels,
                      config.max_batch_voxels or budget.max_batch_voxels,
                      budget.base_channels, budget.max_channels)


def target_spacing(fingerprint: dict[str, Any], budget: PlanBudget,
                   anisotropy_threshold: float = 3.0) -> list[float]:
    """Median spacing (10th percentile on a thick axis), coarsened to fit ``max_case_voxels``."""
    spacings = np.asarray(fingerprint["spacings_mm"], dtype=float)
    shapes = np.asarray(fingerprint["shapes"], dtype=float)
    spacing = np.median(spacings, axis=0)
    thick = int(np.argmax(spacing))
    if spacing[thick] / spacing.min() > anisotropy_threshold:
        spacing[thick] = np.percentile(spacings[:, thick], 10)
    extent = np.median(shapes * spacings, axis=0)
    while budget.max_case_voxels and np.prod(np.round(extent / spacing)) > budget.max_case_voxels:
        fine = spacing < spacing.max() - 1e-6
        if fine.any():  # coarsen the fine axes, at most up to the thickest one
            spacing[fine] = np.minimum(spacing[fine] * 1.05, spacing.max())
        else:
            spacing = spacing * 1.05
    return [round(float(s), 4) for s in spacing]


def choose_dims(spacing: list[float], anisotropy_threshold: float = 3.0) -> int:
    """2 when the target grid is strongly anisotropic, else 3."""
    return 2 if max(spacing) / min(spacing) > anisotropy_threshold else 3


def pooling_strides(patch: list[int], spacing: list[float], max_stages: int = 5,
                    min_size: int = 4) -> list[list[int]]:
    """Per stage, which axes halve: while big enough and (3D) not much coarser than the finest."""
    size, current = list(patch), list(spacing)
    stages: list[list[int]] = []
    for _ in range(max_stages):
        finest = min(current)
        stride = [2 if size[a] // 2 >= min_size and current[a] <= 2 * finest else 1
                  for a in range(len(size))]
        if not any(s == 2 for s in stride):
            break
        stages.append(stride)
        size = [s // f for s, f in zip(size, stride, strict=True)]
        current = [c * f for c, f in zip(current, stride, strict=True)]
    return stages


def _factors(stages: list[list[int]], axes: int) -> list[int]:
    return [int(np.prod([stage[a] for stage in stages])) if stages else 1 for a in range(axes)]


def _round_up(values: list[float], factors: list[int]) -> list[int]:
    return [int(math.ceil(v / f) * f) for v, f in zip(values, factors, strict=True)]


def choose_patch(shape: list[float], spacing: list[float], dims: int, budget: PlanBudget,
                 batch_size: int | None = None, model: str = "unet"
                 ) -> tuple[list[int], int, list[list[int]]]:
    """Patch size, batch size and pooling strides within ``budget.max_batch_voxels``."""
    patch = [float(s) for s in (shape[1:] if dims == 2 else shape)]
    axis_spacing = list(spacing[1:] if dims == 2 else spacing)
    minimum_batch = batch_size or (2 if dims == 3 else MIN_BATCH_2D)
    while True:
        stages = pooling_strides([int(p) for p in patch], axis_spacing)
        factors = [16] * dims if model == "vnet" else _factors(stages, dims)
        rounded = _round_up(patch, factors)
        voxels = int(np.prod(rounded))
        if voxels * minimum_batch <= budget.max_batch_voxels or max(patch) <= 8:
            break
        largest = int(np.argmax([p * s for p, s in zip(patch, axis_spacing, strict=True)]))
        patch[largest] = max(8.0, patch[largest] * 0.9)
    if batch_size is None:
        batch_size = 2 if dims == 3 else int(np.clip(budget.max_batch_voxels // voxels, 2, 32))
    return rounded, batch_size, stages


def model_kwargs(name: str, dims: int, stages: list[list[int]], budget: PlanBudget,
                 spacing: list[float]) -> dict[str, Any]:
    """The network's arguments for this patch geometry."""
    if name == "unet":
        channels = [min(budget.base_channels * 2**i, budget.max_channels)
                    for i in range(len(stages) + 1)]
        # residual units double the CPU time per batch and did not learn faster on the phantom
        return {"channels": channels, "strides": stages,
                "num_res_units": 0 if budget.name == "cpu" else 2}
    if name == "deepmedic":
        axes = spacing[1:] if dims == 2 else spacing
        factor = [1 if s > 2 * min(axes) else 3 for s in axes]
        width = budget.base_channels + 14
        return {"widths": [width, width, width + 10, width + 10, width + 10, width + 10,
                           width + 20, width + 20], "head_widths": [5 * width, 5 * width],
                "factor": factor}
    if name == "vnet":
        return {}
    raise InputError(None, f"no segmentation plan for model {name!r} (unet, vnet, deepmedic)")


def normalization_for(fingerprint: dict[str, Any], channels: list[str]) -> list[dict[str, Any]]:
    """CT: clip to the foreground's 0.5-99.5th percentiles, z-score, plus the `CT_WINDOWS`;
    others: z-score per image."""
    schemes = []
    for channel, stats in zip(channels, fingerprint["foreground_intensity"], strict=True):
        if channel.upper() == "CT" and stats.get("n"):
            schemes.append({"scheme": "ct", "clip": [stats["p00_5"], stats["p99_5"]],
                            "mean": stats["mean"], "std": max(stats["std"], 1e-6),
                            "windows": [list(WINDOWS[name]) for name in CT_WINDOWS]})
        else:
            schemes.append({"scheme": "zscore",
                            "nonzero": bool(stats.get("zero_fraction", 0.0) > 0.2)})
    return schemes


def make_plan(dataset: Any, fingerprint: dict[str, Any],
              config: PlanConfig | None = None) -> Plan:
    """A `Plan` for ``dataset`` (a `SegmentationDataset`) from its fingerprint and overrides."""
    config = config or PlanConfig()
    budget = resolve_budget(config)
    spacing = [float(s) for s in config.spacing_mm] if config.spacing_mm else \
        target_spacing(fingerprint, budget, config.anisotropy_threshold)
    dims = config.dims or choose_dims(spacing, config.anisotropy_threshold)
    if dims not in (2, 3):
        raise InputError(None, f"dims must be 2 or 3, not {dims}")
    shapes = np.asarray(fingerprint["shapes"], float) * np.asarray(fingerprint["spacings_mm"])
    shape = (np.median(shapes, axis=0) / np.asarray(spacing)).tolist()
    patch, batch, stages = choose_patch(shape, spacing, dims, budget, config.batch_size,
                                        config.model)
    if config.patch_size:
        patch = [int(p) for p in config.patch_size]
        stages = pooling_strides(patch, list(spacing[1:] if dims == 2 else spacing))
    kwargs = model_kwargs(config.model, dims, stages, budget, spacing)
    kwargs |= dict(config.model_kwargs or {})
    return Plan(
        dataset=dataset.describe(), fingerprint=fingerprint, dims=dims, spacing_mm=spacing,
        patch_size=patch, batch_size=batch,
        normalization=config.normalization or normalization_for(fingerprint, dataset.channels),
        channels=list(dataset.channels),
        classes={str(k): v for k, v in sorted(dataset.classes.items())},
        model={"name": config.model, "kwargs": kwargs}, budget=asdict(budget),
        overrides=json.loads(json.dumps(asdict(config))))


def plan_dataset(dataset: Any, config: PlanConfig | None = None, *, seed: int = 0,
                 progress: bool = True) -> Plan:
    """Fingerprint ``dataset`` (reading and checking every case) and plan it."""
    from voxelwise.data.fingerprint import compute_fingerprint

    return make_plan(dataset, compute_fingerprint(dataset, seed=seed, progress=progress), config)
