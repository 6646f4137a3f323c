"""Biomarkers in the study repository: stored from folder mode (the demo's path), measured with
`voxelwise biomarkers --repo` and read by `voxelwise prognosis --repo`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from voxelwise.cli.main import main
from voxelwise.errors import InputError

PATIENTS = 12


def _ingest(phantom: Path, repo: Path, key: Path, url: Any = None) -> None:
    from voxelwise.ingest.annotations import import_label_map_table
    from voxelwise.ingest.clinical import import_clinical
    from voxelwise.ingest.pipeline import ingest_folder
    from voxelwise.store import Repository

    with Repository.open(repo, url) as repository:
        for center in sorted((phantom / "dicom").iterdir()):
            ingest_folder(center, repository, center.name, key_path=key)
            import_clinical(phantom / "clinical" / f"{center.name}.csv", repository,
                            center.name, key_path=key)
        import_label_map_table(phantom / "labels.csv", repository, key_path=key)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small head-CT phantom of 12 patients with one follow-up each (24 series)."""
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study

    root = tmp_path_factory.mktemp("phantom")
    return generate_head_ct_study(root / "phantom", centers=1, patients=PATIENTS, followups=1,
                                  size="small", seed=2, progress=False, workers=1).root


@pytest.fixture(scope="module")
def ingested(phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(repository folder, study key) with the phantom's series, clinical records and labels."""
    root = tmp_path_factory.mktemp("ingested")
    _ingest(phantom, root / "repo", root / "deid.key")
    return root / "repo", root / "deid.key"


def _phantom_ids(phantom: Path) -> set[str]:
    """The phantom's original patient IDs and case names (label-map file names)."""
    labels = pd.read_csv(phantom / "labels.csv")
    return set(labels["patient_id"]) | {Path(p).name.split(".")[0] for p in labels["label_map"]}


def test_folder_results_are_stored_under_the_repository_keys(phantom, ingested) -> None:
    """What the demo does: measure the phantom's folders once, store the results by series."""
    from voxelwise.biomarkers.batch import measure_folder, store_results
    from voxelwise.store import BiomarkerRecord, Repository
    from voxelwise.store.biomarkers import biomarker_rows

    repo, key = ingested
    results = measure_folder(phantom / "labels", phantom=phantom, source="folder mode",
                             progress=False)
    with Repository.open(repo) as repository:
        assert store_results(repository, results, key_path=key) == 2 * PATIENTS
        store_results(repository, results[:3], key_path=key)           # replaces, adds none
        with repository.session() as session:
            records = session.scalars(select(BiomarkerRecord).where(
                BiomarkerRecord.source == "folder mode")).all()
            assert len(records) == 2 * PATIENTS
            stored = json.dumps([[r.values, r.lesions, r.midline] for r in records])
            rows = [r for r in biomarker_rows(session) if r["source"] == "folder mode"]
        for identifier in _phantom_ids(phantom):
            assert identifier not in stored                      # no original ID or case name
        assert {r["patient"][:3] for r in rows} == {"VW-"} and len(rows) == 2 * PATIENTS
        by_volume = sorted(round(float(r.row()["haematoma_ml"]), 4) for r in results)
        assert sorted(round(float(r["haematoma_ml"]), 4) for r in rows) == by_volume
        stray = results[0]
        stray.info["series_instance_uid"] = "1.2.826.0.1.3680043.2.1143.999"
        with pytest.raises(InputError, match="no series with Series Instance UID"):
            store_results(repository, [stray], key_path=key)
        stray.info["series_instance_uid"] = ""
        with pytest.raises(InputError, match="no series_instance_uid"):
            store_results(repository, [stray], key_path=key)


def test_cli_biomarkers_repo_then_prognosis_repo(ingested, tmp_path, capsys) -> None:
    """`voxelwise biomarkers --repo` stores the rows that `voxelwise prognosis --repo` reads."""
    repo, _ = ingested
    assert main(["biomarkers", "--repo", str(repo), "--out", str(tmp_path / "bio")]) == 0
    measured = pd.read_csv(tmp_path / "bio" / "biomarkers.csv")
    assert len(measured) == 2 * PATIENTS and measured["midline_shift_mm"].notna().all()
    capsys.readouterr()
    out = tmp_path / "prognosis"
    code = main(["prognosis", "--repo", str(repo), "--source", "ground truth",
                 "--outcome", "mortality", "--models", "logistic", "--min-events", "4",
                 "--outer-folds", "3", "--inner-folds", "2", "--seed", "0", "--out", str(out)])
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0, printed + captured.err
    assert f"imaging: {2 * PATIENTS} series of {PATIENTS} patients" in printed
    assert f"analysed: {PATIENTS} patients" in printed
    manifest = json.loads((out / "prognosis.json").read_text())
    assert manifest["inputs"]["biomarkers"] == "repository"
    assert manifest["inputs"]["clinical"] == "repository"
    predictions = pd.read_csv(out / "predictions.csv")
    assert set(predictions["patient"]) == set(measured["patient"])     # pseudonyms, all 12
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison["metric"]) == ["AUC"] and comparison["n"].tolist() == [PATIENTS]
    assert comparison[["clinical", "clinical_imaging", "p_value"]].notna().all().all()
    from voxelwise.prognosis import biomarkers_from_repository
    from voxelwise.store import Repository

    with Repository.open(repo) as repository:   # what prognosis read = what biomarkers wrote
        table = biomarkers_from_repository(repository, "ground truth")
    merged = table.merge(measured, on="case", suffixes=("_repo", "_csv"))
    assert len(merged) == 2 * PATIENTS
    assert (merged["haematoma_ml_repo"].astype(float)
            == merged["haematoma_ml_csv"].astype(float)).all()
    assert (merged["midline_shift_mm_repo"].astype(float)
            == merged["midline_shift_mm_csv"].astype(float)).all()


