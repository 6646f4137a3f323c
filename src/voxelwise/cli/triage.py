"""`voxelwise triage`: the reading worklist (add, score, list, read) and its queue simulation."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from voxelwise.cli.common import add_repository_arguments, format_table, open_repository

SIMULATION_OUT = Path("triage-simulation")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "triage", help="worklist triage: scores move routine studies to stat; queue simulation")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_add(actions)
    _add_score(actions)
    _add_list(actions)
    _add_read(actions)
    _add_simulate(actions)


def _add_add(actions: argparse._SubParsersAction) -> None:
    add = actions.add_parser("add", help="put stored studies on the worklist",
                             description="Studies already on the worklist are left as they are.")
    add_repository_arguments(add)
    which = add.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every stored study not yet listed")
    which.add_argument("--study", action="append", metavar="UID",
                       help="a study's (de-identified) Study Instance UID; repeatable")
    which.add_argument("--csv", type=Path, help="CSV: study_instance_uid, arrival_time "
                       "(ISO 8601 with zone), requested_priority (routine/stat, optional)")
    add.add_argument("--priority", choices=("routine", "stat"), default="routine",
                     help="requested priority (default routine; --csv gives its own)")
    add.add_argument("--arrival", help="arrival time, ISO 8601 with zone (default now)")
    add.add_argument("--interval-min", type=float, default=0.0,
                     help="minutes between the arrivals of successive studies (default 0)")
    add.set_defaults(run=run_add)


def _add_score(actions: argparse._SubParsersAction) -> None:
    score = actions.add_parser(
        "score", help="score the waiting studies and apply the policy",
        description="A routine study whose score reaches the threshold becomes stat. "
        "The threshold is --threshold, else the run's any_ich high-sensitivity operating point.")
    add_repository_arguments(score)
    source = score.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", dest="run_dir", type=Path, help="ICH detector run folder")
    source.add_argument("--scores", type=Path, help="CSV: study_instance_uid, score")
    score.add_argument("--threshold", type=float, help="score at or above which a routine "
                       "study becomes stat (needed with --scores)")
    score.add_argument("--rescore", action="store_true",
                       help="predict again studies this run already scored")
    score.add_argument("--batch-size", type=int, default=4, help="studies per forward pass")
    score.set_defaults(run=run_score)


def _add_list(actions: argparse._SubParsersAction) -> None:
    listing = actions.add_parser("list", help="the queue: stat first, then by arrival")
    add_repository_arguments(listing)
    listing.add_argument("--all", action="store_true", help="include studies already read")
    listing.add_argument("--study", metavar="UID", help="show this study's priority history")
    listing.add_argument("--csv", type=Path, help="also write the queue as CSV")
    listing.set_defaults(run=run_list)


def _add_read(actions: argparse._SubParsersAction) -> None:
    read = actions.add_parser("read", help="record that a study was read")
    read.add_argument("study", metavar="STUDY", help="the study's Study Instance UID")
    add_repository_arguments(read)
    read.add_argument("--at", help="read time, ISO 8601 with zone (default now)")
    read.set_defaults(run=run_read)


def _add_simulate(actions: argparse._SubParsersAction) -> None:
    from voxelwise.triage.simulate import SimulationConfig

    simulate = actions.add_parser(
        "simulate", help="queue simulation: time to diagnosis with and without the model",
        description="Discrete-event simulation of a reading worklist. Parameters come from "
        "--config (TOML/JSON), then these options; defaults in brackets.")
    simulate.add_argument("--config", type=Path, help="TOML or JSON file of parameters")
    simulate.add_argument("--out", type=Path, default=SIMULATION_OUT,
                          help=f"output folder (default {SIMULATION_OUT})")
    for item in dataclasses.fields(SimulationConfig):
        option = "--" + item.name.replace("_", "-")
        if isinstance(item.default, bool):
            simulate.add_argument(option, action=argparse.BooleanOptionalAction, default=None,
                                  help=f"[{item.default}]")
        else:
            simulate.add_argument(option, type=type(item.default), default=None,
                                  help=f"[{item.default}]")
    simulate.set_defaults(run=run_simulate)


# ---------------------------------------------------------------------------------------------


def _write_manifest(folder: Path, name: str, content: dict[str, Any]) -> Path:
    import datetime as dt
    import json

    from voxelwise import __version__
    from voxelwise.fileio import write_text_atomic

    manifest = {"command": f"voxelwise triage {name}", "version": __version__,
                "created": dt.datetime.now(dt.UTC).isoformat(), **content}
    path = folder / f"{name}-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%fZ')}.json"
    return write_text_atomic(path, json.dumps(manifest, indent=2, default=str))


def run_add(args: argparse.Namespace) -> int:
    import datetime as dt
    import time

    from voxelwise.triage.worklist import add_studies, parse_time, read_worklist_csv, requests_for

    started = time.perf_counter()
    arrival = parse_time(args.arrival) if args.arrival else dt.datetime.now(dt.UTC)
    with open_repository(args) as repository:
        with repository.session() as session:
            if args.csv:
                requests = read_worklist_csv(args.csv)
            else:
                requests = requests_for(session, None if args.all else args.study, arrival,
                                        args.priority, dt.timedelta(minutes=args.interval_min))
            result = add_studies(session, requests)
        manifest = _write_manifest(repository.root / "triage", "add", {
            "inputs": {"repository": str(repository.root), "csv": args.csv},
            "parameters": {"all": args.all, "study": args.study, "priority": args.priority,
                           "arrival": arrival.isoformat(), "interval_min": args.interval_min},
            "outputs": {"added": result.added, "already_listed": result.already_listed},
            "seconds": round(time.perf_counter() - started, 3)})
    print(f"added {len(result.added)} studies to the worklist; "
          f"{len(result.already_listed)} already on it")
    print(f"manifest: {manifest}")
    return 0


def run_score(args: argparse.Namespace) -> int:
    import time

    from voxelwise.triage.score import resolve_threshold, score_from_csv, score_from_run

    started = time.perf_counter()
    threshold = resolve_threshold(args.run_dir, args.threshold)
    with open_repository(args) as repository:
        if args.scores:
            result = score_from_csv(repository, args.scores, threshold)
        else:
            result = score_from_run(repository, args.run_dir, threshold=threshold,
                                    batch_size=args.batch_size, rescore=args.rescore)
        summary = result.as_dict()
        manifest = _write_manifest(repository.root / "triage", "score", {
            "inputs": {"repository": str(repository.root), "run": args.run_dir,
                       "scores": args.scores},
            "parameters": {"threshold": threshold, "rescore": args.rescore,
                           "batch_size": args.batch_size},
            "outputs": summary, "seconds": round(time.perf_counter() - started, 3)})
    print(f"scored {summary['scored']} waiting studies at threshold {threshold:.3f} "
          f"({summary['unchanged']} unchanged): {summary['moved_to_stat']} moved to stat, "
          f"{summary['moved_to_routine']} back to routine")
    for change in summary["changes"]:
        print(f"  {change['study_instance_uid']}: {change['reason']}")
    if summary["not_scored"]:
        print(f"{len(summary['not_scored'])} waiting studies have no score")
    if summary["not_waiting"]:
        print(f"{len(summary['not_waiting'])} scores are for studies not waiting (ignored)")
    print(f"manifest: {manifest}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from voxelwise.cli.common import rows_to_csv
    from voxelwise.fileio import write_text_atomic
    from voxelwise.triage.worklist import LIST_COLUMNS, list_worklist, priority_history

    with open_repository(args) as repository, repository.session() as session:
        if args.study:
            history = priority_history(session, args.study)
            print(format_table(history, ("changed_at", "from", "to", "score", "threshold",
                                         "reason")))
            return 0
        rows = list_worklist(session, include_read=args.all)
    print(format_table(rows, LIST_COLUMNS))
    if args.csv:
        write_text_atomic(args.csv, rows_to_csv(rows, LIST_COLUMNS))
    return 0


def run_read(args: argparse.Namespace) -> int:
    from voxelwise.triage.worklist import parse_time, record_read

    read_at = parse_time(args.at) if args.at else None
    with open_repository(args) as repository:
        with repository.session() as session:
            entry, new = record_read(session, args.study, read_at)
            arrival, read = entry.arrival_at, entry.read_at
        _write_manifest(repository.root / "triage", "read", {
            "inputs": {"repository": str(repository.root), "study": args.study},
            "outputs": {"read_at": read, "newly_read": new}})
    minutes = (read - arrival).total_seconds() / 60
    state = "read" if new else "was already read"
    print(f"{args.study} {state} at {read:%Y-%m-%d %H:%M} UTC, {minutes:.0f} min after arrival")
    return 0


def simulation_config(args: argparse.Namespace):
    """The parameters: defaults, then --config, then the options given."""
    from voxelwise.tasks import dataclass_from_mapping, load_config_mapping
    from voxelwise.triage.simulate import SimulationConfig

    config = SimulationConfig()
    if args.config:
        config = dataclass_from_mapping(SimulationConfig, load_config_mapping(args.config),
                                        args.config)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(SimulationConfig)
             if getattr(args, f.name) is not None}
    return dataclasses.replace(config, **given).check()


def run_simulate(args: argparse.Namespace) -> int:
    from voxelwise.triage.outputs import run_simulation

    config = simulation_config(args)
    _, manifest = run_simulation(config, args.out)
    rows = [dict(zip(("measure", "without model", "with model"), row, strict=True))
            for row in manifest["table"]]
    print(format_table(rows, ("measure", "without model", "with model")))
    if not manifest["summary"]["stable"]:
        print(f"warning: reading work exceeds capacity (utilisation "
              f"{manifest['summary']['utilisation']:.2f}); the backlog grows without end")
    for kind, path in manifest["outputs"].items():
        print(f"wrote {kind}: {path}")
    return 0
