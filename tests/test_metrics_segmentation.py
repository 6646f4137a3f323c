"""Segmentation metrics: definitions checked against MONAI and DeepMind's surface-distance."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from voxelwise.metrics.segmentation import (
    assd,
    case_metrics,
    dice,
    format_split_table,
    hausdorff95,
    hausdorff95_and_assd,
    iou,
    summarise,
    surface_dice,
)
from voxelwise.metrics.surface import edge_distances, edge_voxels, neighbourhood_codes

ANISOTROPIC = (5.0, 0.45, 0.45)


def _ellipsoid(shape, centre, radii_mm, spacing) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) * s / r) ** 2 for g, c, r, s in
               zip(grid, centre, radii_mm, spacing, strict=True)) <= 1.0


def _pairs(count: int, seed: int = 0):
    """Anisotropic test pairs: ellipsoids of random size and place, noise voxels, masks cut by
    the image border, and one thin (one slice) structure."""
    rng = np.random.default_rng(seed)
    shape = (12, 40, 44)
    for index in range(count):
        spacing = ANISOTROPIC if index % 2 == 0 else tuple(rng.uniform(0.3, 4.0, 3))
        gt = _ellipsoid(shape, rng.uniform([3, 10, 10], [9, 30, 34]),
                        rng.uniform([6, 3, 3], [25, 10, 12]), spacing)
        pred = _ellipsoid(shape, rng.uniform([3, 10, 10], [9, 30, 34]),
                          rng.uniform([6, 3, 3], [25, 10, 12]), spacing)
        pred |= rng.random(shape) < 0.002
        if index % 4 == 1:
            gt[:2, :4, :] = True          # touches the image border
        if index % 4 == 3:
            pred[5, 20:30, 5:9] = True    # a one-slice sliver
        if gt.any() and pred.any():
            yield pred, gt, spacing


def _torch(mask: np.ndarray):
    import torch

    return torch.from_numpy(mask[None, None].astype(np.float32))


def test_hd95_and_assd_agree_with_monai() -> None:
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    torch.set_num_threads(1)
    checked = 0
    for pred, gt, spacing in _pairs(16):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference_hd = compute_hausdorff_distance(
                _torch(pred), _torch(gt), include_background=True, percentile=95,
                spacing=list(spacing)).item()
            reference_assd = compute_average_surface_distance(
                _torch(pred), _torch(gt), include_background=True, symmetric=True,
                spacing=list(spacing)).item()
        assert hausdorff95(pred, gt, spacing) == pytest.approx(reference_hd, abs=1e-3)
        assert assd(pred, gt, spacing) == pytest.approx(reference_assd, abs=1e-3)
        checked += 1
    assert checked >= 12


def test_surface_dice_agrees_with_deepmind() -> None:
    surface_distance = pytest.importorskip("surface_distance")
    for pred, gt, spacing in _pairs(12, seed=1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            distances = surface_distance.compute_surface_distances(gt, pred, spacing)
        for tolerance in (0.5, 2.0, 6.0):
            reference = surface_distance.compute_surface_dice_at_tolerance(distances, tolerance)
            assert surface_dice(pred, gt, spacing, tolerance) == pytest.approx(reference,
                                                                                abs=1e-3)


def test_surface_dice_2d_agrees_with_deepmind() -> None:
    surface_distance = pytest.importorskip("surface_distance")
    rng = np.random.default_rng(3)
    gt = _ellipsoid((50, 60), (25, 30), (12, 9), (0.7, 0.4))
    pred = _ellipsoid((50, 60), (27, 28), (10, 10), (0.7, 0.4)) | (rng.random((50, 60)) < 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        distances = surface_distance.compute_surface_distances(gt, pred, (0.7, 0.4))
    reference = surface_distance.compute_surface_dice_at_tolerance(distances, 1.0)
    assert surface_dice(pred, gt, (0.7, 0.4), 1.0) == pytest.approx(reference, abs=1e-3)
    assert hausdorff95(pred, gt, (0.7, 0.4)) > 0


def test_surfel_table_is_deepmind_table() -> None:
    lookup = pytest.importorskip("surface_distance.lookup_tables")
    from voxelwise.metrics.surface import _surfel_area_table

    ours = _surfel_area_table(ANISOTROPIC)
    assert np.allclose(ours, lookup.create_table_neighbour_code_to_surface_area(ANISOTROPIC),
                       atol=1e-5)
    single = np.pad(np.ones((1, 1, 1), bool), 1)
    codes = neighbourhood_codes(single)
    # the corner at the voxel's low end sees it as its last (lowest-bit) neighbour
    assert codes[0, 0, 0] == 1 and codes[1, 1, 1] == 128


def test_known_values_by_hand() -> None:
    gt = np.zeros((3, 10, 10), bool)
    gt[1, 2:6, 2:6] = True                       # 16 voxels
    pred = np.zeros_like(gt)
    pred[1, 2:6, 4:8] = True                     # shifted by two columns: 8 shared
    assert dice(pred, gt) == pytest.approx(0.5)
    assert iou(pred, gt) == pytest.approx(8 / 24)
    spacing = (5.0, 1.0, 2.0)
    # every voxel of these one-slice squares is an edge voxel; distances are multiples of 2 mm
    distances = edge_distances(pred, gt, spacing)
    assert set(np.round(distances.pred_to_gt, 6)) == {0.0, 2.0, 4.0}
    assert hausdorff95(pred, gt, spacing) == pytest.approx(4.0)
    assert assd(pred, gt, spacing) == pytest.approx(np.mean(np.r_[distances.pred_to_gt,
                                                                  distances.gt_to_pred]))
    assert hausdorff95_and_assd(pred, gt, spacing) == (hausdorff95(pred, gt, spacing),
                                                        assd(pred, gt, spacing))
    assert hausdorff95(gt, gt, spacing) == 0.0 and assd(gt, gt, spacing) == 0.0
    assert surface_dice(gt, gt, spacing, 0.0) == pytest.approx(1.0)


def test_edges_follow_monai_at_the_image_border() -> None:
    from monai.metrics.utils import get_mask_edges

    mask = np.zeros((4, 6, 6), bool)
    mask[:, :3, :] = True                          # fills the image up to three borders
    ours = edge_voxels(np.pad(mask, 1))[1:-1, 1:-1, 1:-1]
    theirs, _ = get_mask_edges(mask, mask, crop=False)
    assert np.array_equal(ours, np.asarray(theirs))


def test_empty_mask_conventions() -> None:
    empty = np.zeros((4, 8, 8), bool)
    full = empty.copy()
    full[1:3, 2:5, 2:5] = True
    spacing = ANISOTROPIC
    # both empty: a perfect match
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert hausdorff95(empty, empty, spacing) == 0.0 and assd(empty, empty, spacing) == 0.0
    assert surface_dice(empty, empty, spacing, 2.0) == 1.0
    # one empty, either way round: no overlap and infinite distances
    for pred, gt in ((empty, full), (full, empty)):
        assert dice(pred, gt) == 0.0 and iou(pred, gt) == 0.0
        assert math.isinf(hausdorff95(pred, gt, spacing)) and math.isinf(assd(pred, gt, spacing))
        assert surface_dice(pred, gt, spacing, 2.0) == 0.0
    rows = case_metrics(np.zeros((4, 8, 8), np.uint8), full.astype(np.uint8), spacing,
                        {1: "haematoma"})
    assert rows[0]["relative_volume_error"] == -1.0
    rows = case_metrics(full.astype(np.uint8), np.zeros((4, 8, 8), np.uint8), spacing,
                        {1: "haematoma"})
    assert math.isinf(rows[0]["relative_volume_error"])


def test_case_metrics_per_class_and_volumes() -> None:
    gt = np.zeros((6, 40, 40), np.uint8)
    gt[2:4, 10:20, 10:20] = 1
    gt[2:4, 25:30, 25:30] = 2
    pred = gt.copy()
    pred[2:4, 10:20, 10:12] = 0                   # haematoma under-segmented
    spacing = (5.0, 0.5, 0.5)
    rows = case_metrics(pred, gt, spacing, {0: "background", 1: "haematoma", 2: "oedema",
                                            3: "absent"})
    assert [r["class"] for r in rows] == ["haematoma", "oedema", "absent"]
    haematoma, oedema, absent = rows
    voxel_ml = 5.0 * 0.5 * 0.5 / 1000
    assert haematoma["volume_gt_ml"] == pytest.approx(200 * voxel_ml)
    assert haematoma["volume_pred_ml"] == pytest.approx(160 * voxel_ml)
    assert haematoma["volume_error_ml"] == pytest.approx(-40 * voxel_ml)
    assert haematoma["abs_volume_error_ml"] == pytest.approx(40 * voxel_ml)
    assert haematoma["relative_volume_error"] == pytest.approx(-0.2)
    assert haematoma["dice"] == pytest.approx(2 * 160 / 360)
    assert haematoma["hd95_mm"] == pytest.approx(hausdorff95(pred == 1, gt == 1, spacing))
    assert oedema["dice"] == 1.0 and oedema["hd95_mm"] == 0.0
    assert absent["dice"] == 1.0 and absent["volume_gt_ml"] == 0.0 and absent["empty"] == "both"
    assert haematoma["empty"] == "" and summarise(
        [{"class": "absent", **absent}])[0]["n_both_empty"] == 1
    with pytest.raises(ValueError, match="shape"):
        case_metrics(pred[:3], gt, spacing, {1: "haematoma"})
    with pytest.raises(ValueError, match="spacing"):
        hausdorff95(pred == 1, gt == 1, (1.0, 1.0))


def test_summarise_reports_infinite_cases_instead_of_averaging_them() -> None:
    rows = [
        {"case": "a", "split": "train", "class": "haematoma", "dice": 0.8, "hd95_mm": 2.0},
        {"case": "b", "split": "train", "class": "haematoma", "dice": 0.6, "hd95_mm": 4.0},
        {"case": "c", "split": "train", "class": "haematoma", "dice": 0.0,
         "hd95_mm": math.inf},
        {"case": "d", "split": "test", "class": "haematoma", "dice": 0.5, "hd95_mm": 3.0},
    ]
    summary = summarise(rows)
    by_key = {(s["split"], s["metric"]): s for s in summary}
    train_hd = by_key[("train", "hd95_mm")]
    assert train_hd["n"] == 3 and train_hd["n_used"] == 2 and train_hd["n_infinite"] == 1
    assert train_hd["mean"] == pytest.approx(3.0) and train_hd["median"] == pytest.approx(3.0)
    assert train_hd["sd"] == pytest.approx(math.sqrt(2))
    assert train_hd["ci95_low"] < 3.0 < train_hd["ci95_high"]
    train_dice = by_key[("train", "dice")]
    assert train_dice["mean"] == pytest.approx(1.4 / 3)
    assert math.isnan(by_key[("test", "dice")]["sd"])          # one case: no sd
    assert [s["split"] for s in summary if s["metric"] == "dice"] == ["train", "test"]

    text = format_split_table(summary)
    lines = text.splitlines()
    assert lines[0] == ("Dice coefficient, haematoma: Training (3 scans): mean 0.47 std 0.42 "
                        "median 0.60 / Test (1 scans): mean 0.50 std n/a median 0.50")
    assert "HD95, haematoma: Training (3 scans): mean 3.00 mm std 1.41 mm median 3.00 mm " \
           "[1 infinite (one mask empty) excluded]" in text
    assert summarise([{"class": "x", "dice": 1.0}])[0]["split"] == "all"
