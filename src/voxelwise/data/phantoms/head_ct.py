"""Synthetic multi-centre head-CT study after trauma / haemorrhage: DICOM, ground truth, outcomes.

`generate_head_ct_study` writes, for each patient of each centre, an admission CT and follow-up
CTs as real DICOM series with realistic tags and fake PHI, the ground-truth label map of each
series, one row per study of labels, and one row per patient of clinical data whose outcome
depends on age, GCS and (unless ``imaging_effect=0``) the lesion burden. Everything is
deterministic for a seed; nothing reads the clock. Example::

    from voxelwise.data.phantoms.head_ct import generate_head_ct_study
    study = generate_head_ct_study("phantom", centers=2, patients=3, size="small")
    print(study.studies[0]["haematoma_ml"], study.manifest_path)

Output layout (``OUT`` is ``out_dir``)::

    OUT/
      phantom.json                    manifest: parameters, seed, voxelwise version, counts,
                                      centres, per-study truth (lesions, volumes, midline shift),
                                      outcome coefficients, every PHI value ("phi")
      labels.csv                      one row per study, columns STUDY_COLUMNS
      clinical/<CENTER>.csv           one row per patient of that centre, columns CLINICAL_COLUMNS
      labels/<PatientID>_t<k>.nii.gz  label map of time point k (0 = admission) on exactly the
                                      grid of its DICOM series: 0 background, 1 haematoma,
                                      2 perihaematomal oedema
      dicom/<CENTER>/<PatientID>/<StudyDate>_<AccessionNumber>/IM*.dcm
                                      one axial CT series per study, one file per slice

Images: ``size="full"`` is 512 x 512 x 32 slices of 5 mm with 0.41-0.49 mm pixels (per centre);
``size="small"`` is 128 x 128 x 16 slices of 10 mm covering the same head (pixels 4x larger).
Axes (slice, row, column) point to head, posterior and the patient's left (DICOM IOP
1\\0\\0\\0\\1\\0). Anatomy is in `anatomy`, haemorrhage in `lesions`, scanner blur and noise in
`scanner`, fake identities in `phi`, the clinical outcome formula in `clinical`.

labels.csv columns: ``midline_shift_mm`` is the true displacement of the septum pellucidum from
the ideal midline plane at the level of the foramen of Monro; ``midline_shift`` is 1 when it is
at least 5 mm and ``mass_effect`` 1 when it is at least 2 mm; ``haematoma_ml`` and ``oedema_ml``
are label-1 and label-2 voxels times the voxel volume; ``lesion_count`` counts the bleeds placed
(a subarachnoid bleed over several sulci counts once); the five subtype columns are 1 when that
subtype has at least one voxel.

Outcome (the full formula and its coefficients are in `clinical`)::

    lp = 0.04 (age - 50) - 0.2 (GCS - 15) + 0.55 nonreactive_pupils + 0.45 hypoxia
         + 0.55 hypotension + imaging_effect * (0.9 (log1p(H) - log1p(10)) + 0.18 (S - 2))
         + N(0, 0.35)
    cumulative hazard of death exp(-2.2 + lp) (t / 180) ** 0.6, censored at 180 days;
    GOS-E from lp among survivors, 1 for the dead

with H the admission haematoma volume (mL) and S the admission midline shift (mm); GCS itself
falls with H and S when imaging_effect > 0 and is unrelated to the images when it is 0.

Nothing is half-written: patients are generated into ``OUT.partial/`` (each marked done when its
files are complete); a rerun with the same parameters resumes there, and the finished folder is
moved onto ``OUT`` at the end.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelwise.data.phantoms.anatomy import (
    AnatomyImage,
    HeadAnatomy,
    HeadFrame,
    HeadPose,
    MidlineShift,
    ScanGrid,
    render_anatomy,
    sample_head,
)
from voxelwise.data.phantoms.clinical import OutcomeModel, sample_clinical
from voxelwise.data.phantoms.lesions import (
    DEFAULT_ICH_FREE_FRACTION,
    SUBTYPES,
    CaseMix,
    LesionPlan,
    plan_case_mix,
    render_lesions,
    sample_lesions,
    septum_shift_mm,
)
from voxelwise.data.phantoms.phi import (
    Center,
    PatientIdentity,
    dicom_attributes,
    make_centers,
    make_patient,
    phi_values,
)
from voxelwise.data.phantoms.scanner import acquire
from voxelwise.errors import InputError
from voxelwise.fileio import replace_directory, write_text_atomic
from voxelwise.imaging.volume import Volume

GENERATOR_VERSION = 1
"""Bump when the same parameters would give different files (it is part of the fingerprint)."""

SIZES = {"full": ((32, 512, 512), 5.0, 1), "small": ((16, 128, 128), 10.0, 4)}
"""size -> (grid shape, slice spacing mm, in-plane spacing multiplier of the centre's pixels)."""

STUDY_COLUMNS = (
    "center", "patient_id", "timepoint", "days_since_admission", "study_instance_uid",
    "series_instance_uid", "accession_number", "dicom_dir", "label_map", "any_ich",
    "intraparenchymal", "intraventricular", "subdural", "extradural", "subarachnoid",
    "midline_shift", "mass_effect", "midline_shift_mm", "haematoma_ml", "oedema_ml",
    "lesion_count",
)
CLINICAL_COLUMNS = (
    "patient_id", "age", "sex", "gcs", "pupils", "hypoxia", "hypotension", "gose", "death",
    "survival_days", "event",
)
_INT_COLUMNS = {"timepoint", "days_since_admission", "any_ich", *SUBTYPES, "midline_shift",
                "mass_effect", "lesion_count", "age", "gcs", "hypoxia", "hypotension", "gose",
                "death", "survival_days", "event"}
_FLOAT_COLUMNS = {"midline_shift_mm", "haematoma_ml", "oedema_ml"}

_STUDY_STREAM, _PATIENT_STREAM = 101, 202
_HEAD, _LESIONS, _POSES, _NOISE, _CLINICAL = range(5)
_DONE, _PARAMETERS = ".done", ".parameters.json"


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class PhantomParameters:
    """What a head-CT phantom is made from; two runs with equal parameters write equal files."""

    centers: int = 2
    patients: int = 4          # per centre
    followups: int = 2
    size: str = "small"
    seed: int = 0
    imaging_effect: float = 1.0
    ich_free_fraction: float = DEFAULT_ICH_FREE_FRACTION  # patients without haemorrhage

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}; got {self.size!r}")
        if not 1 <= self.centers <= 50:
            raise ValueError(f"centers must be between 1 and 50; got {self.centers}")
        if self.patients < 1:
            raise ValueError(f"patients (per centre) must be 1 or more; got {self.patients}")
        if self.followups < 0:
            raise ValueError(f"followups must be 0 or more; got {self.followups}")
        if not self.imaging_effect >= 0:
            raise ValueError(f"imaging_effect must be 0 or more; got {self.imaging_effect}")
        if not 0.0 <= self.ich_free_fraction <= 1.0:
            raise ValueError("ich_free_fraction must be between 0 and 1; got "
                             f"{self.ich_free_fraction}")

    @property
    def total_patients(self) -> int:
        return self.centers * self.patients

    def fingerprint(self) -> dict[str, Any]:
        """Everything that determines the files. ``ich_free_fraction`` appears only when it is
        not the default, so phantoms made before it existed keep their key, UIDs and PHI."""
        values = asdict(self)
        if values["ich_free_fraction"] == DEFAULT_ICH_FREE_FRACTION:
            del values["ich_free_fraction"]
        return {"generator": "head_ct", "generator_version": GENERATOR_VERSION, **values}

    def key(self) -> str:
        return json.dumps(self.fingerprint(), sort_keys=True)


