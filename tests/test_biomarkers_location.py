"""Per-lesion location: hemisphere (LPS: +x is the patient's left), supra- or infratentorial and
distance to the midline, on synthetic label maps whose geometry gives the answer in advance."""

from __future__ import annotations

import numpy as np
import pytest

from voxelwise.biomarkers import MidlineEstimate, measure_series
from voxelwise.imaging import Volume
from voxelwise.imaging.resample import reorient

# Stored as a RAS-like scanner would: columns towards the patient's right (-x), rows towards
# anterior (-y), slices towards the head (+z); anisotropic voxels (4 x 0.6 x 0.9 mm).
RAS_LIKE = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
SPACING = (4.0, 0.6, 0.9)
ORIGIN = (60.0, 40.0, -30.0)
SHAPE = (20, 160, 140)


def _grid(direction: np.ndarray = RAS_LIKE) -> Volume:
    return Volume(np.zeros(SHAPE, np.uint8), SPACING, ORIGIN, direction)


def _with_balls(grid: Volume, centres_lps: list[tuple[float, float, float]],
                radius_mm: float = 5.0) -> Volume:
    """A label map on ``grid`` with one ball of label 1 at each LPS centre."""
    index = np.indices(grid.shape).reshape(3, -1).T.astype(float)
    lps = grid.index_to_lps(index)
    array = np.zeros(grid.shape, np.uint8)
    for centre in centres_lps:
        inside = np.linalg.norm(lps - np.asarray(centre), axis=1) <= radius_mm
        array.reshape(-1)[inside] = 1
    return Volume(array, grid.spacing, grid.origin, grid.direction)


def _midline(labels: Volume, through: tuple[float, float], angle_deg: float,
             septum_lps: tuple[float, ...]) -> MidlineEstimate:
    """An ideal midline through the LPS (x, y) point ``through``, turned by ``angle_deg`` from
    the AP axis (as estimate_midline reports one), with the septum at ``septum_lps``."""
    axial = reorient(labels)                         # axes S, P, L: the canonical frame
    frame = Volume(np.zeros((1, 1, 1), np.uint8), axial.spacing, axial.origin, axial.direction)
    theta = np.deg2rad(angle_deg)
    normal = np.array([-np.sin(theta), np.cos(theta)])          # (y, x), to the left
    point = np.array([through[1] - axial.origin[1], through[0] - axial.origin[0]])
    septum = frame.lps_to_index(np.asarray(septum_lps)[None])[0] * np.asarray(axial.spacing)
    along = np.array([np.cos(theta), np.sin(theta)])
    return MidlineEstimate(shift_mm=0.0, signed_shift_mm=0.0, angle_deg=angle_deg, slope=0.0,
                           intercept=float(point @ normal), canonical=frame,
                           septum_slice=int(round(septum[0] / axial.spacing[0])),
                           septum_row_mm=float(septum[1:] @ along))


def _expected_lateral(through: tuple[float, float], angle_deg: float, point) -> float:
    """Signed mm to the left of that plane, from LPS directly."""
    theta = np.deg2rad(angle_deg)
    return (-np.sin(theta) * (point[1] - through[1])
            + np.cos(theta) * (point[0] - through[0]))


def test_grid_is_what_the_test_assumes() -> None:
    grid = _grid()
    corner = grid.index_to_lps(np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]))
    assert np.allclose(corner[1] - corner[0], [-0.9, 0, 0])    # a column further: to the right
    assert np.allclose(corner[2] - corner[0], [0, -0.6, 0])    # a row further: anterior
    assert np.allclose(corner[3] - corner[0], [0, 0, 4.0])     # a slice further: up


def test_hemisphere_follows_lps_x_not_the_array_columns() -> None:
    """Without a CT (no midline) the side is taken from the grid's centre in LPS x."""
    grid = _grid()
    centre = grid.index_to_lps((np.asarray(SHAPE) - 1) / 2.0)[0]
    left = (centre[0] + 25.0, centre[1], centre[2])          # +x: the patient's left
    right = (centre[0] - 18.0, centre[1] + 10.0, centre[2])
    result = measure_series(_with_balls(grid, [left, right], 6.0), None, {1: "haematoma"})
    by_side = {lesion["hemisphere"]: lesion for lesion in result.lesions}
    assert set(by_side) == {"left", "right"}
    assert by_side["left"]["centroid_x_mm"] == pytest.approx(left[0], abs=0.3)
    assert by_side["left"]["midline_distance_mm"] == pytest.approx(25.0, abs=0.3)
    assert by_side["right"]["midline_distance_mm"] == pytest.approx(18.0, abs=0.3)
    assert result.row()["haematoma_hemisphere"] == "bilateral"
    # the same lesion stored with columns towards the left is still on the patient's left
    flipped = Volume(np.zeros(SHAPE, np.uint8), SPACING,
                     (ORIGIN[0] - 0.9 * (SHAPE[2] - 1), ORIGIN[1], ORIGIN[2]),
                     RAS_LIKE * np.array([1.0, 1.0, -1.0]))      # the same box, columns to +x
    mirrored = measure_series(_with_balls(flipped, [left], 6.0), None, {1: "haematoma"})
    assert mirrored.lesions[0]["hemisphere"] == "left"


