"""Demo step: biomarkers of every phantom scan, follow-up plots, automated against ground truth."""

from __future__ import annotations

from voxelwise.demo.state import LABEL_NAMES, DemoState
from voxelwise.reports.html import Table


def _measure_predicted(state: DemoState, truth: list) -> list:
    from voxelwise.biomarkers import measure_series
    from voxelwise.imaging import read_nifti

    predicted = state.outputs["predicted_labels"]
    source = model_run_name(state)
    results = []
    for reference in truth:
        path = predicted / f"{reference.info['case']}.nii.gz"
        if path.is_file():
            info = {**reference.info, "source": source}
            results.append(measure_series(read_nifti(path), None, LABEL_NAMES,
                                          midline=reference.midline, **info))
    return results


def model_run_name(state: DemoState) -> str:
    """The segmentation run's name, the source under which its biomarkers are stored (its
    folder in the demo's output, as ``biomarkers --repo --run`` names a run; without a run,
    the folder of the predicted label maps)."""
    run = state.outputs.get("segmentation_run") or state.outputs["predicted_labels"]
    try:
        return run.relative_to(state.config.out).as_posix()
    except ValueError:  # label maps from elsewhere
        return run.name


def step_biomarkers(state: DemoState) -> None:
    """Measure ground truth (and the model's label maps), write the tables, add the plots."""
    from voxelwise.biomarkers.agreement import agreement_plot, agreement_rows
    from voxelwise.biomarkers.batch import measure_folder, write_tables
    from voxelwise.biomarkers.followup import volume_plot

    assert state.phantom_root is not None
    root, out = state.phantom_root, state.config.out / "biomarkers"
    truth = measure_folder(root / "labels", phantom=root, classes=LABEL_NAMES, progress=False)
    write_tables(truth, out / "truth", LABEL_NAMES)
    model = _measure_predicted(state, truth) if state.outputs.get("predicted_labels") else []
    section = state.report.section("Imaging biomarkers: volumes, lesions, midline shift")
    truth_rows = [r.row() for r in truth]
    errors = [abs(float(r.row()["midline_shift_mm"]) - s["midline_shift_mm"])
              for r, s in zip(truth, _phantom_rows(root, truth), strict=True)
              if r.row()["midline_shift_mm"] != ""]
    findings = {"series": len(truth),
                "midline_shift_error_max_mm": round(max(errors), 2) if errors else None,
                "midline_shift_error_mean_mm": round(sum(errors) / len(errors), 2)
                if errors else None,
                "midline_not_found": len(truth) - len(errors)}
    shown = model or truth
    findings["source"] = model_run_name(state) if model else "ground truth"
    findings["stored_in_repository"] = _store(state, truth + model)
    tables = write_tables(shown, out / ("model" if model else "truth"), LABEL_NAMES)
    from voxelwise.biomarkers.followup import followup_table

    followup = followup_table([r.row() for r in shown], LABEL_NAMES.values())
    findings["expansions"] = sum(1 for r in followup if r["class"] == "haematoma"
                                 and r["expansion"] is True)
    section.paragraphs.append(
        f"{len(truth)} series measured ({'model and ground truth' if model else 'ground truth'})."
        f" Midline shift estimated from each CT (ideal midline from the skull and falx, actual "
        f"at the septum pellucidum): largest error against the phantom's true shift "
        f"{findings['midline_shift_error_max_mm']} mm, mean "
        f"{findings['midline_shift_error_mean_mm']} mm (n = {len(errors)}). Haematoma "
        f"expansion (>= 6 mL or >= 33% by the first follow-up): {findings['expansions']} patients.")
    section.tables.append(Table(
        ["patient", "class", "admission (mL)", "first follow-up (mL)", "growth (mL/day)",
         "expansion"],
        [[r["patient"], r["class"], r["admission_ml"], r["first_followup_ml"],
          r["growth_ml_per_day"], r["expansion"]] for r in followup],
        caption="Follow-up per patient and class"))
    section.add_figure(volume_plot([r.row() for r in shown], "haematoma",
                                   truth_rows if model else None),
                       "Haematoma volume over time per patient")
    if model:
        model_rows = [r.row() for r in model]
        rows = agreement_rows(model_rows, truth_rows, list(LABEL_NAMES.values()))
        section.tables.append(Table(list(rows[0]), [list(r.values()) for r in rows],
                                    caption="Model against ground truth volumes per class"))
        section.add_figure(agreement_plot(model_rows, truth_rows, "haematoma"),
                           "Bland-Altman: haematoma volume")
        findings["icc_haematoma"] = rows[0]["icc"]
    state.outputs["biomarkers_csv"] = tables["biomarkers"]
    state.findings["biomarkers"] = findings


def _store(state: DemoState, results: list) -> int:
    """Store the results in the demo's repository (measured once, here, not again from it)."""
    from voxelwise.biomarkers.batch import store_results
    from voxelwise.store import Repository

    if "repository" not in state.outputs:
        return 0
    with Repository.open(state.outputs["repository"]) as repository:
        return store_results(repository, results, key_path=state.outputs.get("deid_key"))


def _phantom_rows(root, results) -> list[dict]:
    from pathlib import Path

    from voxelwise.biomarkers.batch import case_name
    from voxelwise.data.phantoms.head_ct import studies

    by_case = {case_name(Path(r["label_map"])): r for r in studies(root)}
    return [by_case[r.info["case"]] for r in results]
