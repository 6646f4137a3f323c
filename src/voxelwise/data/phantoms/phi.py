"""Fake identities for the head-CT phantom: centres, patients, studies and the DICOM tags they fill.

Everything here is invented and deterministic for a seed: institutions, addresses, patient names,
IDs, birth dates, accession numbers, physicians and UIDs. They play the part of the protected
health information (PHI) that a real multi-centre export carries, so that the de-identification
step has something real to remove; `phi_values` lists them so that tests can search for leftovers.

Nothing here reads the clock: dates are drawn from the seed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from pydicom.uid import generate_uid

# ----------------------------------------------------------------------------- centres


@dataclass(frozen=True)
class Center:
    """One hospital of the multi-centre study and the CT scanner it uses."""

    code: str                 # short site code, used in folder and file names
    institution: str
    address: str
    department: str
    station_name: str
    manufacturer: str
    model: str
    software: str
    device_serial: str
    kernel: str
    kvp: float
    tube_current_ma: int
    pixel_spacing_mm: float   # in-plane spacing of the full-size (512 x 512) images
    noise_hu: float           # standard deviation of the image noise in soft tissue
    patient_id_format: str    # str.format pattern with {n} (a number) and {check} (a letter)
    patient_id_digits: int
    accession_format: str     # str.format pattern with {yy} (two-digit year) and {n}
    physicians: tuple[str, ...]
    operators: tuple[str, ...]


_SITES = (
    ("AVGH", "Alder Vale General Hospital", "14 Infirmary Road, Alder Vale, AV3 9QT",
     "SIEMENS", "SOMATOM Definition AS+", "syngo CT VA48A", "Hr38", 120.0,
     "AV{n}", 7, "A{yy}{n:06d}"),
    ("RNMC", "Riverside Northern Medical Centre", "200 Quay Street, Riverside, RN1 4LP",
     "GE MEDICAL SYSTEMS", "Revolution EVO", "gmp_vct.52", "STANDARD", 120.0,
     "RN-{n}", 6, "RN{n:08d}"),
    ("SCUH", "St Columba University Hospital", "3 Cathedral Walk, Kilbarron, KB7 2DX",
     "Philips", "Ingenuity CT", "4.1.6", "UB", 120.0,
     "{n}", 10, "{n:09d}"),
    ("MHRI", "Meadowhill Royal Infirmary", "Meadowhill Lane, Eastbury, EB12 6HR",
     "CANON_MEC", "Aquilion Prime SP", "V10.6", "FC26", 120.0,
     "M{n}{check}", 6, "MH-{yy}-{n:05d}"),
    ("LBTC", "Lakeside Brain Trauma Centre", "1 Shore Road, Lakeside, LS4 0AA",
     "SIEMENS", "SOMATOM Force", "syngo CT VB20A", "Hr40", 100.0,
     "LB{n}", 8, "LB{yy}{n:07d}"),
    ("WPCH", "Westport County Hospital", "Harbour Hill, Westport, WP2 8NE",
     "GE MEDICAL SYSTEMS", "Optima CT660", "gmp_vct.46", "SOFT", 120.0,
     "W{n}", 6, "WP{n:07d}"),
)
_PIXEL_SPACINGS = (0.43, 0.45, 0.49, 0.47, 0.41, 0.44)
_NOISE_HU = (5.5, 6.5, 7.5, 6.0, 5.0, 7.0)

_FAMILY_NAMES = (
    "Abbott", "Achterberg", "Adeyemi", "Albrecht", "Alvarez", "Andersen", "Baptiste", "Barros",
    "Bellamy", "Blackwood", "Brennan", "Calloway", "Carvalho", "Chowdhury", "Costa", "Dimitrov",
    "Donnelly", "Eriksen", "Fairclough", "Farouk", "Fitzgerald", "Galloway", "Gathii", "Haddad",
    "Hargreaves", "Hollis", "Ibarra", "Ingram", "Jankowski", "Kaczmarek", "Kavanagh", "Kowalczyk",
    "Lindqvist", "Lombardi", "Mackintosh", "Marchetti", "Mbeki", "Nakamura", "Novak", "Nwosu",
    "Okonkwo", "Oyelaran", "Pemberton", "Petrov", "Quigley", "Rahman", "Ramsay", "Rasmussen",
    "Sandoval", "Schofield", "Sorensen", "Tanaka", "Thornbury", "Underhill", "Valente", "Varga",
    "Whitcombe", "Yildirim", "Zielinski", "Zubiri",
)
_GIVEN_NAMES = {
    "F": ("Agnieszka", "Aisling", "Beatrice", "Chiamaka", "Dorothea", "Elif", "Fenella", "Greta",
          "Harriet", "Ingrid", "Josephine", "Keiko", "Lucinda", "Marisol", "Niamh", "Oluwaseun",
          "Philippa", "Rosalind", "Saoirse", "Theodora", "Ursula", "Wilhelmina", "Yasmin"),
    "M": ("Alistair", "Bartholomew", "Cormac", "Desmond", "Emeka", "Florian", "Gideon",
          "Horatio", "Ignatius", "Jasper", "Kwabena", "Leopold", "Mortimer", "Nikolai", "Oisin",
          "Percival", "Rafferty", "Sebastian", "Thaddeus", "Umberto", "Vaclav", "Wendell"),
}
_STREETS = ("Acacia Avenue", "Bramble Close", "Chapel Row", "Dovecote Lane", "Elm Terrace",
            "Foundry Street", "Gorse Hill", "Hawthorn Drive", "Juniper Walk", "Kestrel Way",
            "Larch Crescent", "Mill Lane", "Orchard Rise", "Paddock View", "Quarry Road")


def make_centers(count: int) -> list[Center]:
    """The first ``count`` fake centres; beyond the six named ones, numbered ones are invented."""
    centers = []
    for index in range(count):
        if index < len(_SITES):
            code, name, address, maker, model, software, kernel, kvp, pid, digits, acc = \
                _SITES[index]
        else:
            code, name = f"S{index + 1:02d}", f"Synthetic Site {index + 1} Hospital"
            address = f"{index + 1} Hospital Road, Site {index + 1}, ST{index + 1} 1AA"
            maker, model, software, kernel, kvp = "SIEMENS", "SOMATOM go.Top", "VA30", "Hr36", 120.0
            pid, digits, acc = f"S{index + 1:02d}-{{n}}", 6, f"S{index + 1:02d}{{n:07d}}"
        centers.append(Center(
            code=code, institution=name, address=address, department="Radiology",
            station_name=f"CT{index % 3 + 1:02d}{code}", manufacturer=maker, model=model,
            software=software, device_serial=f"{code}{50311 + 977 * index}", kernel=kernel,
            kvp=kvp,
            tube_current_ma=280 + 15 * (index % 4),
            pixel_spacing_mm=_PIXEL_SPACINGS[index % len(_PIXEL_SPACINGS)],
            noise_hu=_NOISE_HU[index % len(_NOISE_HU)],
            patient_id_format=pid, patient_id_digits=digits, accession_format=acc,
            physicians=tuple(f"{_FAMILY_NAMES[(7 * index + 3 * k) % len(_FAMILY_NAMES)]}^"
                             f"{_GIVEN_NAMES['F' if k % 2 else 'M'][(5 * index + k) % 20]}^^Dr"
                             for k in range(3)),
            operators=(f"{_FAMILY_NAMES[(11 * index + 29) % len(_FAMILY_NAMES)]}^Radiographer",),
        ))
    return centers


# ----------------------------------------------------------------------------- people and studies


@dataclass(frozen=True)
class StudyIdentity:
    """The identifiers and dates of one CT study (one time point of one patient)."""

    timepoint: int
    day: int                  # days since admission
    date: str                 # YYYYMMDD
    time: str                 # HHMMSS
    accession_number: str
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    referring_physician: str


@dataclass(frozen=True)
class PatientIdentity:
    """A fake patient: who they are, where they were scanned and when."""

    index: int                # position in the whole study, 0-based
    center: Center
    patient_id: str
    name: str                 # DICOM person name, FAMILY^GIVEN^MIDDLE
    sex: str                  # "M" or "F"
    age: int                  # years at admission
    birth_date: str           # YYYYMMDD
    address: str
    telephone: str
    studies: tuple[StudyIdentity, ...]


def _check_letter(number: int) -> str:
    return "ABCDEFGHJKLMNPRSTUVWXYZ"[number % 23]


def _patient_id(center: Center, rng: np.random.Generator) -> str:
    digits = center.patient_id_digits
    number = int(rng.integers(10 ** (digits - 1), 10 ** digits))
    return center.patient_id_format.format(n=f"{number:0{digits}d}", check=_check_letter(number))


def _uid(fingerprint: str, *parts: object) -> str:
    """A DICOM UID derived from the phantom's parameters and ``parts`` (no randomness, no clock)."""
    return generate_uid(entropy_srcs=[fingerprint, *(str(part) for part in parts)])


