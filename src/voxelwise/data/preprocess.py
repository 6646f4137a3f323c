"""Preprocessing: canonical orientation, the plan's spacing, normalisation; cached per case.

`preprocess_image` is the one function that turns an image into what a network of a plan sees,
for training and for inference alike. `preprocess_dataset` writes every case once into
``RUN/preprocessed/`` (``CASE.npz``: ``image`` float32 (channels, *shape), ``label`` uint8,
``foreground`` sampled voxel indices per class for foreground oversampling) and
``preprocessed.json``; an interrupted run resumes, a finished one is reused while the plan's
`Plan.preprocessing_key` holds.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelwise.data.datasets import SegmentationDataset, load_case
from voxelwise.data.plan import Plan
from voxelwise.errors import InputError
from voxelwise.fileio import atomic_path, replace_directory, write_text_atomic
from voxelwise.imaging.volume import Volume
from voxelwise.imaging.windows import apply_window

MANIFEST = "preprocessed.json"
FOREGROUND_SAMPLES = 10_000


def _on_plan_grid(image: Volume, plan: Plan) -> Volume:
    from voxelwise.imaging.resample import reorient, resample

    canonical = reorient(image)
    if np.allclose(canonical.spacing, plan.spacing_mm, rtol=1e-3):
        return canonical
    return resample(canonical, plan.spacing_mm, "linear")


def normalise(array: np.ndarray, scheme: dict[str, Any]) -> np.ndarray:
    """The network input channels of one image channel, as the plan says, float32 (n, *shape).

    ``ct``: clipped and z-scored, then one channel per ``windows`` entry ((level, width) in HU,
    mapped to 0..1 by `apply_window`); ``zscore``: z-scored (inside the non-zero region with
    ``nonzero``).
    """
    array = array.astype(np.float32, copy=False)
    if scheme["scheme"] == "ct":
        low, high = scheme["clip"]
        channels = [(np.clip(array, low, high) - scheme["mean"]) / scheme["std"]]
        channels += [apply_window(array, level, width)
                     for level, width in scheme.get("windows") or ()]
        return np.stack(channels).astype(np.float32, copy=False)
    if scheme["scheme"] == "zscore":
        region = array[array != 0] if scheme.get("nonzero") else array
        if region.size == 0:
            return np.zeros_like(array)[None]
        result = (array - region.mean()) / max(float(region.std()), 1e-6)
        if scheme.get("nonzero"):
            result[array == 0] = 0.0
        return result.astype(np.float32)[None]
    raise InputError(None, f"unknown normalisation scheme {scheme['scheme']!r} (ct, zscore)")


def preprocess_image(image: Volume | Sequence[Volume], plan: Plan) -> tuple[np.ndarray, Volume]:
    """(float32 array (channels, *shape), the Volume of its grid): canonical, resampled, normalised.

    ``image`` is one Volume per channel (a single Volume for one channel). The returned Volume
    holds channel 0 on the plan's grid; resample predictions back with `resample_to`.
    """
    images = [image] if isinstance(image, Volume) else list(image)
    if len(images) != len(plan.channels):
        raise InputError(None, f"{len(images)} image channel(s) given; the plan expects "
                         f"{len(plan.channels)} ({', '.join(plan.channels)})")
    grid = _on_plan_grid(images[0], plan)
    channels = [grid.array]
    for other in images[1:]:
        from voxelwise.imaging.resample import resample_to

        channels.append(resample_to(other, grid, "linear").array)
    array = np.concatenate([normalise(a, s)
                            for a, s in zip(channels, plan.normalization, strict=True)])
    return array, grid.with_array(array[0])


def preprocess_label(label: Volume, grid: Volume) -> np.ndarray:
    """A label map on a preprocessed grid (nearest neighbour), uint8."""
    from voxelwise.imaging.resample import resample_to

    return resample_to(label, grid, "nearest").array.astype(np.uint8)


def foreground_locations(label: np.ndarray, classes: Sequence[int], seed: int = 0
                         ) -> dict[str, np.ndarray]:
    """Up to `FOREGROUND_SAMPLES` voxel indices (n, 3) of each class, for patch sampling."""
    rng = np.random.default_rng(seed)
    locations = {}
    for value in classes:
        where = np.argwhere(label == value)
        if len(where) > FOREGROUND_SAMPLES:
            where = where[rng.choice(len(where), FOREGROUND_SAMPLES, replace=False)]
        locations[str(value)] = where.astype(np.int32)
    return locations


@dataclass
class PreprocessedCase:
    """One case as the network sees it."""

    case_id: str
    image: np.ndarray                      # float32 (channels, *shape)
    label: np.ndarray                      # uint8 (*shape)
    foreground: dict[str, np.ndarray]      # class -> (n, 3) voxel indices


def _write_case(folder: Path, dataset: SegmentationDataset, case_index: int, plan: Plan) -> dict:
    case = dataset.cases[case_index]
    loaded = load_case(dataset, case)
    image, grid = preprocess_image(loaded.images, plan)
    label = preprocess_label(loaded.label, grid)
    classes = [int(k) for k in plan.classes if int(k) > 0]
    foreground = foreground_locations(label, classes, seed=case_index)
    with atomic_path(folder / f"{case.case_id}.npz") as temporary:
        np.savez(temporary, image=image, label=label,
                 **{f"foreground_{k}": v for k, v in foreground.items()})
    present = sorted(int(v) for v in np.unique(label) if v > 0)
    return {"shape": list(label.shape), "spacing_mm": list(grid.spacing),
            "classes_present": present, "positive": bool(present)}


def preprocess_dataset(dataset: SegmentationDataset, plan: Plan, out_dir: str | Path, *,
                       progress: bool = True) -> Path:
    """Write every case of ``dataset`` preprocessed for ``plan`` into ``out_dir``; resumable."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    key = plan.preprocessing_key()
    if _manifest_key(out) == key:
        return out
    staging = out.with_name(f".{out.name}.partial")
    if _manifest_key(staging, "key.json") != key:
        shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    write_text_atomic(staging / "key.json", json.dumps({"key": key}))
    started = time.perf_counter()
    cases = {}
    for index, case in enumerate(tqdm(dataset.cases, desc="preprocess", leave=False,
                                      disable=None if progress else True)):
        info = staging / f"{case.case_id}.json"
        if info.is_file() and (staging / f"{case.case_id}.npz").is_file():
            cases[case.case_id] = json.loads(info.read_text(encoding="utf-8"))
            continue
        cases[case.case_id] = _write_case(staging, dataset, index, plan)
        write_text_atomic(info, json.dumps(cases[case.case_id]))
    for case in dataset.cases:
        (staging / f"{case.case_id}.json").unlink()
    (staging / "key.json").unlink()
    manifest = {"key": key, "dataset": plan.dataset, "spacing_mm": plan.spacing_mm,
                "normalization": plan.normalization, "cases": cases,
                "seconds": round(time.perf_counter() - started, 2)}
    write_text_atomic(staging / MANIFEST, json.dumps(manifest, indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_directory(staging, out)
    return out


def _manifest_key(folder: Path, name: str = MANIFEST) -> str | None:
    try:
        return json.loads((folder / name).read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError):
        return None


def load_preprocessed(folder: str | Path, case_ids: Sequence[str]) -> list[PreprocessedCase]:
    """The cached cases ``case_ids`` from a `preprocess_dataset` folder."""
    folder = Path(folder)
    cases = []
    for case_id in case_ids:
        path = folder / f"{case_id}.npz"
        try:
            with np.load(path) as data:
                foreground = {k.removeprefix("foreground_"): data[k] for k in data.files
                              if k.startswith("foreground_")}
                cases.append(PreprocessedCase(case_id, data["image"], data["label"], foreground))
        except (OSError, KeyError, ValueError) as error:
            raise InputError(path, f"preprocessed case unreadable ({error}); run "
                             "`voxelwise preprocess` again") from error
    return cases
