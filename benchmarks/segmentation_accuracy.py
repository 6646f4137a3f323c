"""Segmentation accuracy on the head-CT phantom: CPU training within a time budget, test Dice.

24 patients x 3 time points (3 centers x 8 patients, 2 follow-ups, full size: 512 x 512 x 32 at
0.41-0.49 mm x 5 mm), exported as an nnU-Net folder, planned with the CPU budget, split by
patient (20% test, one validation fold), trained for as many epochs as fit ``--minutes`` (the
pace is measured on a first short epoch), then every case is predicted on the plan's grid, its
class probabilities resampled back to its native grid as `voxelwise infer` does
(`labels_on_grid`: linear, then argmax) and scored there against the truth.
Targets: mean test Dice >= 0.85 haematoma, >= 0.70 oedema.

    python benchmarks/segmentation_accuracy.py          # --minutes 20 --out seg-accuracy
    python benchmarks/segmentation_accuracy.py --patients 2 --followups 1 --minutes 3   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

TARGETS = {"haematoma": 0.85, "oedema": 0.70}


def _config(args: argparse.Namespace, epochs: int, iterations: int):
    from voxelwise.data.plan import PlanConfig
    from voxelwise.tasks.segmentation.train import SegmentationConfig
    from voxelwise.training import TrainingConfig

    return SegmentationConfig(
        plan=PlanConfig(budget="cpu"), folds=1, test_fraction=0.2,
        training=TrainingConfig(epochs=epochs, iterations_per_epoch=iterations, device="cpu",
                                optimizer="adamw", learning_rate=1e-2, threads=args.threads,
                                seed=args.seed))


def train_within(args: argparse.Namespace, dataset, run: Path):
    """Measure the pace on one short epoch, then train for the epochs that fit the budget."""
    from voxelwise.tasks.segmentation.train import train_segmentation

    started = time.perf_counter()
    # two probe epochs, the faster one sets the pace: the first also warms up (allocations,
    # page cache) and once took 27 times as long as the next, leaving 2 epochs of budget
    probe = train_segmentation(dataset, run / "probe", _config(args, 2, args.iterations),
                               progress=False)
    epoch_s = min(row["seconds"] for row in probe.folds[0].history)
    budget_s = args.minutes * 60 - (time.perf_counter() - started)
    epochs = max(1, math.floor(budget_s / (epoch_s * 1.05)))
    print(f"pace {epoch_s:.1f} s/epoch of {args.iterations} batches -> {epochs} epochs in "
          f"{budget_s / 60:.1f} min", flush=True)
    for name in ("plan.json", "splits.json"):
        (run / name).write_text((run / "probe" / name).read_text())
    (run / "preprocessed").symlink_to((run / "probe" / "preprocessed").resolve())
    result = train_segmentation(dataset, run, _config(args, epochs, args.iterations),
                                progress=False)
    return result, time.perf_counter() - started


def score(dataset, result, min_volume_ml: float | None) -> tuple[list[dict], list[dict]]:
    """Per case and class metrics of the raw network output and after removing components below
    ``min_volume_ml`` (None: the per-class volumes the run chose on its validation cases), both
    by the path of `voxelwise infer` (`predict_probabilities`, `labels_on_grid`)."""
    from voxelwise.data.datasets import load_case
    from voxelwise.inference import InferenceConfig, load_ensemble, predict_probabilities
    from voxelwise.inference.postprocess import labels_on_grid, remove_small_components
    from voxelwise.metrics.segmentation import case_metrics

    plan, splits = result.plan, result.splits
    ensemble = load_ensemble(result.run_dir, [0])
    minimum = ensemble.min_volumes_ml if min_volume_ml is None else min_volume_ml
    split_of = {c: "test" for c in splits.test}
    split_of |= {c: "train" for c in splits.folds[0]["train"]}
    split_of |= {c: "validation" for c in splits.folds[0]["validation"]}
    classes = {int(k): v for k, v in plan.classes.items() if int(k)}
    raw, rows = [], []
    for case in dataset.cases:
        loaded = load_case(dataset, case)
        probabilities, grid = predict_probabilities(ensemble, loaded.images, InferenceConfig())
        native = labels_on_grid(probabilities, grid, loaded.label)
        predicted, _ = remove_small_components(native, loaded.label.spacing, minimum)
        for labels, out in ((native, raw), (predicted, rows)):
            for row in case_metrics(labels, loaded.label.array, loaded.label.spacing, classes):
                out.append({"case": case.case_id, "split": split_of.get(case.case_id), **row})
    return raw, rows


def by_subtype(rows: list[dict], phantom_root: Path) -> list[str]:
    """Haematoma Dice per combination of the phantom's bleed subtypes (which lesions are hard)."""
    patients = json.loads((phantom_root / "phantom.json").read_text())["patients"]
    kinds = {p["patient_id"]: "+".join(sorted({le["subtype"] for le in p["lesions"]})) or "none"
             for p in patients}
    groups: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        if row["class"] == "haematoma":
            kind = kinds[row["case"].rsplit("_t", 1)[0]]
            groups.setdefault((kind, row["split"] or "-"), []).append(float(row["dice"]))
    lines = [f"{'subtypes':<48} {'split':<10} {'n':>3} {'mean Dice':>9}"]
    for (kind, split), values in sorted(groups.items()):
        lines.append(f"{kind:<48} {split:<10} {len(values):>3} {np.mean(values):>9.3f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("seg-accuracy"))
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget")
    parser.add_argument("--centers", type=int, default=3)
    parser.add_argument("--patients", type=int, default=8, help="per center")
    parser.add_argument("--followups", type=int, default=2)
    parser.add_argument("--size", default="full")
    # 150 batches an epoch: validation (sliding windows over every validation case) costs about
    # as much as 40 batches on 2 cores, so short epochs spent a third of the budget validating
    parser.add_argument("--iterations", type=int, default=150, help="batches per epoch")
    parser.add_argument("--min-volume-ml", type=float,
                        help="post-processing as `voxelwise infer --min-volume-ml`: predicted "
                        "components below this volume removed (default: the volumes per class "
                        "chosen on the validation cases, RUN/postprocessing.json)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from voxelwise.data.datasets import export_msd_folder
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study
    from voxelwise.metrics.segmentation import format_split_table, summarise

    phantom = generate_head_ct_study(args.out / "phantom", centers=args.centers,
                                     patients=args.patients, followups=args.followups,
                                     size=args.size, seed=args.seed, progress=False)
    dataset = export_msd_folder(phantom.root, args.out / "dataset")
    run = args.out / f"run-{time.strftime('%Y%m%dT%H%M%S')}"
    result, seconds = train_within(args, dataset, run)
    plan = result.plan
    print(f"plan: {plan.dims}D, {plan.spacing_mm} mm, patch {plan.patch_size}, batch "
          f"{plan.batch_size}; trained {len(result.folds[0].history)} epochs in "
          f"{seconds / 60:.1f} min (best validation Dice {result.folds[0].best_metric:.3f})")
    raw, rows = score(dataset, result, args.min_volume_ml)
    raw_test = {e["class"]: e["mean"] for e in summarise(raw)
                if e["split"] == "test" and e["metric"] == "dice"}
    print("raw network output, test Dice: "
          + ", ".join(f"{name} {value:.3f}" for name, value in raw_test.items()))
    chosen = (result.postprocessing or {}).get("min_volume_ml", {})
    print("below: after removing predicted components under "
          + (f"{args.min_volume_ml} mL" if args.min_volume_ml is not None else
             ", ".join(f"{name} {ml:g} mL" for name, ml in chosen.items())
             + " (chosen on the validation cases)"))
    summary = summarise(rows)
    print(format_split_table(summary, metrics=["dice", "hd95_mm", "volume_error_ml"]))
    print("\n".join(by_subtype(rows, phantom.root)))
    test = {e["class"]: e["mean"] for e in summary
            if e["split"] == "test" and e["metric"] == "dice"}
    for name, target in TARGETS.items():
        value = test.get(name, float("nan"))
        # an empty prediction of an empty truth scores 1 (the documented convention): show the
        # mean over the scans that hold the class beside it, where only overlap counts
        holding = [float(r["dice"]) for r in rows if r["split"] == "test" and r["class"] == name
                   and r["empty"] in ("", "prediction")]
        print(f"test Dice {name}: {value:.3f} (target {target:.2f}: "
              f"{'met' if value >= target else 'NOT met'}); over the {len(holding)} test scans "
              f"that hold it: {np.mean(holding) if holding else float('nan'):.3f}")
    (run / "accuracy.json").write_text(json.dumps(
        {"rows": rows, "summary": summary, "training_minutes": seconds / 60,
         "epochs": len(result.folds[0].history), "test_dice": test}, indent=1, default=str))


if __name__ == "__main__":
    main()