@dataclass(frozen=True)
class PhantomStudy:
    """A generated phantom: where it is and what it holds."""

    root: Path
    studies: list[dict[str, Any]]   # rows of labels.csv, typed
    clinical: list[dict[str, Any]]  # rows of every clinical/<CENTER>.csv, typed
    manifest_path: Path

    @property
    def manifest(self) -> Path:
        """The manifest's path (``phantom.json``); the same as ``manifest_path``."""
        return self.manifest_path


# ----------------------------------------------------------------------------- one patient


@dataclass(frozen=True)
class _PatientPlan:
    identity: PatientIdentity
    mix: CaseMix


def _plan_study(parameters: PhantomParameters) -> list[_PatientPlan]:
    """Identities and case mix of every patient (cheap; the same in every process)."""
    rng = np.random.default_rng([parameters.seed, _STUDY_STREAM])
    centers = make_centers(parameters.centers)
    taken: set[str] = set()
    identities = [make_patient(c * parameters.patients + j, center, parameters.followups,
                               parameters.key(), rng, taken)
                  for c, center in enumerate(centers) for j in range(parameters.patients)]
    mixes = plan_case_mix(rng, parameters.total_patients, parameters.ich_free_fraction)
    return [_PatientPlan(identity, mix) for identity, mix in zip(identities, mixes, strict=True)]


