"""`voxelwise annotations import`: label maps, DICOM SEG and fiducial points onto series."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from voxelwise.cli.common import add_repository_arguments, open_repository


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("annotations", help="attach annotations to stored series")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = actions.add_parser(
        "import", help="attach a NIfTI label map, a DICOM SEG, or a CSV of fiducial points",
        description="FILE.nii[.gz] needs --series-uid; a DICOM SEG names its series; a CSV "
        "holds either fiducials (series_instance_uid, x, y, z in LPS mm, label) or a list of "
        "label maps (series_instance_uid, label_map: paths relative to the CSV, like the "
        "phantom's labels.csv). Series UIDs may be the original or the de-identified ones. "
        "Geometry is checked before anything is stored.")
    imp.add_argument("file", type=Path, metavar="FILE")
    imp.add_argument("--series-uid", help="series the label map belongs to")
    imp.add_argument("--labels", default='{"1": "haematoma", "2": "oedema"}',
                     help='label names as JSON (default {"1": "haematoma", "2": "oedema"})')
    imp.add_argument("--author", help="who or what made the annotation")
    imp.add_argument("--source", help="free text, e.g. 'phantom ground truth'")
    add_repository_arguments(imp, key=True)
    imp.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    from voxelwise.errors import InputError
    from voxelwise.ingest.annotations import (
        csv_columns,
        import_fiducials,
        import_label_map,
        import_label_map_table,
        import_seg,
    )

    name = args.file.name.lower()
    with open_repository(args) as repository:
        if name.endswith((".nii", ".nii.gz")):
            if not args.series_uid:
                raise InputError(args.file, "a NIfTI label map needs --series-uid")
            imports = [import_label_map(args.file, repository, args.series_uid,
                                        key_path=args.key, label_names=json.loads(args.labels),
                                        author=args.author, source=args.source)]
        elif name.endswith(".csv") and "label_map" in csv_columns(args.file):
            imports = import_label_map_table(args.file, repository, key_path=args.key,
                                             label_names=json.loads(args.labels),
                                             author=args.author, source=args.source)
        elif name.endswith(".csv"):
            imports = import_fiducials(args.file, repository, key_path=args.key,
                                       author=args.author, source=args.source)
        else:
            imports = [import_seg(args.file, repository, key_path=args.key, author=args.author,
                                  source=args.source)]
    for item in imports:
        print(item.line())
    return 0
