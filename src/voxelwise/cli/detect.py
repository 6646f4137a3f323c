"""`voxelwise detect RUN INPUT...`: findings of a trained ICH detector for DICOM series folders
or 2-D image files, with the call at each operating point chosen on validation data."""

from __future__ import annotations

import argparse
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect", help="predict ICH findings with a trained detector",
        description="Probabilities per finding for each INPUT (a DICOM series folder for a "
        "volume detector, an image file for a 2-D one) and the call at the run's "
        "high-sensitivity operating point.")
    parser.add_argument("run_dir", type=Path, metavar="RUN",
                        help="run folder of voxelwise train --task ich-detection")
    parser.add_argument("inputs", type=Path, nargs="+", metavar="INPUT")
    parser.add_argument("--out", type=Path, metavar="CSV", help="also write the table as CSV "
                        "(and CSV.json, the manifest)")
    parser.add_argument("--point", choices=("high_sensitivity", "high_specificity"),
                        default="high_sensitivity", help="operating point for the calls")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from voxelwise import __version__
    from voxelwise.cli.common import format_table, rows_to_csv
    from voxelwise.fileio import write_text_atomic
    from voxelwise.tasks.classification import (
        findings,
        operating_points,
        predict_images,
        predict_studies,
    )
    from voxelwise.tasks.classification.predict import detector_info

    started = time.perf_counter()
    names, points = findings(args.run_dir), operating_points(args.run_dir)
    if detector_info(args.run_dir)["input"]["kind"] == "volume":
        from voxelwise.imaging import read_dicom_series

        scores = predict_studies(args.run_dir, [read_dicom_series(p) for p in args.inputs])
    else:
        scores = predict_images(args.run_dir, list(args.inputs))
    rows = []
    for path, score in zip(args.inputs, scores, strict=True):
        row = {"input": str(path)}
        for name, value in zip(names, score, strict=True):
            threshold = (points.get(name, {}).get(args.point) or {}).get("threshold")
            call = "?" if threshold is None else ("yes" if value >= threshold else "no")
            row[name] = f"{value:.3f} ({call})"
        rows.append(row)
    columns = ["input", *names]
    print(format_table(rows, columns))
    print(f"probability (call at the {args.point.replace('_', '-')} threshold chosen on "
          "validation; '?': no threshold)")
    if args.out:
        write_text_atomic(args.out, rows_to_csv(rows, columns))
        manifest = {"command": "voxelwise detect", "version": __version__,
                    "run": str(args.run_dir), "inputs": [str(p) for p in args.inputs],
                    "point": args.point, "seconds": round(time.perf_counter() - started, 2),
                    "outputs": [str(args.out)]}
        write_text_atomic(Path(f"{args.out}.json"), json.dumps(manifest, indent=1))
    return 0
