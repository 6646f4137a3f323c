"""Scoring the waiting studies: from a detector run folder, or from a CSV of another model.

`score_from_run` reads each waiting study's image series from the repository, runs the ICH
detector (``voxelwise.tasks.classification.predict_studies``) in small batches, and applies the
policy with the run's high-sensitivity ``any_ich`` threshold (or the one given). Each batch is
one transaction, so an interrupted pass keeps what it scored; a re-run skips studies already
scored by the same run (``rescore=True`` predicts them again) and re-applies the policy to all.
`score_from_csv` does the same from ``study_instance_uid, score`` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voxelwise.errors import InputError
from voxelwise.store.models import QC_OK, Series, Study
from voxelwise.triage.policy import (
    DEFAULT_FINDING,
    DEFAULT_OPERATING_POINT,
    check_threshold,
    operating_point,
)
from voxelwise.triage.worklist import ScoreResult, apply_scores, read_scores_csv, waiting_entries

if TYPE_CHECKING:
    from voxelwise.imaging.volume import Volume
    from voxelwise.store import Repository

Predictor = Callable[[Path, list["Volume"]], np.ndarray]
"""``predict(run_dir, images) -> (N, findings)`` probabilities, like ``predict_studies``."""


def score_from_csv(repository: Repository, path: str | Path,
                   threshold: float) -> ScoreResult:
    """Apply the scores of a CSV file to the waiting studies, in one transaction."""
    path = Path(path)
    scores = read_scores_csv(path)
    with repository.session() as session:
        return apply_scores(session, scores, check_threshold(threshold), f"score file {path}")


def resolve_threshold(run_dir: str | Path | None, threshold: float | None,
                      finding: str = DEFAULT_FINDING,
                      point: str = DEFAULT_OPERATING_POINT) -> float:
    """``threshold`` when given, else the run's operating point for ``finding``."""
    if threshold is not None:
        return check_threshold(threshold)
    if run_dir is None:
        raise InputError(None, "give --threshold (a score file carries no operating point)")
    return operating_point(run_dir, finding, point)["threshold"]


def image_series(study: Study) -> Series | None:
    """The series to score: QC-passed before flagged, CT before others, most instances."""
    usable = [s for s in study.series if not s.quarantined and s.qc_status != "excluded"]
    if not usable:
        return None
    return max(usable, key=lambda s: (s.qc_status in QC_OK, s.modality == "CT",
                                      s.instance_count or len(s.instances)))


def _default_predictor(run_dir: Path) -> tuple[Predictor, int]:
    from voxelwise.tasks.classification import findings, predict_studies

    names = list(findings(run_dir))
    if DEFAULT_FINDING not in names:
        raise InputError(run_dir, f"the detector has no {DEFAULT_FINDING} output "
                         f"(findings: {', '.join(names)})")
    return predict_studies, names.index(DEFAULT_FINDING)


def score_from_run(repository: Repository, run_dir: str | Path, *,
                   threshold: float | None = None, predictor: Predictor | None = None,
                   column: int = 0, batch_size: int = 4, rescore: bool = False,
                   progress: bool = True) -> ScoreResult:
    """Score the waiting studies with the detector in ``run_dir`` and apply the policy.

    ``predictor`` replaces ``predict_studies`` (another model, or a test's fake); its output
    column ``column`` is the any-ICH probability. Studies without a usable series stay
    unscored (listed in ``result.not_scored``).
    """
    from tqdm import tqdm

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "is not a detector run folder")
    threshold = resolve_threshold(run_dir, threshold)
    if predictor is None:
        predictor, column = _default_predictor(run_dir)
    source = f"model run {run_dir.resolve()}"
    stored, todo, unusable = _plan(repository, source, rescore)
    result = ScoreResult()
    bar = tqdm(total=len(todo), desc="triage score", unit="study", disable=not progress or not todo)
    for start in range(0, len(todo), max(1, batch_size)):
        batch = todo[start:start + max(1, batch_size)]
        scores = _predict(repository, run_dir, batch, predictor, column)
        with repository.session() as session:  # one transaction per batch: resumable
            part = apply_scores(session, scores, threshold, source)
        part.not_scored = []  # the other studies are scored in other batches
        result.merge(part)
        bar.update(len(batch))
    bar.close()
    with repository.session() as session:  # the policy, with this threshold, for skipped ones
        part = apply_scores(session, stored, threshold, source)
    part.not_scored = []
    result.merge(part)
    result.not_scored += unusable
    return result


def _plan(repository: Repository, source: str,
          rescore: bool) -> tuple[dict[str, float], list[str], list[str]]:
    """(scores already stored from ``source``, studies to predict, studies with no series)."""
    stored, todo, unusable = {}, [], []
    with repository.session() as session:
        for entry in waiting_entries(session):
            uid = entry.study.study_instance_uid
            if not rescore and entry.score_source == source and entry.score is not None:
                stored[uid] = entry.score
            elif image_series(entry.study) is None:
                unusable.append(uid)
            else:
                todo.append(uid)
    return stored, todo, unusable


def _predict(repository: Repository, run_dir: Path, study_uids: Sequence[str],
             predictor: Predictor, column: int) -> dict[str, float]:
    from voxelwise.data.repository import load_series_volume
    from voxelwise.triage.worklist import find_study

    with repository.session() as session:
        images = [load_series_volume(repository, image_series(find_study(session, uid)))
                  for uid in study_uids]
    probabilities = np.asarray(predictor(run_dir, images), dtype=float)
    if probabilities.ndim != 2 or probabilities.shape[0] != len(images) \
            or not 0 <= column < probabilities.shape[1]:
        raise InputError(run_dir, f"the detector returned shape {probabilities.shape} for "
                         f"{len(images)} studies; expected ({len(images)}, findings)")
    return {uid: float(p) for uid, p in zip(study_uids, probabilities[:, column], strict=True)}
