"""Demo step: does imaging add to clinical prognosis? Clinical-only against clinical + imaging."""

from __future__ import annotations

from voxelwise.demo.state import DemoState


def step_prognosis(state: DemoState) -> None:
    """Mortality (and survival) from the phantom's clinical records with and without imaging.

    With the repository of the ingest step holding the biomarkers step's results, both the
    clinical records and the imaging features are read from it, keyed by pseudonym (what
    `voxelwise prognosis --repo` does); otherwise the phantom's clinical CSVs are joined with
    the biomarkers step's CSV or, without one, the phantom's ground truth (labels.csv). The
    demo phantom is small, so the step lowers the refusal threshold to 4 events and says
    plainly that the comparison is underpowered; with fewer events it shows the refusal and
    its reason instead.
    """
    from voxelwise.prognosis import (
        PrognosisConfig,
        add_prognosis_section,
        biomarkers_from_phantom_labels,
        run_prognosis,
    )
    from voxelwise.store import Repository

    assert state.phantom_root is not None
    root = state.phantom_root
    measured = state.findings.get("biomarkers", {})
    from_repository = bool(measured.get("stored_in_repository")) \
        and "repository" in state.outputs
    csv = state.outputs.get("biomarkers_csv")
    biomarkers = csv if csv and csv.is_file() else \
        biomarkers_from_phantom_labels(root / "labels.csv")
    findings: dict = {"biomarkers": f"repository ({measured['source']})" if from_repository
                      else "measured (CSV)" if biomarkers is csv else "phantom ground truth"}
    for outcome, models in (("mortality", ["logistic"]), ("survival", ["cox"])):
        config = PrognosisConfig(outcome=outcome, models=models, min_events=4, outer_folds=5,
                                 n_bootstrap=200, seed=state.config.seed,
                                 biomarker_source=measured.get("source")
                                 if from_repository else None)
        out = state.config.out / "prognosis" / outcome
        if from_repository:
            with Repository.open(state.outputs["repository"]) as repository:
                result = run_prognosis(config, out, repository=repository)
        else:
            result = run_prognosis(config, out, clinical=sorted((root / "clinical").glob("*.csv")),
                                   biomarkers=biomarkers)
        section = add_prognosis_section(state.report, result)
        if not result.refusal and result.data.n < 100:
            section.paragraphs.insert(0, f"Demonstration only: {result.data.n} patients and "
                                      f"{result.events} {result.event_name} are far too few "
                                      "to show whether imaging adds anything (the project's "
                                      "tests check that on 240-patient phantoms).")
        state.outputs[f"prognosis_{outcome}"] = out
        findings[outcome] = {
            "n": result.data.n, "events": result.events, "refusal": result.refusal,
            "comparison": [c.row(outcome) for c in result.comparisons]}
    state.findings["prognosis"] = findings
