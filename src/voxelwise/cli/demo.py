"""`voxelwise demo`: run the whole path on phantom data and write an HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from voxelwise.demo import DemoConfig

    defaults = DemoConfig()
    parser = subparsers.add_parser(
        "demo", help="run every step end to end on built-in phantom data; writes report.html")
    parser.add_argument("--out", type=Path, default=defaults.out,
                        help=f"run folder (default {defaults.out})")
    parser.add_argument("--size", choices=("small", "full"), default=defaults.size,
                        help=f"phantom size (default {defaults.size})")
    parser.add_argument("--centers", type=int, default=defaults.centers)
    parser.add_argument("--patients", type=int, default=defaults.patients,
                        help="patients per center")
    parser.add_argument("--followups", type=int, default=defaults.followups)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from voxelwise.demo import DemoConfig, run_demo

    config = DemoConfig(out=args.out, size=args.size, centers=args.centers,
                        patients=args.patients, followups=args.followups, seed=args.seed)
    report = run_demo(config)
    print(f"report: {report}")
    return 0