def test_biomarkers_table_on_each_backend(repository, tmp_path) -> None:
    """measure_repository, replace-on-rerun and biomarker_rows on SQLite and PostgreSQL."""
    from voxelwise.biomarkers.batch import measure_repository
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study
    from voxelwise.ingest.annotations import import_label_map_table
    from voxelwise.ingest.pipeline import ingest_folder
    from voxelwise.prognosis import biomarkers_from_repository
    from voxelwise.store import BiomarkerRecord, Series, store_biomarkers
    from voxelwise.store.biomarkers import biomarker_rows

    phantom = generate_head_ct_study(tmp_path / "phantom", centers=1, patients=1, followups=1,
                                     size="small", progress=False, workers=1).root
    key = tmp_path / "deid.key"
    center = next((phantom / "dicom").iterdir())
    ingest_folder(center, repository, center.name, key_path=key)
    import_label_map_table(phantom / "labels.csv", repository, key_path=key)
    first = measure_repository(repository, progress=False)
    measure_repository(repository, progress=False)                # replaces, adds none
    with repository.session() as session:
        assert session.scalar(select(func.count(BiomarkerRecord.id))) == 2
        series = session.scalars(select(Series).order_by(Series.id)).all()
        store_biomarkers(session, series[0].id, "run-a", {"haematoma_ml": 1.5},
                         [{"class": "haematoma", "lesion": 1, "volume_ml": 1.5}],
                         {"shift_mm": None, "notes": ["none"]})
    with repository.session() as session:
        record = session.scalar(select(BiomarkerRecord).where(BiomarkerRecord.source == "run-a"))
        assert record.lesions[0]["volume_ml"] == 1.5 and record.midline["shift_mm"] is None
        rows = biomarker_rows(session)
    assert [r["source"] for r in rows].count("ground truth") == 2 and len(rows) == 3
    truth = [r for r in rows if r["source"] == "ground truth"]
    assert [r["days_since_admission"] for r in truth] == sorted(
        int(r.row()["days_since_admission"]) for r in first)
    assert {r["case"] for r in truth} == {r.row()["case"] for r in first}
    assert all(r["patient"].startswith("VW-") for r in rows)
    for stored, measured in zip(sorted(truth, key=lambda r: r["case"]),
                                sorted((r.row() for r in first), key=lambda r: r["case"]),
                                strict=True):
        assert stored["haematoma_ml"] == measured["haematoma_ml"]
        assert stored["midline_shift_mm"] == measured["midline_shift_mm"]
    table = biomarkers_from_repository(repository, "ground truth")
    assert len(table) == 2 and set(table["source"]) == {"ground truth"}
    with pytest.raises(InputError, match="--source"):
        biomarkers_from_repository(repository)                     # two sources: choose one


def test_demo_steps_store_biomarkers_and_prognosis_reads_them(phantom, ingested, tmp_path) -> None:
    """The demo measures once (folder mode), stores in its repository, and its prognosis step
    reads clinical records and imaging from the repository, as `prognosis --repo` does."""
    from voxelwise.demo.biomarkers import step_biomarkers
    from voxelwise.demo.prognosis import step_prognosis
    from voxelwise.demo.state import DemoConfig, DemoState
    from voxelwise.reports.html import Report
    from voxelwise.store import BiomarkerRecord, Repository

    repo, key = ingested
    state = DemoState(DemoConfig(out=tmp_path / "demo", size="small", seed=0), Report("test"))
    state.phantom_root = phantom
    state.outputs.update(repository=repo, deid_key=key)
    step_biomarkers(state)
    assert state.findings["biomarkers"]["stored_in_repository"] == 2 * PATIENTS
    with Repository.open(repo) as repository, repository.session() as session:
        stored = session.scalar(select(func.count(BiomarkerRecord.id)).where(
            BiomarkerRecord.source == "ground truth"))
    assert stored == 2 * PATIENTS
    step_prognosis(state)
    findings = state.findings["prognosis"]
    assert findings["biomarkers"] == "repository (ground truth)"
    assert findings["mortality"]["n"] == PATIENTS and findings["mortality"]["refusal"] in ("", None)
    manifest = json.loads((tmp_path / "demo" / "prognosis" / "mortality" / "prognosis.json")
                          .read_text())
    assert manifest["inputs"]["biomarkers"] == manifest["inputs"]["clinical"] == "repository"
