"""Prognosis: configuration, the join and its account, bad input, and the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from voxelwise.cli.main import main
from voxelwise.errors import InputError
from voxelwise.prognosis import (
    PrognosisConfig,
    analyse,
    biomarkers_from_phantom_labels,
    build_dataset,
    load_config,
    read_biomarkers,
    read_clinical,
    run_prognosis,
)
from voxelwise.prognosis.features import imaging_table
from voxelwise.prognosis.models import outer_folds


def _cohort(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A clinical table and a biomarkers table (admission + one follow-up) of ``n`` patients."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    volume = rng.gamma(1.5, 10.0, n)
    lp = -1.0 + 0.04 * (rng.integers(20, 80, n) - 50) + 0.06 * volume
    death = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int)
    clinical = pd.DataFrame({
        "patient_id": ids, "age": rng.integers(20, 80, n), "sex": rng.choice(["M", "F"], n),
        "gcs": rng.integers(3, 16, n), "pupils": rng.choice(["both", "one", "none"], n),
        "hypoxia": rng.integers(0, 2, n), "hypotension": rng.integers(0, 2, n),
        "gose": np.where(death == 1, 1, rng.integers(2, 9, n)), "death": death,
        "survival_days": np.where(death == 1, rng.integers(1, 180, n), 180), "event": death,
        "_source": "cohort.csv"})
    rows = []
    for i, p in enumerate(ids):
        for day, growth in ((0, 0.0), (2, rng.normal(2.0, 1.0))):
            rows.append({"case": f"{p}_d{day}", "patient": p, "series_instance_uid": f"1.{i}.{day}",
                         "days_since_admission": day, "source": "truth",
                         "haematoma_ml": volume[i] + growth, "oedema_ml": 0.3 * volume[i],
                         "haematoma_lesions": 1, "midline_shift_mm": volume[i] / 10})
    return clinical, pd.DataFrame(rows)


def test_config_from_toml_and_refusals(tmp_path) -> None:
    path = tmp_path / "prognosis.toml"
    path.write_text('outcome = "gose"\nouter_folds = 4\n[encodings.pupils]\nboth = 0\n'
                    'one = 1\nnone = 2\n')
    config = load_config(path)
    assert config.outcome == "gose" and config.outer_folds == 4 and config.model_names == [
        "ordinal"]
    assert config.replace(seed=3, outcome=None).seed == 3  # None: not given on the command line
    path.write_text('outcom = "gose"\n')
    with pytest.raises(InputError, match="unknown keys outcom"):
        load_config(path)
    with pytest.raises(InputError, match="outcome columns cannot be features: death"):
        PrognosisConfig(clinical_features=["age", "death"])
    with pytest.raises(InputError, match="does not fit outcome"):
        PrognosisConfig(outcome="survival", models=["logistic"])


def test_imaging_table_is_one_row_per_patient_with_change() -> None:
    clinical, biomarkers = _cohort(5)
    table = imaging_table(biomarkers, PrognosisConfig())
    assert list(table.index) == sorted(clinical["patient_id"])
    first = biomarkers[biomarkers.patient == "P000"].sort_values("days_since_admission")
    assert table.loc["P000", "haematoma_ml"] == pytest.approx(np.log1p(first.haematoma_ml.iloc[0]))
    assert table.loc["P000", "haematoma_ml_change"] == pytest.approx(
        first.haematoma_ml.iloc[1] - first.haematoma_ml.iloc[0])
    # no follow-up anywhere: no change columns at all
    admission = imaging_table(biomarkers[biomarkers.days_since_admission == 0], PrognosisConfig())
    assert "haematoma_ml_change" not in admission.columns


def test_account_names_every_dropped_row() -> None:
    clinical, biomarkers = _cohort(40)
    extra = clinical.iloc[:2].copy()
    extra["patient_id"] = ["X1", "X2"]                         # no imaging: unknown patients
    clinical = pd.concat([clinical, extra], ignore_index=True)
    clinical.loc[3, "death"] = np.nan                          # missing outcome
    clinical.loc[4, "death"] = 2                               # invalid outcome
    clinical.loc[5, "gcs"] = np.nan                            # missing feature: imputed
    biomarkers = biomarkers[biomarkers.patient != "P006"]      # P006: clinical only
    data = build_dataset(clinical, biomarkers, PrognosisConfig())
    account = data.account
    assert account.no_imaging == ["P006", "X1", "X2"]
    assert account.missing_outcome == ["P003"] and account.invalid_outcome == ["P004"]
    assert account.missing_values == {"gcs": 1} and data.n == 37 == account.analysed
    text = "\n".join(account.lines())
    assert "left out: 3 clinical rows for patients without imaging" in text
    assert "1 patients with a missing outcome: P003" in text
    assert "imputed" in text and "analysed: 37 patients" in text
    dropped = build_dataset(clinical, biomarkers, PrognosisConfig(missing="drop"))
    assert dropped.account.dropped_missing_values == ["P005"] and dropped.n == 36


def test_bad_values_are_refused_not_turned_into_missing(tmp_path) -> None:
    clinical, biomarkers = _cohort(10)
    clinical.loc[0, "pupils"] = "sluggish"
    with pytest.raises(InputError, match="'pupils' holds values without an encoding: sluggish"):
        build_dataset(clinical, biomarkers, PrognosisConfig())
    clinical, _ = _cohort(10)
    clinical["gcs"] = clinical["gcs"].astype(object)
    clinical.loc[0, "gcs"] = "E4V5M6"
    with pytest.raises(InputError, match="'gcs' is not numeric: E4V5M6"):
        build_dataset(clinical, biomarkers, PrognosisConfig())
    with pytest.raises(InputError, match="no column lactate"):
        build_dataset(clinical, biomarkers, PrognosisConfig(clinical_features=["lactate"]))


def test_duplicate_patients_and_mixed_sources_are_refused(tmp_path) -> None:
    clinical, biomarkers = _cohort(6)
    a, b = tmp_path / "A.csv", tmp_path / "B.csv"
    clinical.drop(columns="_source").iloc[:4].to_csv(a, index=False)
    clinical.drop(columns="_source").iloc[3:].to_csv(b, index=False)
    with pytest.raises(InputError, match="1 patients have more than one clinical row"):
        read_clinical([a, b])
    both = pd.concat([biomarkers, biomarkers.assign(source="unet")])
    path = tmp_path / "biomarkers.csv"
    both.to_csv(path, index=False)
    with pytest.raises(InputError, match="2 sources .* choose one with --source"):
        read_biomarkers(path)
    assert len(read_biomarkers(path, "unet")) == len(biomarkers)


def test_too_few_events_refuses_with_the_reason(tmp_path, capsys) -> None:
    clinical, biomarkers = _cohort(30)
    result = analyse(build_dataset(clinical, biomarkers, PrognosisConfig(min_events=40)),
                     PrognosisConfig(min_events=40))
    assert result.refusal and "needs at least 40 of each" in result.refusal
    assert result.comparisons == [] and result.runs == []
    clinical.drop(columns="_source").to_csv(tmp_path / "c.csv", index=False)
    biomarkers.to_csv(tmp_path / "b.csv", index=False)
    code = main(["prognosis", "--clinical", str(tmp_path / "c.csv"), "--biomarkers",
                 str(tmp_path / "b.csv"), "--outcome", "survival", "--min-events", "40",
                 "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2 and "the Cox model needs at least 40 (min_events)" in captured.err
    assert "analysed: 30 patients" in captured.out
    manifest = json.loads((tmp_path / "out" / "prognosis.json").read_text())
    assert manifest["refusal"] and not (tmp_path / "out" / "comparison.csv").exists()


def test_folds_are_stratified_and_by_patient() -> None:
    y = np.array([0] * 30 + [1] * 10)
    folds = outer_folds(y, 5, seed=0)
    assert sorted(np.bincount(folds)) == [8] * 5
    assert all(y[folds == k].sum() == 2 for k in range(5))


def test_every_outcome_runs_and_writes_its_outputs(tmp_path) -> None:
    clinical, biomarkers = _cohort(60)
    for outcome in ("mortality", "gose", "survival"):
        config = PrognosisConfig(outcome=outcome, models=[], n_bootstrap=50, min_events=5,
                                 outer_folds=3, inner_folds=2)
        if outcome == "mortality":
            config = config.replace(models=["logistic"])
        out = tmp_path / outcome
        result = run_prognosis(config, out, clinical=clinical, biomarkers=biomarkers).check()
        comparison = pd.read_csv(out / "comparison.csv")
        assert len(comparison) == len(config.model_names) == len(result.comparisons)
        row = comparison.iloc[0]
        assert row["n"] == 60 and row["clinical_lower"] <= row["clinical"] <= row[
            "clinical_upper"]
        assert 0 <= row["p_value"] <= 1
        predictions = pd.read_csv(out / "predictions.csv")
        assert predictions["patient"].is_unique and len(predictions) == 60
        assert set(predictions["fold"]) == {0, 1, 2}
        html = (out / "report.html").read_text()
        assert "clinical + imaging" in html and "data:image/png;base64," in html
        assert (out / f"kaplan_meier_{config.model_names[0]}.png").is_file()
        manifest = json.loads((out / "prognosis.json").read_text())
        assert manifest["features"]["imaging"][-1] == "midline_shift_mm_change"
    assert (tmp_path / "gose" / "calibration_ordinal.png").is_file()


def test_command_on_a_phantom(tmp_path, capsys) -> None:
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study

    study = generate_head_ct_study(tmp_path / "phantom", centers=3, patients=6, followups=1,
                                   size="small", progress=False, workers=1)
    biomarkers = tmp_path / "biomarkers.csv"
    biomarkers_from_phantom_labels(study.root / "labels.csv").to_csv(biomarkers, index=False)
    clinical = sorted(str(p) for p in (study.root / "clinical").glob("*.csv"))
    code = main(["prognosis", "--clinical", *clinical, "--biomarkers", str(biomarkers),
                 "--outcome", "mortality", "--models", "logistic", "--min-events", "3",
                 "--outer-folds", "3", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "imaging: 36 series of 18 patients" in out and "logistic: AUC clinical" in out
    predictions = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert len(predictions) == 18 and predictions["patient"].is_unique


def test_repository_mode_reads_clinical_records_by_pseudonym(tmp_path, capsys) -> None:
    from voxelwise.store import (
        Repository,
        get_or_create_center,
        get_or_create_patient,
        set_clinical_record,
    )

    clinical, biomarkers = _cohort(40)
    with Repository.open(tmp_path / "repo") as repository:
        with repository.session() as session:
            center = get_or_create_center(session, "C01")
            for row in clinical.drop(columns="_source").to_dict("records"):
                patient = get_or_create_patient(session, center, f"pseudo-{row['patient_id']}")
                variables = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()
                             if k != "patient_id"}
                set_clinical_record(session, patient, variables, "cohort.csv")
    biomarkers["patient"] = "pseudo-" + biomarkers["patient"]
    biomarkers.to_csv(tmp_path / "b.csv", index=False)
    code = main(["prognosis", "--repo", str(tmp_path / "repo"), "--biomarkers",
                 str(tmp_path / "b.csv"), "--models", "logistic", "--min-events", "5",
                 "--outer-folds", "3", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "clinical: 40 rows from repository" in out and "analysed: 40 patients" in out
    assert pd.read_csv(tmp_path / "out" / "predictions.csv")["patient"].str.startswith(
        "pseudo-").all()


def test_repository_mode_reads_biomarkers_from_the_repository(tmp_path, capsys) -> None:
    from voxelwise.store import (
        Repository,
        get_or_create_center,
        get_or_create_patient,
        get_or_create_series,
        get_or_create_study,
        set_clinical_record,
        store_biomarkers,
    )

    clinical, biomarkers = _cohort(40)
    repo = tmp_path / "repo"
    with Repository.open(repo) as repository:
        with repository.session() as session:
            center = get_or_create_center(session, "C01")
            for row in clinical.drop(columns="_source").to_dict("records"):
                patient = get_or_create_patient(session, center, f"pseudo-{row['patient_id']}")
                variables = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()
                             if k != "patient_id"}
                set_clinical_record(session, patient, variables, "cohort.csv")
    code = main(["prognosis", "--repo", str(repo), "--out", str(tmp_path / "empty")])
    assert code == 2 and "holds no biomarkers" in capsys.readouterr().err
    with Repository.open(repo) as repository:
        with repository.session() as session:
            center = get_or_create_center(session, "C01")
            patients = {p: get_or_create_patient(session, center, f"pseudo-{p}")
                        for p in clinical["patient_id"]}
            for row in biomarkers.to_dict("records"):
                uid = row["series_instance_uid"]
                study = get_or_create_study(session, patients[row["patient"]], f"{uid}.9",
                                            days_since_first_study=row["days_since_admission"])
                series = get_or_create_series(session, study, uid)
                values = {k: row[k] for k in ("haematoma_ml", "oedema_ml", "haematoma_lesions",
                                              "midline_shift_mm")}
                store_biomarkers(session, series.id, "ground truth", values, [], None)
                store_biomarkers(session, series.id, "run-x", values, [], None)
    args = ["prognosis", "--repo", str(repo), "--models", "logistic", "--min-events", "5",
            "--outer-folds", "3", "--out", str(tmp_path / "out")]
    assert main(args) == 2 and "choose one with --source" in capsys.readouterr().err
    code = main([*args, "--source", "ground truth"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "imaging: 80 series of 40 patients" in out and "analysed: 40 patients" in out
    manifest = json.loads((tmp_path / "out" / "prognosis.json").read_text())
    assert manifest["inputs"]["biomarkers"] == "repository"
    with Repository.open(repo) as repository:        # the same as the CSV path gives
        from voxelwise.prognosis import biomarkers_from_repository
        table = biomarkers_from_repository(repository, "run-x")
    assert len(table) == 80 and table["patient"].str.startswith("pseudo-").all()
    assert sorted(table["days_since_admission"].unique()) == [0, 2]


def test_a_diverging_cox_fit_is_retried_then_refused_with_the_reason(tmp_path,
                                                                      monkeypatch) -> None:
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    clinical, biomarkers = _cohort(40)
    config = PrognosisConfig(outcome="survival", models=["cox"], n_bootstrap=20, min_events=5,
                             outer_folds=3, inner_folds=2)
    original = CoxPHFitter.fit
    penalties = []

    def weak_penalties_diverge(self, *args, **kwargs):
        penalties.append(self.penalizer)
        if self.penalizer < 5:
            raise ConvergenceError("delta contains nan value(s)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CoxPHFitter, "fit", weak_penalties_diverge)
    result = run_prognosis(config, tmp_path / "retried", clinical=clinical,
                           biomarkers=biomarkers).check()  # stronger penalties converge
    assert result.comparisons and max(penalties) >= 5

    def always_diverges(self, *args, **kwargs):
        raise ConvergenceError("delta contains nan value(s)")

    monkeypatch.setattr(CoxPHFitter, "fit", always_diverges)
    result = run_prognosis(config, tmp_path / "refused", clinical=clinical,
                           biomarkers=biomarkers)
    assert result.refusal and "did not converge" in result.refusal
    assert not result.comparisons
