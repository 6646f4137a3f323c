"""QC checks of one series: each flag raised by the input that should raise it, and only then."""

from __future__ import annotations

import numpy as np

from voxelwise.imaging import Volume
from voxelwise.ingest.qc import QC_FLAGS, QCThresholds, series_qc


def _head(slices: int = 14, fov_margin: int = 6) -> Volume:
    array = np.full((slices, 48, 48), -1000, np.int16)
    array[:, fov_margin:48 - fov_margin, fov_margin:48 - fov_margin] = 40
    return Volume(array, (5.0, 0.5, 0.5), meta={"modality": "CT", "units": "HU"})


def _flags(volume: Volume, thresholds: QCThresholds = QCThresholds()) -> set[str]:
    return {flag.flag for flag in series_qc(volume, thresholds)}


def test_clean_head_passes() -> None:
    assert _flags(_head()) == set()


def test_each_content_check() -> None:
    assert _flags(_head(slices=6)) == {"too-few-slices"}
    assert _flags(_head(fov_margin=0)) == {"truncated-fov"}
    metal = _head()
    array = metal.array.copy()
    array[7, 20:24, 20:24] = 3500
    assert _flags(metal.with_array(array)) == {"metal-artefact"}
    assert _flags(metal.with_array(array), QCThresholds(max_metal_fraction=0.01)) == set()
    sagittal = Volume(_head().array, (5.0, 0.5, 0.5), direction=np.eye(3),
                      meta={"modality": "CT"})
    assert _flags(sagittal) == {"non-axial"}


def test_reader_problems_become_flags() -> None:
    head = _head()
    problems = [{"kind": "missing-slice", "message": "1 missing slice between A and B"},
                {"kind": "gantry-tilt", "message": "gantry tilt 8.50 deg"},
                {"kind": "multiple-series", "message": "not a property of this series"}]
    flagged = series_qc(head.with_array(head.array, problems=problems))
    assert {f.flag for f in flagged} == {"missing-slice", "gantry-tilt"}
    assert all(f.flag in QC_FLAGS for f in flagged)


def test_non_ct_skips_hu_checks() -> None:
    mr = Volume(np.full((4, 16, 16), 3500, np.int16), meta={"modality": "MR"})
    assert _flags(mr) == set()


def test_above_matches_numpy_comparison_without_float64() -> None:
    from voxelwise.ingest.qc import above

    values = np.array([-32768, -1001, -1000, -500, 0, 2999, 3000, 3001, 32767], np.int16)
    for threshold in (-1e6, -32768.5, -1000.5, -500.0, 2999.9, 3000.0, 32767.0, 1e6):
        assert np.array_equal(above(values, threshold), values.astype(np.float64) > threshold)
    unsigned = np.array([0, 1, 4095], np.uint16)
    assert np.array_equal(above(unsigned, -0.5), [True, True, True])
    assert np.array_equal(above(unsigned, 1.5), [False, False, True])
    floats = np.array([0.5, 3000.25], np.float32)
    assert np.array_equal(above(floats, 3000.0), [False, True])
