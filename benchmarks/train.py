"""Training throughput (patches/s): voxelwise's loop against a plain MONAI loop.

Same network (MONAI U-Net with the plan's arguments), same patch, batch, loss (DiceCE), optimiser
(AdamW) and augmentation kinds (crop with foreground oversampling, mirroring, rotation and
scaling, intensity scale/shift, Gaussian noise), on the same preprocessed small head-CT phantom.

* **voxelwise**: `voxelwise.training.fit` over a `voxelwise.data.transforms.PatchSampler`
  (checkpoint every epoch, validation off, so the figure is the training step itself);
* **MONAI**: a `monai.data.Dataset` with RandCropByPosNegLabeld (pos 1 : neg 2), RandFlipd,
  RandAffined, RandScaleIntensityd, RandShiftIntensityd, RandGaussianNoised and a DataLoader
  (num_workers as given), and the usual zero_grad / forward / backward / step loop.

    python benchmarks/train.py                    # --dims 3 --iterations 40 --device auto
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def prepare(root: Path, dims: int) -> tuple[list, list[int], int, dict]:
    from voxelwise.data.datasets import export_msd_folder
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study
    from voxelwise.data.plan import PlanConfig, plan_dataset
    from voxelwise.data.preprocess import load_preprocessed, preprocess_dataset

    phantom = generate_head_ct_study(root / "phantom", centers=2, patients=2, followups=1,
                                     size="small", progress=False)
    dataset = export_msd_folder(phantom.root, root / "msd")
    patch = [16, 64, 64] if dims == 3 else [96, 96]
    plan = plan_dataset(dataset, PlanConfig(budget="cpu", dims=dims, patch_size=patch,
                                            batch_size=2 if dims == 3 else 12), progress=False)
    out = preprocess_dataset(dataset, plan, root / "pre", progress=False)
    cases = load_preprocessed(out, [c.case_id for c in dataset.cases])
    return cases, plan.patch_size, plan.batch_size, plan.model_spec()


def run_voxelwise(cases, patch, batch, spec, iterations, device, run_dir) -> float:
    from monai.losses import DiceCELoss

    from voxelwise.data.transforms import Augment, PatchSampler
    from voxelwise.models import build_from_spec
    from voxelwise.training import TrainingConfig, fit, seed_everything

    seed_everything(0)
    model = build_from_spec(spec)
    sampler = PatchSampler(cases, patch, batch, iterations, augment=Augment(), device=device)
    config = TrainingConfig(epochs=2, device=str(device), optimizer="adamw",
                            learning_rate=1e-3)
    loss = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    result = fit(model, sampler, loss, run_dir, config, description="voxelwise")
    seconds = result.history[-1]["seconds"]  # the second epoch: warm
    return iterations * batch / seconds


def run_monai(cases, patch, batch, spec, iterations, device, workers) -> float:
    from monai import transforms as mt
    from monai.data import DataLoader, Dataset
    from monai.losses import DiceCELoss

    from voxelwise.models import build_from_spec
    from voxelwise.training import seed_everything

    seed_everything(0)
    dims = len(patch)
    if dims == 2:  # 2D: one item per slice, as a plain 2D MONAI pipeline would have
        items = [{"image": c.image[:, z], "label": c.label[None, z]} for c in cases
                 for z in range(c.label.shape[0])]
    else:
        items = [{"image": c.image, "label": c.label[None]} for c in cases]
    keys = ["image", "label"]
    axes = (dims - 2, dims - 1)
    pipeline = mt.Compose([
        mt.RandCropByPosNegLabeld(keys, "label", patch, pos=1, neg=2, num_samples=1),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=axes[0]),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=axes[1]),
        mt.RandAffined(keys, prob=0.3, rotate_range=[0.26] if dims == 2 else [0.0, 0.0, 0.26],
                       scale_range=[0.15] * dims, mode=("bilinear", "nearest"),
                       padding_mode="border"),
        mt.RandScaleIntensityd("image", factors=0.15, prob=0.3),
        mt.RandShiftIntensityd("image", offsets=0.1, prob=0.3),
        mt.RandGaussianNoised("image", prob=0.15, std=0.1),
    ])
    loader = DataLoader(Dataset(items, pipeline), batch_size=batch, shuffle=True,
                        num_workers=workers, drop_last=True)
    model = build_from_spec({**spec}).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    done, started = 0, None
    while done < 2 * iterations:
        for data in loader:
            if done == iterations:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
            image, label = data["image"].to(device), data["label"].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(image), label)
            loss.backward()
            optimizer.step()
            loss.item()
            done += 1
            if done == 2 * iterations:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iterations * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, choices=(2, 3), default=3)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=0, help="MONAI DataLoader workers")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Num foregrounds")
    torch.set_num_threads(args.threads)
    from voxelwise.training import resolve_device

    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        cases, patch, batch, spec = prepare(root, args.dims)
        print(f"{args.dims}D U-Net {spec['kwargs']['channels']}, patch {patch}, batch {batch}, "
              f"{args.iterations} timed batches, device {device}")
        ours, theirs = [], []
        for repeat in range(args.repeats):
            theirs.append(run_monai(cases, patch, batch, spec, args.iterations, device,
                                    args.workers))
            ours.append(run_voxelwise(cases, patch, batch, spec, args.iterations, device,
                                      root / f"run{repeat}"))
            print(f"run {repeat + 1}: voxelwise {ours[-1]:.1f} patches/s, plain MONAI loop "
                  f"{theirs[-1]:.1f} patches/s", flush=True)
    ratio = np.median(ours) / np.median(theirs)
    print(f"median: voxelwise {np.median(ours):.1f} patches/s, MONAI {np.median(theirs):.1f} "
          f"patches/s, ratio {ratio:.2f}x ({'not slower' if ratio >= 0.95 else 'SLOWER'})")


if __name__ == "__main__":
    main()
