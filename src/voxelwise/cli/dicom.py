"""`voxelwise dicom inspect|convert`: what a DICOM folder holds, and one series to NIfTI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dicom", help="inspect DICOM folders and convert series")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    inspect = actions.add_parser(
        "inspect", help="list the series in a folder and every problem found, file by file")
    inspect.add_argument("path", type=Path, help="a DICOM file or a folder (searched recursively)")
    inspect.add_argument("--json", type=Path, help="also write the findings as JSON")
    inspect.set_defaults(run=run_inspect)

    convert = actions.add_parser(
        "convert", help="read one series (sorted, rescaled to HU, geometry checked) to NIfTI")
    convert.add_argument("path", type=Path, help="a DICOM folder")
    convert.add_argument("--out", type=Path, required=True, help="output .nii or .nii.gz")
    convert.add_argument("--series-uid", help="Series Instance UID (default: the largest series)")
    convert.add_argument("--no-geometry-correction", action="store_true",
                         help="keep a tilted or gapped stack as acquired instead of resampling "
                         "it onto an orthogonal regular grid")
    convert.set_defaults(run=run_convert)


def run_inspect(args: argparse.Namespace) -> int:
    from voxelwise.fileio import write_text_atomic
    from voxelwise.imaging.dicom import scan_dicom_folder

    scan = scan_dicom_folder(args.path)
    for series in scan.series:
        print(series.summary())
    for problem in scan.problems:
        print(f"problem [{problem.kind}]: {problem.message}")
    if args.json:
        write_text_atomic(args.json, json.dumps(scan.as_dict(), indent=2))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from voxelwise.imaging.dicom import read_dicom_series
    from voxelwise.imaging.nifti import write_nifti

    volume = read_dicom_series(args.path, args.series_uid,
                               correct_geometry=not args.no_geometry_correction)
    for problem in volume.meta.get("problems", []):
        print(f"problem [{problem['kind']}]: {problem['message']}")
    write_nifti(volume, args.out)
    spacing = " x ".join(f"{s:.3f}" for s in volume.spacing)
    print(f"wrote {args.out}: {volume.shape} voxels of {spacing} mm")
    return 0