def _study_days(rng: np.random.Generator, followups: int) -> list[int]:
    """Day 0, then day 1-3, then day 6-10, then every 5-10 days."""
    days = [0]
    for k in range(1, followups + 1):
        if k == 1:
            days.append(int(rng.integers(1, 4)))
        elif k == 2:
            days.append(int(rng.integers(6, 11)))
        else:
            days.append(days[-1] + int(rng.integers(5, 11)))
    return days


def _sample_age(rng: np.random.Generator) -> int:
    """Age at admission: a trauma / haemorrhage cohort, 18-92 years, mean about 52."""
    return int(np.clip(round(rng.normal(52.0, 18.0)), 18, 92))


def make_patient(index: int, center: Center, followups: int, fingerprint: str,
                 rng: np.random.Generator, taken_ids: set[str]) -> PatientIdentity:
    """Draw one fake patient and the identifiers of their admission and follow-up studies."""
    sex = "M" if rng.random() < 0.64 else "F"
    age = _sample_age(rng)
    family = _FAMILY_NAMES[int(rng.integers(len(_FAMILY_NAMES)))]
    given = _GIVEN_NAMES[sex][int(rng.integers(len(_GIVEN_NAMES[sex])))]
    middle = "ABCDEFGHJKLMNPRSTW"[int(rng.integers(18))]
    patient_id = _patient_id(center, rng)
    while patient_id in taken_ids:
        patient_id = _patient_id(center, rng)
    taken_ids.add(patient_id)

    admission = dt.date(2019, 1, 1) + dt.timedelta(days=int(rng.integers(0, 6 * 365)))
    birth = admission - dt.timedelta(days=int(365.25 * age + rng.integers(0, 365)))
    _, town, postcode = center.address.split(", ")
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    address = (f"{int(rng.integers(1, 180))} {_STREETS[int(rng.integers(len(_STREETS)))]}, "
               f"{town}, {postcode.split()[0]} {int(rng.integers(1, 10))}"
               f"{letters[int(rng.integers(20))]}{letters[int(rng.integers(20))]}")
    telephone = f"07{int(rng.integers(100, 999))} {int(rng.integers(100000, 999999))}"

    studies = []
    accession_base = int(rng.integers(10_000, 90_000))
    for timepoint, day in enumerate(_study_days(rng, followups)):
        date = admission + dt.timedelta(days=day)
        seconds = int(rng.integers(0, 24 * 3600)) if timepoint == 0 else \
            int(rng.integers(8 * 3600, 18 * 3600))
        number = accession_base * 10 + timepoint
        accession = center.accession_format.format(yy=f"{date.year % 100:02d}", n=number)
        key = (patient_id, timepoint)
        studies.append(StudyIdentity(
            timepoint=timepoint, day=day, date=date.strftime("%Y%m%d"),
            time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
            accession_number=accession,
            study_instance_uid=_uid(fingerprint, "study", *key),
            series_instance_uid=_uid(fingerprint, "series", *key),
            frame_of_reference_uid=_uid(fingerprint, "frame", *key),
            referring_physician=center.physicians[int(rng.integers(len(center.physicians)))],
        ))
    return PatientIdentity(
        index=index, center=center, patient_id=patient_id, name=f"{family}^{given}^{middle}",
        sex=sex, age=age, birth_date=birth.strftime("%Y%m%d"), address=address,
        telephone=telephone, studies=tuple(studies))


