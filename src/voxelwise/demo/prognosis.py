"""Demo step: does imaging add to clinical prognosis? Clinical-only against clinical + imaging."""

from __future__ import annotations

from voxelwise.demo.state import DemoState


def step_prognosis(state: DemoState) -> None:
    """Mortality (and survival) from the phantom's clinical records with and without imaging.

    Imaging features come from the biomarkers step (``outputs["biomarkers_csv"]``) when it ran,
    else from the phantom's ground truth (labels.csv). The demo phantom is small, so the step
    lowers the refusal threshold to 4 events and says plainly that the comparison is
    underpowered; with fewer events it shows the refusal and its reason instead.
    """
    from voxelwise.prognosis import (
        PrognosisConfig,
        add_prognosis_section,
        biomarkers_from_phantom_labels,
        run_prognosis,
    )

    assert state.phantom_root is not None
    root = state.phantom_root
    measured = state.outputs.get("biomarkers_csv")
    biomarkers = measured if measured and measured.is_file() else \
        biomarkers_from_phantom_labels(root / "labels.csv")
    clinical = sorted((root / "clinical").glob("*.csv"))
    findings = {"biomarkers": "measured" if biomarkers is measured else "phantom ground truth"}
    for outcome, models in (("mortality", ["logistic"]), ("survival", ["cox"])):
        config = PrognosisConfig(outcome=outcome, models=models, min_events=4, outer_folds=5,
                                 n_bootstrap=200, seed=state.config.seed)
        out = state.config.out / "prognosis" / outcome
        result = run_prognosis(config, out, clinical=clinical, biomarkers=biomarkers)
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
