"""Ingest throughput: voxelwise against dicognito, and ingest as the repository grows.

Comparison (default)::

    python benchmarks/ingest.py [--slices 200] [--size 512] [--repeats 3] [--no-baseline]

writes one CT series with fake PHI (`voxelwise.imaging.write_dicom_series`) into a temporary
folder, then, on the same files in the same run, times

* **voxelwise**: `voxelwise.ingest.pipeline.ingest_folder` into a fresh repository (scan,
  de-identification, identifier check, pixel check, content store flushed to disk, QC of the
  stored series, database records; worker processes as `--workers` says, default one per CPU);
* **dicognito**: read each file with pydicom, ``Anonymizer().anonymize(dataset)``, write it to an
  output folder (dicognito's Python API, one anonymizer for the run, as its command line does);
* **pydicom** (unless ``--no-baseline``): a plain read and write of each file, the floor of any
  pydicom-based de-identifier;

and prints files/s for each (every repeat, then the median) and the ratio voxelwise/dicognito.
dicognito is a benchmark-only dependency (``pip install dicognito``); without it the comparison
stops with a message and exit status 2.

Scaling::

    python benchmarks/ingest.py --scaling 50 [--slices 200] [--size 64] [--batch 5]

writes ``--scaling`` series (one patient each) and ingests them into one repository, ``--batch``
series per `ingest_folder` run, printing per batch the number of instances already stored,
files/s and the time spent in the database: neither may worsen as the repository grows (50 x 200
= 10,000 instances).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from voxelwise.imaging import Volume, write_dicom_series
from voxelwise.ingest.pipeline import ingest_folder
from voxelwise.store import Repository


def _phantom(slices: int, size: int, seed: int) -> Volume:
    """A head-like CT volume: air, a skull ring, brain with noise; inside the field of view."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    radius = np.hypot((y - size / 2) / (0.42 * size), (x - size / 2) / (0.36 * size))
    plane = np.where(radius < 1.0, 1200, -1000).astype(np.int16)
    plane[radius < 0.9] = 35
    brain = radius < 0.9
    array = np.repeat(plane[None], slices, axis=0)
    noise = rng.normal(0, 4, (slices, int(brain.sum()))).astype(np.int16)
    array[:, brain] += noise
    return Volume(array, (5.0, 220.0 / size, 220.0 / size), (-110.0, -110.0, -40.0),
                  meta={"modality": "CT", "units": "HU"})


def _phi(number: int) -> dict[str, object]:
    """Fake identifiers of one patient (every one of them must go)."""
    return {"PatientName": f"Testperson^Marta{number:04d}", "PatientID": f"MRN{700000 + number}",
            "PatientBirthDate": "19580214", "PatientSex": "F",
            "AccessionNumber": f"ACC{number:07d}",
            "InstitutionName": "Hospital Fictivo", "ReferringPhysicianName": "Doctor^Example",
            "OperatorsName": "Tech^Example", "StudyDate": "20240105", "StudyID": f"S{number}",
            "SeriesDescription": "HEAD 5mm", "StationName": "CT01"}


def _write_series(folder: Path, slices: int, size: int, number: int) -> list[Path]:
    return write_dicom_series(_phantom(slices, size, number), folder, _phi(number))


def _open_repository(root: Path, url: str | None) -> Repository:
    return Repository.open(root, url=url or f"sqlite:///{root / 'repository.db'}")


def _workers(args: argparse.Namespace) -> dict[str, int]:
    return {} if args.workers is None else {"workers": args.workers}


def _time_voxelwise(source: Path, work: Path, args: argparse.Namespace, expected: int) -> float:
    root = Path(tempfile.mkdtemp(prefix="repo-", dir=work))
    repository = _open_repository(root, args.db)
    try:
        started = time.perf_counter()
        report = ingest_folder(source, repository, "BENCH", key_path=work / "bench.key",
                               progress=False, **_workers(args))
        elapsed = time.perf_counter() - started
    finally:
        repository.close()
        shutil.rmtree(root)  # each run writes a fresh repository; keep the disk quiet
    stored = report.counts()["instances_stored"]
    if stored != expected:
        raise SystemExit(f"voxelwise stored {stored} of {expected} instances: "
                         + "; ".join(report.summary_lines()))
    return elapsed


def _time_dicognito(files: list[Path], work: Path) -> float:
    from dicognito.anonymizer import Anonymizer

    out = Path(tempfile.mkdtemp(prefix="dicognito-", dir=work))
    started = time.perf_counter()
    anonymizer = Anonymizer()
    for path in files:
        dataset = pydicom.dcmread(path)
        anonymizer.anonymize(dataset)
        dataset.save_as(out / path.name)
    elapsed = time.perf_counter() - started
    shutil.rmtree(out)
    return elapsed


def _time_pydicom(files: list[Path], work: Path) -> float:
    out = Path(tempfile.mkdtemp(prefix="pydicom-", dir=work))
    started = time.perf_counter()
    for path in files:
        dataset = pydicom.dcmread(path)
        dataset.save_as(out / path.name)
    elapsed = time.perf_counter() - started
    shutil.rmtree(out)
    return elapsed


