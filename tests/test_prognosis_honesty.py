"""Honesty checks: imaging helps where the phantom says it does, and only there.

Two head-CT phantoms of 240 patients (4 centers x 60, admission scan only, small size, seed 0)
differ only in ``imaging_effect``: 1 (outcome depends on haematoma volume and midline shift) and
0 (the control: same images, outcome and GCS independent of them). Imaging features come from
the phantom's ground truth (labels.csv turned into the biomarkers.csv format): the generator
has no mode that skips writing DICOM, and this keeps the test on what the prognosis layer does.

Why these numbers, and why the result is not cherry-picked:
- Size: at 160 patients the imaging effect gave DeLong p = 0.03 (seed 0), too close to 0.05 for
  a test; at 240 patients the expected z is sqrt(1.5) larger. Measured before this test was
  written, with the code as it is: effect phantom p = 0.0003 (seed 0) and 0.0011 (seed 1) for
  mortality (logistic), control p = 0.38 (seed 0); at 160 patients the control gave 0.74.
- Seed 0 is the project's default seed, fixed before any result was seen; no other seed was
  tried for the control first. Under the null the paired DeLong test of out-of-fold predictions
  rejects at most about 5% of the time (it is conservative for nested models, where the extra
  features can only add noise), so a control test at alpha = 0.05 on a pre-fixed seed is a
  fair check that can fail: it would fail if outcome information leaked into the imaging
  features (e.g. a join on the wrong key, an outcome column taken as a feature) or if patients
  sat in both training and test folds. The assertions are the issue's: significant and positive
  with the effect, not significant without it.
"""

from __future__ import annotations

import pytest

from voxelwise.prognosis import PrognosisConfig, biomarkers_from_phantom_labels, run_prognosis

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study

    root = tmp_path_factory.mktemp("honesty")
    return {effect: generate_head_ct_study(root / f"effect_{effect:g}", centers=4, patients=60,
                                           followups=0, size="small", seed=0,
                                           imaging_effect=effect, progress=False, workers=2)
            for effect in (1.0, 0.0)}


def _mortality(study, out):
    config = PrognosisConfig(outcome="mortality", models=["logistic"], seed=0)
    return run_prognosis(config, out, clinical=sorted((study.root / "clinical").glob("*.csv")),
                         biomarkers=biomarkers_from_phantom_labels(study.root / "labels.csv")
                         ).check()


def test_imaging_beats_clinical_only_where_outcome_depends_on_it(phantoms, tmp_path) -> None:
    result = _mortality(phantoms[1.0], tmp_path / "effect")
    comparison = result.comparisons[0]
    assert result.data.n == 240 and result.data.account.no_imaging == []
    assert comparison.difference.value > 0 and comparison.difference.lower > 0
    assert comparison.p_value < 0.05


def test_no_significant_difference_on_the_control_phantom(phantoms, tmp_path) -> None:
    result = _mortality(phantoms[0.0], tmp_path / "control")
    comparison = result.comparisons[0]
    assert result.data.n == 240
    assert comparison.p_value >= 0.05
    assert comparison.difference.lower <= 0 <= comparison.difference.upper