def _rng(parameters: PhantomParameters, patient: int, purpose: int, *more: int
         ) -> np.random.Generator:
    return np.random.default_rng([parameters.seed, _PATIENT_STREAM, patient, purpose, *more])


def scan_grid(center: Center, size: str, bottom_mm: float) -> ScanGrid:
    """The grid of a centre's head CT whose lowest slice's lower edge is at z = bottom_mm."""
    shape, slice_mm, factor = SIZES[size]
    pixel = center.pixel_spacing_mm * factor
    origin = (-pixel * (shape[2] - 1) / 2, -pixel * (shape[1] - 1) / 2, bottom_mm + slice_mm / 2)
    return ScanGrid(shape, (slice_mm, pixel, pixel), origin)


@dataclass(frozen=True)
class _PatientModel:
    """Everything needed to render any study of one patient."""

    plan: _PatientPlan
    head: HeadAnatomy
    lesions: list[LesionPlan]
    compliance: float
    grids: list[ScanGrid]
    poses: list[HeadPose]


def _patient_model(parameters: PhantomParameters, plan: _PatientPlan) -> _PatientModel:
    identity = plan.identity
    index = identity.index
    head = sample_head(_rng(parameters, index, _HEAD), identity.age)
    days = [study.day for study in identity.studies]
    lesions = sample_lesions(_rng(parameters, index, _LESIONS), head, plan.mix, days)
    rng = _rng(parameters, index, _POSES)
    atrophy = float(np.clip((identity.age - 30) / 60.0, 0, 1))
    compliance = float(rng.uniform(0.85, 1.15) * (1.1 - 0.25 * atrophy))
    table = float(rng.uniform(-190.0, -110.0))
    grids, poses = [], []
    for _ in days:
        bottom = table + float(rng.uniform(-4.0, 4.0))
        grids.append(scan_grid(identity.center, parameters.size, bottom))
        poses.append(HeadPose(center=(float(rng.uniform(-4, 4)), float(rng.uniform(-4, 4)),
                                      bottom + 57.0 + float(rng.uniform(-3, 3))),
                              yaw_deg=float(rng.uniform(-3, 3))))
    return _PatientModel(plan, head, lesions, compliance, grids, poses)


@dataclass
class RenderedStudy:
    """One study in memory: the CT as written to DICOM, its label map and its truth."""

    image: Volume            # int16 HU, blurred and noisy, as the scanner reconstructs it
    label: Volume            # uint8: 0 background, 1 haematoma, 2 oedema
    anatomy: AnatomyImage    # noise-free HU (lesions included) and tissue classes
    truth: dict[str, Any]


def _render(parameters: PhantomParameters, model: _PatientModel, timepoint: int
            ) -> RenderedStudy:
    identity = model.plan.identity
    grid, pose = model.grids[timepoint], model.poses[timepoint]
    frame = HeadFrame(grid, pose)
    shift = septum_shift_mm(model.lesions, timepoint, model.compliance)
    anatomy = render_anatomy(model.head, frame, MidlineShift.from_septum_shift(shift))
    label, lesions = render_lesions(model.lesions, timepoint, frame, anatomy)
    noise_rng = _rng(parameters, identity.index, _NOISE, timepoint)
    pixels = acquire(anatomy.hu.copy(), grid.spacing, identity.center.noise_hu, noise_rng)
    study = identity.studies[timepoint]
    voxel_ml = grid.voxel_volume_ml
    truth = {
        "center": identity.center.code, "patient_id": identity.patient_id,
        "timepoint": timepoint, "days_since_admission": study.day,
        "midline_shift_mm": round(abs(shift), 3),
        "shift_towards": None if shift == 0 else ("left" if shift > 0 else "right"),
        "haematoma_ml": round(int((label == 1).sum()) * voxel_ml, 6),
        "oedema_ml": round(int((label == 2).sum()) * voxel_ml, 6),
        "lesions": [asdict(lesion) for lesion in lesions],
        "head_center_lps": [round(c, 3) for c in pose.center],
        "head_yaw_deg": round(pose.yaw_deg, 3),
        "shape": list(grid.shape), "spacing": list(grid.spacing), "origin": list(grid.origin),
    }
    meta = {"modality": "CT", "series_instance_uid": study.series_instance_uid}
    return RenderedStudy(image=grid.volume(pixels, units="HU", **meta),
                         label=grid.volume(label, units="label", **meta),
                         anatomy=anatomy, truth=truth)