# ----------------------------------------------------------------------------- DICOM tags


def _later(time: str, minutes: int) -> str:
    seconds = (int(time[:2]) * 3600 + int(time[2:4]) * 60 + int(time[4:]) + 60 * minutes) % 86400
    return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"


def dicom_attributes(patient: PatientIdentity, study: StudyIdentity) -> dict[str, object]:
    """DICOM keyword -> value for one study: the identity, the site and the acquisition."""
    center = patient.center
    series_time = _later(study.time, 2)
    return {
        "PatientName": patient.name,
        "PatientID": patient.patient_id,
        "IssuerOfPatientID": center.code,
        "PatientBirthDate": patient.birth_date,
        "PatientSex": patient.sex,
        "PatientAge": f"{patient.age:03d}Y",
        "PatientAddress": patient.address,
        "PatientTelephoneNumbers": patient.telephone,
        "StudyInstanceUID": study.study_instance_uid,
        "SeriesInstanceUID": study.series_instance_uid,
        "FrameOfReferenceUID": study.frame_of_reference_uid,
        "StudyDate": study.date,
        "StudyTime": study.time,
        "SeriesDate": study.date,
        "SeriesTime": series_time,
        "AcquisitionDate": study.date,
        "AcquisitionTime": series_time,
        "ContentDate": study.date,
        "ContentTime": _later(study.time, 3),
        "AccessionNumber": study.accession_number,
        "StudyID": f"S{study.accession_number[-6:]}",
        "StudyDescription": "CT HEAD WITHOUT CONTRAST",
        "SeriesDescription": "Axial Brain 5mm",
        "ProtocolName": "Routine Head" if study.timepoint else "Trauma Head",
        "BodyPartExamined": "HEAD",
        "PatientPosition": "HFS",
        "ReferringPhysicianName": study.referring_physician,
        "OperatorsName": center.operators[0],
        "InstitutionName": center.institution,
        "InstitutionAddress": center.address,
        "InstitutionalDepartmentName": center.department,
        "StationName": center.station_name,
        "Manufacturer": center.manufacturer,
        "ManufacturerModelName": center.model,
        "DeviceSerialNumber": center.device_serial,
        "SoftwareVersions": center.software,
        "ConvolutionKernel": center.kernel,
        "KVP": center.kvp,
        "XRayTubeCurrent": center.tube_current_ma,
    }


PHI_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientAddress", "PatientTelephoneNumbers",
    "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "StudyDate", "SeriesDate",
    "AcquisitionDate", "ContentDate", "AccessionNumber", "StudyID", "ReferringPhysicianName",
    "OperatorsName", "InstitutionName", "InstitutionAddress", "StationName", "DeviceSerialNumber",
)
"""The keywords of `dicom_attributes` whose values identify a person, a place or a date."""


def phi_values(attributes: dict[str, object]) -> dict[str, str]:
    """The PHI keyword -> value pairs of one study's attributes (values as strings)."""
    return {keyword: str(attributes[keyword]) for keyword in PHI_KEYWORDS if keyword in attributes}
