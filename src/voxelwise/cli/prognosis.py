"""`voxelwise prognosis`: clinical-only against clinical + imaging, by nested cross-validation."""

from __future__ import annotations

import argparse
from pathlib import Path

OUTCOME_CHOICES = ("mortality", "unfavourable", "gose", "survival")  # = prognosis.OUTCOMES


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prognosis", help="does imaging add to clinical prognosis? nested CV, paired tests",
        description="Join clinical records with imaging biomarkers per patient and compare "
        "clinical-only against clinical + imaging models on the same outer folds of a nested "
        "cross-validation: AUC with DeLong 95%% CI and the paired DeLong test (mortality, "
        "unfavourable = GOS-E <= 4, gose), Harrell's C with CI (survival, Cox), calibration "
        "and Kaplan-Meier by predicted-risk tertile. Writes OUT/comparison.csv, "
        "predictions.csv, figures, report.html and prognosis.json. Command-line options win "
        "over --config.")
    parser.add_argument("--outcome", choices=OUTCOME_CHOICES,
                        help="what to predict (default mortality, or the config's)")
    parser.add_argument("--clinical", type=Path, nargs="+", metavar="CSV",
                        help="clinical CSVs, one row per patient (default: the repository's "
                        "clinical records with --repo)")
    parser.add_argument("--biomarkers", type=Path, metavar="CSV",
                        help="biomarkers.csv of `voxelwise biomarkers` (one row per series; "
                        "default: the repository's biomarkers table with --repo)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--config", type=Path, help="prognosis.toml or .json (see README)")
    parser.add_argument("--repo", type=Path, help="repository folder: clinical records and "
                        "biomarkers (of `voxelwise biomarkers --repo`) by pseudonym; a "
                        "--biomarkers CSV must then be keyed by pseudonym too")
    parser.add_argument("--db", help="database URL of the repository (default: SQLite in it)")
    parser.add_argument("--source", dest="biomarker_source",
                        help="biomarkers source to use when there are several (in the "
                        "repository: 'ground truth' or a model run's name)")
    parser.add_argument("--models", type=_names, help="comma-separated: logistic,"
                        "gradient_boosting (binary), ordinal (gose), cox (survival)")
    parser.add_argument("--clinical-features", type=_names, help="comma-separated columns")
    parser.add_argument("--imaging-features", type=_names, help="comma-separated columns")
    parser.add_argument("--patient-column", help="patient column of the clinical CSVs "
                        "(default patient_id)")
    parser.add_argument("--outer-folds", type=int)
    parser.add_argument("--inner-folds", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--min-events", type=int, help="refuse with fewer events (default 10)")
    parser.add_argument("--missing", choices=("impute", "drop"),
                        help="missing feature values: median-imputed inside the folds "
                        "(default) or patients dropped")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from voxelwise.errors import InputError
    from voxelwise.prognosis import PrognosisConfig, load_config, run_prognosis

    config = load_config(args.config) if args.config else PrognosisConfig()
    config = config.replace(
        outcome=args.outcome, biomarker_source=args.biomarker_source, models=args.models,
        clinical_features=args.clinical_features, imaging_features=args.imaging_features,
        patient_column=args.patient_column, outer_folds=args.outer_folds,
        inner_folds=args.inner_folds, seed=args.seed, min_events=args.min_events,
        missing=args.missing)
    if args.clinical is None and args.repo is None:
        raise InputError(None, "give --clinical CSV [CSV ...] or --repo DIR")
    if args.biomarkers is None and args.repo is None:
        raise InputError(None, "give --biomarkers CSV or --repo DIR")
    if args.repo is None:
        result = run_prognosis(config, args.out, clinical=args.clinical,
                               biomarkers=args.biomarkers, verbose=True)
    else:
        from voxelwise.store import Repository

        with Repository.open(args.repo, args.db) as repository:
            result = run_prognosis(config, args.out, clinical=args.clinical,
                                   biomarkers=args.biomarkers, repository=repository,
                                   verbose=True)
    result.check()
    print("\n".join(result.summary_lines()))
    print(f"wrote {args.out / 'comparison.csv'}, {args.out / 'report.html'} and "
          f"{args.out / 'prognosis.json'}")
    return 0