def render_phantom_study(parameters: PhantomParameters, patient: int, timepoint: int
                         ) -> RenderedStudy:
    """Render one study in memory, identical to what `generate_head_ct_study` writes for it."""
    plans = _plan_study(parameters)
    if not 0 <= patient < len(plans):
        raise ValueError(f"patient must be in 0..{len(plans) - 1}; got {patient}")
    if not 0 <= timepoint <= parameters.followups:
        raise ValueError(f"timepoint must be in 0..{parameters.followups}; got {timepoint}")
    return _render(parameters, _patient_model(parameters, plans[patient]), timepoint)


def _study_row(identity: PatientIdentity, timepoint: int, truth: dict[str, Any],
               dicom_dir: str, label_map: str) -> dict[str, Any]:
    study = identity.studies[timepoint]
    present = {subtype: int(any(lesion["subtype"] == subtype for lesion in truth["lesions"]))
               for subtype in SUBTYPES}
    shift = truth["midline_shift_mm"]
    return {
        "center": identity.center.code, "patient_id": identity.patient_id,
        "timepoint": timepoint, "days_since_admission": study.day,
        "study_instance_uid": study.study_instance_uid,
        "series_instance_uid": study.series_instance_uid,
        "accession_number": study.accession_number, "dicom_dir": dicom_dir,
        "label_map": label_map, "any_ich": int(truth["haematoma_ml"] > 0), **present,
        "midline_shift": int(shift >= 5.0), "mass_effect": int(shift >= 2.0),
        "midline_shift_mm": shift, "haematoma_ml": truth["haematoma_ml"],
        "oedema_ml": truth["oedema_ml"], "lesion_count": len(truth["lesions"]),
    }


@dataclass(frozen=True)
class _PatientJob:
    staging: Path
    parameters: PhantomParameters
    plan: _PatientPlan


def _generate_patient(job: _PatientJob) -> int:
    """Write every study of one patient into the staging folder, then mark the patient done."""
    from voxelwise.imaging.dicom_write import write_dicom_series
    from voxelwise.imaging.nifti import write_nifti

    parameters, identity = job.parameters, job.plan.identity
    patient_dir = job.staging / "dicom" / identity.center.code / identity.patient_id
    if patient_dir.exists():  # left over from an interrupted run
        shutil.rmtree(patient_dir)
    model = _patient_model(parameters, job.plan)
    rows, truths, phi = [], [], {}
    for study in identity.studies:
        rendered = _render(parameters, model, study.timepoint)
        attributes = dicom_attributes(identity, study)
        series_dir = patient_dir / f"{study.date}_{study.accession_number}"
        write_dicom_series(rendered.image, series_dir, attributes)
        label_name = f"labels/{identity.patient_id}_t{study.timepoint}.nii.gz"
        write_nifti(rendered.label, job.staging / label_name)
        rows.append(_study_row(identity, study.timepoint, rendered.truth,
                               series_dir.relative_to(job.staging).as_posix(), label_name))
        truths.append(rendered.truth)
        for keyword, value in phi_values(attributes).items():
            phi.setdefault(keyword, set()).add(value)

    admission = truths[0]
    record = sample_clinical(_rng(parameters, identity.index, _CLINICAL), identity.patient_id,
                             identity.age, identity.sex, admission["haematoma_ml"],
                             admission["midline_shift_mm"], identity.studies[-1].day,
                             parameters.imaging_effect)
    marker = {
        "index": identity.index, "center": identity.center.code, "rows": rows, "truth": truths,
        "clinical": record.row(), "linear_predictor": record.linear_predictor,
        "lesions": [asdict(lesion) for lesion in model.lesions],
        "phi": {keyword: sorted(values) for keyword, values in phi.items()},
    }
    write_text_atomic(job.staging / _DONE / f"{identity.index:05d}.json",
                      json.dumps(marker, sort_keys=True))
    return len(rows)