@pytest.mark.parametrize("angle_deg", [0.0, 12.0])
def test_side_and_distance_from_an_oblique_ideal_midline(angle_deg: float) -> None:
    grid = _grid()
    centre = grid.index_to_lps((np.asarray(SHAPE) - 1) / 2.0)[0]
    through = (centre[0] + 7.0, centre[1])                   # the head is off the grid's centre
    points = [(through[0] + 15.0, centre[1] - 20.0, centre[2]),          # left of the plane
              (through[0] - 12.0, centre[1] + 25.0, centre[2] + 8.0),    # right of it
              (through[0] + 1.0, centre[1] - 30.0, centre[2] - 8.0),     # near it, anterior
              (through[0] - 0.5, centre[1] + 2.0, centre[2] + 16.0)]     # across it
    labels = _with_balls(grid, points, 4.0)
    midline = _midline(labels, through, angle_deg, tuple(centre))
    result = measure_series(labels, None, {1: "haematoma"}, midline=midline)
    assert len(result.lesions) == 4
    for lesion in result.lesions:
        centroid = (lesion["centroid_x_mm"], lesion["centroid_y_mm"], lesion["centroid_z_mm"])
        lateral = _expected_lateral(through, angle_deg, centroid)
        assert lesion["midline_distance_mm"] == pytest.approx(abs(lateral), abs=0.05)
        if abs(lateral) > 4.0:                               # a 4 mm ball: all on one side
            assert lesion["hemisphere"] == ("left" if lateral > 0 else "right")
        elif abs(lateral) < 2.0:                             # > 10% of it on either side
            assert lesion["hemisphere"] == "bilateral"
    # turned 12 deg, the lesion 1 mm left of the plane's AP line and 30 mm anterior is 7.2 mm
    # left of the turned plane
    near = min(result.lesions, key=lambda lesion: lesion["centroid_y_mm"])
    theta = np.deg2rad(angle_deg)
    assert near["midline_distance_mm"] == pytest.approx(
        np.cos(theta) + 30.0 * np.sin(theta), abs=0.3)
    assert near["hemisphere"] == ("left" if angle_deg else "bilateral")


def test_supra_and_infratentorial_relative_to_the_septum() -> None:
    """Below the tentorium's tent behind the septum: infratentorial; above it, or in front of
    it (the middle cranial fossa), supratentorial."""
    grid = Volume(np.zeros((140, 200, 20), np.uint8), (0.9, 0.6, 4.0), (-60.0, -50.0, -40.0),
                  np.eye(3))                         # array axes x, y, z: no axial order
    septum = (3.0, -10.0, 20.0)                      # LPS of the septum's reference
    sx, sy, sz = septum
    # v: mm behind a point 12 mm behind the septum; w: mm above a point 12 mm below it
    expected = {(sx + 20.0, sy + 12.0 + 45.0, sz - 12.0 - 30.0): "infratentorial",  # cerebellum
                (sx - 20.0, sy + 12.0 + 45.0, sz - 12.0 + 16.0): "supratentorial",  # occipital
                (sx + 35.0, sy + 12.0 - 20.0, sz - 12.0 - 30.0): "supratentorial",  # temporal
                # either side of the tent at v 45 (its height there: w -16.9 at the midline)
                (sx + 5.0, sy + 12.0 + 45.0, sz - 12.0 - 19.0): "infratentorial",
                (sx - 5.0, sy + 12.0 + 45.0, sz - 12.0 - 14.5): "supratentorial",
                (sx + 12.0, sy + 12.0 + 4.0, sz - 12.0 - 30.0): "supratentorial"}   # v 4 < 10
    labels = _with_balls(grid, list(expected), 4.0)
    midline = _midline(labels, (sx, sy), 0.0, septum)
    result = measure_series(labels, None, {1: "haematoma"}, midline=midline)
    assert len(result.lesions) == len(expected)
    for point, location in expected.items():
        lesion = min(result.lesions, key=lambda r: np.linalg.norm(
            [r["centroid_x_mm"] - point[0], r["centroid_y_mm"] - point[1],
             r["centroid_z_mm"] - point[2]]))
        assert lesion["centroid_z_mm"] == pytest.approx(point[2], abs=0.5)
        assert lesion["location"] == location, point
    assert result.row()["haematoma_location"] in {"infratentorial", "supratentorial"}
    without = measure_series(labels, None, {1: "haematoma"})        # no CT, no septum
    assert {lesion["location"] for lesion in without.lesions} == {""}