def compare(args: argparse.Namespace) -> int:
    try:
        import dicognito
    except ImportError:
        print("dicognito is not installed; it is a benchmark-only dependency: "
              "pip install dicognito", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="voxelwise-bench-") as tmp:
        work = Path(tmp)
        print(f"writing a {args.slices}-slice {args.size} x {args.size} CT series with fake PHI")
        files = _write_series(work / "source", args.slices, args.size, 1)
        warmup = work / "warmup"  # first-use costs (imports, tables) outside the timings
        warm_files = _write_series(warmup, 12, 32, 2)
        _time_voxelwise(warmup, work, args, len(warm_files))
        _time_dicognito(warm_files, work)
        _time_pydicom(warm_files, work)

        runs: dict[str, list[float]] = {"voxelwise": [], "dicognito": []}
        if args.baseline:
            runs["pydicom read+write"] = []
        for repeat in range(args.repeats):
            for name in runs:
                if name == "voxelwise":
                    seconds = _time_voxelwise(work / "source", work, args, len(files))
                elif name == "dicognito":
                    seconds = _time_dicognito(files, work)
                else:
                    seconds = _time_pydicom(files, work)
                runs[name].append(len(files) / seconds)
                print(f"  repeat {repeat + 1}: {name:<20} {len(files) / seconds:8.0f} files/s "
                      f"({seconds:.2f} s)")
        print(f"\n{len(files)} files, {args.size} x {args.size}, median of {args.repeats} "
              f"(pydicom {pydicom.__version__}, dicognito {dicognito.__version__}):")
        medians = {name: statistics.median(rates) for name, rates in runs.items()}
        for name, rate in medians.items():
            print(f"  {name:<20} {rate:8.0f} files/s")
        ratio = medians["voxelwise"] / medians["dicognito"]
        print(f"  ratio voxelwise / dicognito: {ratio:.2f}")
    return 0


def _time_sessions(repository: Repository) -> list[float]:
    """Make ``repository`` add the seconds spent in each database unit of work to the list.

    Every query and insert of an ingest runs in `Repository.session()`: this is the part of the
    work that could grow with the repository (lookups, inserts, index upkeep, commits).
    """
    spent = [0.0]
    session = repository.session

    @contextlib.contextmanager
    def timed() -> Iterator[Any]:
        begin = time.perf_counter()
        try:
            with session() as opened:
                yield opened
        finally:
            spent[0] += time.perf_counter() - begin

    repository.session = timed  # type: ignore[method-assign]
    return spent


def scaling(args: argparse.Namespace) -> int:
    count, batch = args.scaling, args.batch
    with tempfile.TemporaryDirectory(prefix="voxelwise-scaling-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        batches = []
        for first in range(0, count, batch):
            folder = work / "source" / f"batch{first // batch:03d}"
            for number in range(first, min(first + batch, count)):
                _write_series(folder / f"series{number:04d}", args.slices, args.size, number)
            batches.append(folder)
        print(f"wrote {count} series x {args.slices} slices of {args.size} x {args.size} "
              f"in {time.perf_counter() - started:.0f} s; ingesting {batch} series per run")
        repository = _open_repository(work / "repo", args.db)
        database = _time_sessions(repository)
        rates, per_file_db, stored = [], [], 0
        try:
            for index, folder in enumerate(batches):
                database[0] = 0.0
                begin = time.perf_counter()
                report = ingest_folder(folder, repository, "BENCH", key_path=work / "bench.key",
                                       progress=False, **_workers(args))
                seconds = time.perf_counter() - begin
                new = report.counts()["instances_stored"]
                rates.append(new / seconds)
                per_file_db.append(database[0] / new * 1e3)
                print(f"  batch {index + 1:3d}: {stored:6d} instances already stored, "
                      f"+{new} in {seconds:5.2f} s = {new / seconds:6.0f} files/s; "
                      f"database {database[0]:5.2f} s ({per_file_db[-1]:.3f} ms/file)")
                stored += new
        finally:
            repository.close()
        third = max(1, len(rates) // 3)
        early, late = statistics.median(rates[:third]), statistics.median(rates[-third:])
        db_early = statistics.median(per_file_db[:third])
        db_late = statistics.median(per_file_db[-third:])
        print(f"\n{stored} instances; median of the first {third} batch(es) vs the last {third}: "
              f"{early:.0f} vs {late:.0f} files/s (last/first {late / early:.2f}), "
              f"database {db_early:.3f} vs {db_late:.3f} ms/file")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=200, help="slices per series")
    parser.add_argument("--size", type=int, default=None,
                        help="rows and columns (default 512; 64 with --scaling)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each tool")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the plain pydicom read+write baseline")
    parser.add_argument("--scaling", type=int, metavar="N", default=0,
                        help="instead: ingest N series into one repository, per batch")
    parser.add_argument("--batch", type=int, default=5, help="series per ingest run (--scaling)")
    parser.add_argument("--workers", type=int, default=None,
                        help="voxelwise worker processes (default: one per CPU)")
    parser.add_argument("--db", default=None,
                        help="database URL (default: SQLite in the temporary repository)")
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = 64 if args.scaling else 512
    return scaling(args) if args.scaling else compare(args)


if __name__ == "__main__":
    sys.exit(main())
