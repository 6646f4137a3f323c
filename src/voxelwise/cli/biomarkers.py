"""`voxelwise biomarkers`: volumes, lesions, midline shift and follow-up from label maps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "biomarkers", help="volumes (mL), ABC/2, lesions, midline shift, follow-up",
        description="LABELS is a NIfTI label map or a folder of them. Writes OUT/biomarkers.csv "
        "(one row per series), OUT/lesions.csv, OUT/followup.csv (when patient and days are "
        "known from --phantom's labels.csv or --cases) and OUT/biomarkers.json. The midline "
        "shift needs the CT: --images DIR (CASE.nii.gz or CASE/ DICOM) or --phantom ROOT. "
        "'voxelwise biomarkers agreement --auto A.csv --truth B.csv --out DIR' compares two "
        "biomarkers.csv tables.")
    parser.add_argument("labels", type=Path, metavar="LABELS", nargs="?",
                        help="label map (.nii/.nii.gz) or folder of them; or 'agreement' "
                        "(omit with --repo)")
    parser.add_argument("--repo", type=Path, help="measure every series with a label-map "
                        "annotation in this repository and store the results")
    parser.add_argument("--db", help="database URL of the repository (default: SQLite in it)")
    parser.add_argument("--run", dest="model_run",
                        help="with --repo: the model run whose annotations (author = run "
                        "name) are measured (default: ground truth)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--images", type=Path, help="folder of the CT images by case name")
    parser.add_argument("--phantom", type=Path, help="head-CT phantom folder (images, patients)")
    parser.add_argument("--cases", type=Path,
                        help="CSV with case, patient, days_since_admission")
    parser.add_argument("--min-lesion-ml", type=float, default=0.01,
                        help="smallest component counted as a lesion (mL, default 0.01)")
    parser.add_argument("--classes", default='{"1": "haematoma", "2": "oedema"}',
                        help='label names as JSON (default {"1": "haematoma", "2": "oedema"})')
    parser.add_argument("--source", default="ground truth",
                        help="'ground truth' or the model run's name (the source column)")
    parser.add_argument("--auto", type=Path, help="agreement: automated biomarkers.csv")
    parser.add_argument("--truth", type=Path, help="agreement: ground-truth biomarkers.csv")
    parser.set_defaults(run=run)


def _classes(text: str) -> dict[int, str]:
    from voxelwise.errors import InputError

    try:
        return {int(k): str(v) for k, v in json.loads(text).items()}
    except (ValueError, AttributeError):
        raise InputError(None, f"--classes must be JSON like {{\"1\": \"haematoma\"}}; got "
                         f"{text!r}") from None


def _read(path: Path) -> list[dict]:
    import csv

    from voxelwise.errors import InputError

    if path is None or not path.is_file():
        raise InputError(path, "biomarkers CSV not found")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run_agreement(args: argparse.Namespace) -> int:
    from voxelwise.biomarkers.agreement import agreement_plot, agreement_rows
    from voxelwise.biomarkers.batch import write_csv

    auto, truth = _read(args.auto), _read(args.truth)
    names = list(_classes(args.classes).values())
    rows = agreement_rows(auto, truth, names)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "agreement.csv", list(rows[0]), rows)
    for name in names:
        agreement_plot(auto, truth, name).savefig(args.out / f"bland_altman_{name}.png", dpi=100)
    for row in rows:
        print(f"{row['class']}: n = {row['n']}, bias {row['bias_ml']:.2f} mL (95% CI "
              f"{row['bias_ci_ml']}), limits of agreement {row['lower_loa_ml']:.2f} to "
              f"{row['upper_loa_ml']:.2f} mL, ICC(2,1) {row['icc']:.3f} (95% CI "
              f"{row['icc_ci']}), Pearson r {row['pearson_r']:.3f}, Spearman rho "
              f"{row['spearman_rho']:.3f}")
    return 0


def run(args: argparse.Namespace) -> int:
    from voxelwise.biomarkers.batch import measure_folder, timed, write_tables
    from voxelwise.errors import InputError

    if str(args.labels) == "agreement":
        return run_agreement(args)
    classes = _classes(args.classes)
    if args.repo is not None:
        from voxelwise.biomarkers.batch import measure_repository
        from voxelwise.store import Repository

        with Repository.open(args.repo, args.db) as repository:
            results, seconds = timed(measure_repository, repository, args.model_run, classes,
                                     args.min_lesion_ml)
    elif args.labels is None:
        raise InputError(None, "give LABELS (a label map or folder) or --repo DIR")
    else:
        results, seconds = timed(measure_folder, args.labels, images=args.images,
                                 phantom=args.phantom, cases_csv=args.cases, classes=classes,
                                 min_lesion_ml=args.min_lesion_ml, source=args.source)
    manifest = {"inputs": {"labels": str(args.labels), "repo": str(args.repo),
                           "run": args.model_run,
                           "images": str(args.images),
                           "phantom": str(args.phantom), "cases": str(args.cases)},
                "parameters": {"min_lesion_ml": args.min_lesion_ml, "classes": classes,
                               "source": args.source},
                "seconds": round(seconds, 2)}
    outputs = write_tables(results, args.out, classes, manifest)
    for result in results:
        row = result.row()
        volumes = ", ".join(f"{name} {row[f'{name}_ml']:.2f} mL ({row[f'{name}_lesions']} "
                            "lesions)" for name in classes.values())
        shift = row["midline_shift_mm"]
        print(f"{row['case']}: {volumes}; midline shift "
              f"{'not measured' if shift == '' else f'{shift:.1f} mm'}")
    for kind, path in outputs.items():
        print(f"wrote {kind}: {path}")
    return 0