# ----------------------------------------------------------------------------- the whole study


def generate_head_ct_study(out_dir: str | Path, centers: int = 2, patients: int = 4,
                           followups: int = 2, size: str = "small", seed: int = 0,
                           imaging_effect: float = 1.0, progress: bool = True, *,
                           overwrite: bool = False, workers: int = 2,
                           ich_free_fraction: float = DEFAULT_ICH_FREE_FRACTION) -> PhantomStudy:
    """Write a synthetic multi-centre head-CT study into ``out_dir`` (layout: module docstring).

    Each of ``centers`` centres has ``patients`` patients; each patient has an admission CT and
    ``followups`` follow-up CTs. ``imaging_effect`` scales how much the lesion burden drives GCS
    and outcome (0: a control phantom whose outcome imaging cannot predict). A finished phantom
    with the same parameters in ``out_dir`` is returned as it is (nothing is rewritten); any
    other non-empty ``out_dir`` is refused unless ``overwrite``. ``workers`` processes render
    patients in parallel. ``ich_free_fraction`` of the patients (rounded) have no haemorrhage
    on any scan (default 0.2; a detector's cohort wants more negatives).
    """
    parameters = PhantomParameters(centers, patients, followups, size, seed, imaging_effect,
                                   ich_free_fraction)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder; choose another output path")
    if out.is_dir() and _manifest_key(out) == parameters.key():
        return load_phantom(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(out, "exists and is not empty (and is not a head-CT phantom with these "
                              "parameters); pass overwrite=True to replace it")

    staging = out.with_name(out.name + ".partial")
    done = _prepare_staging(staging, parameters)
    plans = _plan_study(parameters)
    todo = [plan for plan in plans if plan.identity.index not in done]
    _run_jobs([_PatientJob(staging, parameters, plan) for plan in todo],
              total=len(plans) * (followups + 1), workers=workers, progress=progress)
    _write_tables(staging, parameters, plans)
    shutil.rmtree(staging / _DONE)
    (staging / _PARAMETERS).unlink()
    replace_directory(staging, out)
    return load_phantom(out)


def _manifest_key(folder: Path) -> str | None:
    """The parameter key of the phantom in ``folder``, or None if it holds none."""
    try:
        manifest = json.loads((folder / "phantom.json").read_text(encoding="utf-8"))
        return json.dumps(manifest["fingerprint"], sort_keys=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _prepare_staging(staging: Path, parameters: PhantomParameters) -> set[int]:
    """Reuse a staging folder of the same parameters (returns its done patients) or start anew."""
    marker = staging / _PARAMETERS
    if staging.exists():
        try:
            same = json.loads(marker.read_text(encoding="utf-8")) == parameters.fingerprint()
        except (OSError, ValueError):
            same = False
        if same and (staging / _DONE).is_dir():
            return {int(path.stem) for path in (staging / _DONE).glob("*.json")}
        shutil.rmtree(staging)
    (staging / _DONE).mkdir(parents=True)
    write_text_atomic(marker, json.dumps(parameters.fingerprint(), sort_keys=True))
    return set()


def _run_jobs(jobs: list[_PatientJob], total: int, workers: int, progress: bool) -> None:
    """Generate patients, in ``workers`` processes when there are several; a bar per study."""
    from tqdm.auto import tqdm

    per_patient = jobs[0].parameters.followups + 1 if jobs else 0
    with tqdm(total=total, initial=total - per_patient * len(jobs), unit="study",
              desc="head-CT phantom", disable=not progress) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                bar.update(_generate_patient(job))
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
            futures = [pool.submit(_generate_patient, job) for job in jobs]
            for future in as_completed(futures):
                bar.update(future.result())


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({column: row[column] for column in columns} for row in rows)


def _write_tables(staging: Path, parameters: PhantomParameters,
                  plans: list[_PatientPlan]) -> None:
    """labels.csv, clinical/<CENTER>.csv and phantom.json from the done markers."""
    markers = [json.loads((staging / _DONE / f"{plan.identity.index:05d}.json")
                          .read_text(encoding="utf-8")) for plan in plans]
    rows = [row for marker in markers for row in marker["rows"]]
    _write_csv(staging / "labels.csv", STUDY_COLUMNS, rows)
    centers = make_centers(parameters.centers)
    for center in centers:
        clinical = [m["clinical"] for m in markers if m["center"] == center.code]
        _write_csv(staging / "clinical" / f"{center.code}.csv", CLINICAL_COLUMNS, clinical)
    manifest = _manifest(parameters, centers, markers, rows)
    (staging / "phantom.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                          encoding="utf-8")


def _manifest(parameters: PhantomParameters, centers: list[Center],
              markers: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    from voxelwise import __version__

    phi: dict[str, set[str]] = {}
    for marker in markers:
        for keyword, values in marker["phi"].items():
            phi.setdefault(keyword, set()).update(values)
    for center in centers:
        for keyword, value in (("InstitutionName", center.institution),
                               ("InstitutionAddress", center.address),
                               ("StationName", center.station_name),
                               ("DeviceSerialNumber", center.device_serial)):
            phi.setdefault(keyword, set()).add(value)
    shape, slice_mm, factor = SIZES[parameters.size]
    return {
        "generator": "voxelwise.data.phantoms.head_ct",
        "fingerprint": parameters.fingerprint(),
        "parameters": asdict(parameters),
        "seed": parameters.seed,
        "voxelwise_version": __version__,
        "counts": {
            "centers": parameters.centers, "patients": parameters.total_patients,
            "studies": len(rows),
            "patients_without_haemorrhage": sum(
                all(r["any_ich"] == 0 for r in m["rows"]) for m in markers),
            "studies_with_haemorrhage": sum(r["any_ich"] for r in rows),
            **{f"studies_{subtype}": sum(r[subtype] for r in rows) for subtype in SUBTYPES},
            "studies_midline_shift": sum(r["midline_shift"] for r in rows),
        },
        "centers": [{
            "code": c.code, "institution": c.institution, "manufacturer": c.manufacturer,
            "model": c.model, "kernel": c.kernel, "kvp": c.kvp, "noise_hu": c.noise_hu,
            "grid_shape": list(shape), "slice_thickness_mm": slice_mm,
            "pixel_spacing_mm": round(c.pixel_spacing_mm * factor, 4),
            "patients": sum(m["center"] == c.code for m in markers),
        } for c in centers],
        "label_values": {"0": "background", "1": "haematoma", "2": "oedema"},
        "outcome_model": {**OutcomeModel().as_dict(),
                          "imaging_effect": parameters.imaging_effect,
                          "formula": "see voxelwise.data.phantoms.clinical"},
        "patients": [{"patient_id": m["clinical"]["patient_id"], "center": m["center"],
                      "linear_predictor": m["linear_predictor"], "lesions": m["lesions"]}
                     for m in markers],
        "studies": [truth for marker in markers for truth in marker["truth"]],
        "phi": sorted({value for values in phi.values() for value in values}),
        "phi_by_keyword": {keyword: sorted(values) for keyword, values in sorted(phi.items())},
    }


# ----------------------------------------------------------------------------- reading back


def _typed(row: dict[str, str]) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for column, value in row.items():
        if column in _INT_COLUMNS:
            typed[column] = int(value)
        elif column in _FLOAT_COLUMNS:
            typed[column] = float(value)
        else:
            typed[column] = value
    return typed


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [_typed(row) for row in csv.DictReader(handle)]


def studies(out_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``out_dir/labels.csv`` with numbers as numbers (paths stay relative)."""
    path = Path(out_dir) / "labels.csv"
    if not path.is_file():
        raise InputError(path, "not found; is this a head-CT phantom folder?")
    return _read_csv(path)


def load_phantom(out_dir: str | Path) -> PhantomStudy:
    """A `PhantomStudy` for a phantom folder written earlier."""
    root = Path(out_dir)
    manifest = root / "phantom.json"
    if not manifest.is_file():
        raise InputError(manifest, "not found; is this a head-CT phantom folder?")
    clinical = [row for path in sorted((root / "clinical").glob("*.csv"))
                for row in _read_csv(path)]
    return PhantomStudy(root=root, studies=studies(root), clinical=clinical,
                        manifest_path=manifest)
