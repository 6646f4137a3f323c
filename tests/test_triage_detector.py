"""`triage score` from a detector run on a small ingested phantom, with a fake predictor."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from voxelwise.data.phantoms.head_ct import generate_head_ct_study
from voxelwise.ingest.pipeline import ingest_folder
from voxelwise.store import Repository
from voxelwise.triage.score import score_from_run
from voxelwise.triage.worklist import add_studies, list_worklist, requests_for

T0 = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)


class FakeDetector:
    """Scores a study by its share of voxels in the acute-blood range (50-90 HU)."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, run_dir: Path, images: list) -> np.ndarray:
        self.calls.append(len(images))
        self.shapes += [image.array.shape for image in images]
        blood = [float(((image.array >= 50) & (image.array <= 90)).mean()) for image in images]
        return np.array([[b, 0.0] for b in blood])  # any_ich first, then another finding


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("triage")
    study = generate_head_ct_study(root / "phantom", centers=1, patients=2, followups=1,
                                   size="small", progress=False, workers=1)
    (center,) = sorted((study.root / "dicom").iterdir())
    with Repository.open(root / "repository") as repository:
        ingest_folder(center, repository, center.name, key_path=root / "deid.key",
                      progress=False, workers=1)
    return root


def test_scores_from_a_detector_run_reprioritise_and_resume(ingested: Path,
                                                            tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    detector = FakeDetector()
    with Repository.open(ingested / "repository") as repository:
        with repository.session() as session:
            added = add_studies(session, requests_for(session, None, T0, "routine",
                                                      dt.timedelta(minutes=7)))
        assert len(added.added) == 4
        with repository.session() as session:
            before = list_worklist(session)
        result = score_from_run(repository, run, threshold=0.0, predictor=detector,
                                batch_size=3, progress=False)
        scores = sorted(c["score"] for c in result.changes)
        assert detector.calls == [3, 1] and all(len(s) == 3 for s in detector.shapes)
        assert result.scored == 4 and len(result.changes) == 4  # everything >= 0: stat
        (run / "operating_points.json").write_text(json.dumps(
            {"any_ich": {"high_sensitivity": {"threshold": scores[1] + 1e-12}}}))
        again = score_from_run(repository, run, predictor=detector, progress=False)
        assert detector.calls == [3, 1]  # already scored by this run: not predicted again
        assert again.scored == 4 and again.unchanged == 0  # same scores, new threshold
        assert sorted(c["to"] for c in again.changes) == ["routine", "routine"]
        with repository.session() as session:
            after = list_worklist(session)
        assert [r["final"] for r in after] == ["stat", "stat", "routine", "routine"]
        stat_uids = {r["study_instance_uid"] for r in after if r["final"] == "stat"}
        by_score = {r["study_instance_uid"]: r["score"] for r in after}
        assert min(by_score[u] for u in stat_uids) >= max(  # (rounded to 3 digits)
            by_score[u] for u in set(by_score) - stat_uids)
        assert [r["final"] for r in before] == ["routine"] * 4
        rescored = score_from_run(repository, run, predictor=detector, rescore=True,
                                  progress=False)
        assert detector.calls == [3, 1, 4] and rescored.changes == []
        assert rescored.unchanged == 4  # idempotent: same score, source, threshold


def test_a_predictor_with_the_wrong_shape_is_refused(ingested: Path, tmp_path: Path) -> None:
    from voxelwise.errors import InputError

    with Repository.open(ingested / "repository") as repository:
        with repository.session() as session:
            add_studies(session, requests_for(session, None, T0))
        with pytest.raises(InputError, match="returned shape"):
            score_from_run(repository, tmp_path, threshold=0.5, rescore=True, progress=False,
                           predictor=lambda run, images: np.zeros(len(images)))
