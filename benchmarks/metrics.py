"""HD95 + ASSD: voxelwise against MONAI on the same 512 x 512 x 40 mask pair.

    python benchmarks/metrics.py [--repeats 5] [--scenario lesion|distant-fp|large] [--threads 1]

Builds a ground-truth haematoma-like lesion (an ellipsoid of about 40 mL with an irregular,
noise-modulated border) on a 40 x 512 x 512 grid at 5.0 x 0.45 x 0.45 mm (array axis order:
slice, row, column; that is 0.45 x 0.45 x 5 mm in x, y, z) and a prediction that is shifted,
resized and differently irregular. ``--scenario distant-fp`` adds a false-positive island in the
other hemisphere, which makes the masks' bounding box (and our distance transforms) large: the
worst case for cropping; ``--scenario large`` makes both lesions about 155 mL (a box of 0.65
million voxels).

Times, each ``--repeats`` times after one untimed warm-up call (imports, caches):

* **voxelwise**: `voxelwise.metrics.segmentation.hausdorff95_and_assd`, the one pass
  `case_metrics` makes (crop to the union's bounding box, edge voxels, scipy's exact EDT on the
  box once per direction), and `hausdorff95` and `assd` called one after the other (each makes
  the whole pass);
* **MONAI** (1.6): ``compute_hausdorff_distance(percentile=95)`` and
  ``compute_average_surface_distance(symmetric=True)`` on (1, 1, D, H, W) tensors with the same
  spacing;

and prints the medians, MONAI / voxelwise as a ratio, and both results (they must agree).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from voxelwise.metrics.segmentation import assd, hausdorff95, hausdorff95_and_assd

SHAPE = (40, 512, 512)
SPACING = (5.0, 0.45, 0.45)


def _lesion(centre, radii_mm, noise: np.ndarray, threshold: float) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for n in SHAPE)]
    radius = sum(((g - c) * s / r) ** 2 for g, c, r, s in
                 zip(grid, centre, radii_mm, SPACING, strict=True))
    return radius <= 1.0 + threshold * noise


def masks(scenario: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, ground truth) as bool arrays of shape SHAPE."""
    rng = np.random.default_rng(seed)
    smooth = [ndimage.gaussian_filter(rng.standard_normal(SHAPE), (0.6, 10, 10)) for _ in "ab"]
    smooth = [n / n.std() for n in smooth]
    radii = {"large": ((45, 32, 26), (47, 30, 27))}.get(scenario, ((26, 22, 18), (28, 21, 19)))
    gt = _lesion((20, 250, 300), radii[0], smooth[0], 0.25)
    pred = _lesion((21, 255, 296), radii[1], smooth[1], 0.3)
    if scenario == "distant-fp":
        pred |= _lesion((24, 300, 130), (12, 6, 6), smooth[0], 0.0)
    return pred, gt


def _median_time(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    function()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scenario", choices=("lesion", "distant-fp", "large"), default="lesion")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for MONAI (1)")
    args = parser.parse_args()

    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    torch.set_num_threads(args.threads)
    pred, gt = masks(args.scenario)
    voxel_ml = float(np.prod(SPACING)) / 1000
    print(f"masks {SHAPE} at {SPACING} mm ({args.scenario}): truth {gt.sum() * voxel_ml:.1f} mL,"
          f" prediction {pred.sum() * voxel_ml:.1f} mL")

    def ours_separate():
        return hausdorff95(pred, gt, SPACING), assd(pred, gt, SPACING)

    def ours_shared():
        return hausdorff95_and_assd(pred, gt, SPACING)

    pred_t, gt_t = (torch.from_numpy(m[None, None]) for m in (pred, gt))

    def monai_hd95():
        return compute_hausdorff_distance(pred_t, gt_t, include_background=True,
                                          percentile=95, spacing=list(SPACING)).item()

    def monai_assd():
        return compute_average_surface_distance(pred_t, gt_t, include_background=True,
                                                symmetric=True, spacing=list(SPACING)).item()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_sep, (hd, sd) = _median_time(ours_separate, args.repeats)
        t_shared, _ = _median_time(ours_shared, args.repeats)
        t_mhd, mhd = _median_time(monai_hd95, args.repeats)
        t_masd, masd = _median_time(monai_assd, args.repeats)
    monai_total = t_mhd + t_masd
    print(f"HD95: voxelwise {hd:.4f} mm, MONAI {mhd:.4f} mm; "
          f"ASSD: voxelwise {sd:.4f} mm, MONAI {masd:.4f} mm")
    print(f"MONAI     hd95 {t_mhd:.3f} s + assd {t_masd:.3f} s = {monai_total:.3f} s")
    print(f"voxelwise hausdorff95_and_assd() {t_shared:.3f} s -> ratio MONAI / voxelwise "
          f"{monai_total / t_shared:.1f}")
    print(f"voxelwise hausdorff95() + assd() {t_sep:.3f} s -> ratio MONAI / voxelwise "
          f"{monai_total / t_sep:.1f}")
    agree = abs(hd - mhd) < 1e-3 and abs(sd - masd) < 1e-3
    print("results agree to 1e-3 mm" if agree else "RESULTS DIFFER")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
