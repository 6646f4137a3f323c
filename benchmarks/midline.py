"""Midline shift against the phantom's truth, on every scan of one or more phantom seeds.

    python benchmarks/midline.py --size full --seeds 0 1 2 3 --patients 8 --followups 1

Prints each scan's true and estimated signed shift (mm, + towards the patient's left), the
estimate's time, and at the end the largest error and how many scans were more than 2 mm off
(the issue's target: every scan within 2 mm).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from voxelwise.biomarkers import estimate_midline  # noqa: E402
from voxelwise.data.phantoms.head_ct import PhantomParameters, render_phantom_study  # noqa: E402

_SIGN = {None: 0, "left": 1, "right": -1}


def check_seed(size: str, seed: int, centers: int, patients: int, followups: int
               ) -> list[tuple[int, int, float, float | None, float]]:
    """(patient, timepoint, true mm, estimated mm, seconds) of every scan of one phantom."""
    parameters = PhantomParameters(centers=centers, patients=patients, followups=followups,
                                   size=size, seed=seed)
    found = []
    for patient in range(parameters.total_patients):
        for timepoint in range(followups + 1):
            study = render_phantom_study(parameters, patient, timepoint)
            started = time.perf_counter()
            estimate = estimate_midline(study.image)
            seconds = time.perf_counter() - started
            true = _SIGN[study.truth["shift_towards"]] * study.truth["midline_shift_mm"]
            found.append((patient, timepoint, true, estimate.signed_shift_mm, seconds))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "full"), default="full")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--centers", type=int, default=1)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--followups", type=int, default=1)
    args = parser.parse_args()
    errors, times, missing = [], [], 0
    for seed in args.seeds:
        for patient, timepoint, true, estimated, seconds in check_seed(
                args.size, seed, args.centers, args.patients, args.followups):
            error = abs(true - estimated) if estimated is not None else float("nan")
            missing += estimated is None
            errors.append(error)
            times.append(seconds)
            flag = "  > 2 mm" if error > 2.0 else ""
            print(f"seed {seed} patient {patient} t{timepoint}: true {true:+.2f} mm, "
                  f"estimated {estimated} mm, error {error:.2f} mm, {seconds:.2f} s{flag}",
                  flush=True)
    found = [e for e in errors if e == e]
    print(f"{len(errors)} {args.size} scans, seeds {args.seeds}: max error {max(found):.2f} mm, "
          f"mean {sum(found) / len(found):.2f} mm, {sum(e > 2.0 for e in found)} over 2 mm, "
          f"{missing} without an estimate; estimate {sum(times) / len(times):.2f} s per scan")


if __name__ == "__main__":
    main()
