"""De-identify one DICOM instance: PS3.15 Basic Profile with the longitudinal options.

`deidentify_dataset` returns a new dataset and a record of what was done; `deidentify_file`
reads, de-identifies, checks and writes atomically. The attribute rules live in
`voxelwise.deid.profile` and `voxelwise.deid.profile_table`; this module adds what concerns the
instance as a whole: the pseudonym and date offset of its patient, the File Meta Information,
the attributes that declare the de-identification, the patient's age, the quarantine decision
(burned-in text) and the pixel-data checksum.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace
from pathlib import Path

from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from voxelwise import __version__
from voxelwise.deid import dates
from voxelwise.deid.profile import ActionRecord, ProfileRun
from voxelwise.deid.pseudonym import Pseudonymizer
from voxelwise.deid.verify import verify_no_phi
from voxelwise.errors import InputError, VoxelwiseError
from voxelwise.fileio import atomic_path

SECONDARY_CAPTURE_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
    "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
})
ULTRASOUND_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
    "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
    "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image (retired)
    "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image (retired)
})
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
IMPLEMENTATION_VERSION_NAME = "VOXELWISE"
_AGE_REFERENCE_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
# Identifiers whose survival in the written header is checked before a file is written.
_CHECKED_IDENTIFIERS = ("PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames",
                        "PatientBirthName", "PatientMotherBirthName", "AccessionNumber",
                        "MedicalRecordLocator")


class DeidentificationError(VoxelwiseError):
    """De-identification could not guarantee its result (identifier left, pixels changed)."""


@dataclass(frozen=True)
class DeidOptions:
    """Which PS3.15 options apply, and how patients are namespaced.

    ``patient_id_issuer`` namespaces Patient IDs for the pseudonym and the date offset: leave it
    empty when every center uses the same patient identifier (a national ID), set it per center
    when IDs are local (then the same number at two centers is two patients). The dataset's own
    Issuer of Patient ID is not used, because sites fill it inconsistently.
    ``safe_private`` lists (group, private creator, element in block) to keep, e.g.
    `voxelwise.deid.profile_table.SAFE_PRIVATE_CT`; empty keeps no private attribute.
    ``check_identifiers``: `deidentify_file` refuses to write a file whose header still holds
    the patient's name, IDs or accession number in any common spelling (values shorter than 4
    characters, and all-digit values shorter than 6, are not checked: they match by chance).
    """

    retain_longitudinal_modified_dates: bool = True
    retain_patient_characteristics: bool = True
    safe_private: frozenset[tuple[int, str, int]] = frozenset()
    patient_id_issuer: str = ""
    check_identifiers: bool = True

    def method_codes(self) -> list[tuple[str, str]]:
        """(code value, code meaning) of CID 7050 for the profile and options in use."""
        chosen = [codes.DCM.BasicApplicationConfidentialityProfile]
        if self.retain_longitudinal_modified_dates:
            chosen.append(codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption)
        if self.retain_patient_characteristics:
            chosen.append(codes.DCM.RetainPatientCharacteristicsOption)
        if self.safe_private:
            chosen.append(codes.DCM.RetainSafePrivateOption)
        return [(code.value, code.meaning) for code in chosen]


@dataclass(frozen=True)
class DeidResult:
    """A de-identified dataset and the record of how it was made.

    ``actions`` counts decisions per action code (``X`` removed, ``Z`` emptied, ``D`` dummy,
    ``K`` kept, ``C`` cleaned/shifted, ``U`` and ``U*`` UIDs remapped, ``pseudonym``, ``added``);
    ``log`` lists every decision other than K, by tag path, without values.
    """

    dataset: Dataset
    patient_pseudonym: str
    date_offset_days: int | None
    actions: dict[str, int]
    log: tuple[ActionRecord, ...]
    quarantine_reasons: tuple[str, ...]
    pixel_sha256_before: str | None
    pixel_sha256_after: str | None

    @property
    def quarantined(self) -> bool:
        """True when a person must review the pixels for burned-in identifying text."""
        return bool(self.quarantine_reasons)

    @property
    def pixels_unchanged(self) -> bool:
        return self.pixel_sha256_before == self.pixel_sha256_after

    def summary(self) -> dict[str, object]:
        """A JSON-ready account (no dataset, no original values) for a run manifest."""
        return {
            "patient_pseudonym": self.patient_pseudonym,
            "date_offset_days": self.date_offset_days,
            "actions": dict(sorted(self.actions.items())),
            "quarantined": self.quarantined,
            "quarantine_reasons": list(self.quarantine_reasons),
            "pixel_sha256_before": self.pixel_sha256_before,
            "pixel_sha256_after": self.pixel_sha256_after,
        }


def pixel_data_sha256(ds: Dataset) -> str | None:
    """SHA-256 (hex) of the raw bytes of Pixel Data (or Float / Double Float Pixel Data).

    The bytes as stored, encapsulated fragments included; ``None`` when there is no pixel data.
    """
    for keyword in PIXEL_KEYWORDS:
        if keyword in ds:
            return hashlib.sha256(ds[keyword].value or b"").hexdigest()
    return None


def quarantine_reasons(ds: Dataset) -> tuple[str, ...]:
    """Why the pixels of ``ds`` may show identifying text (empty: no known reason).

    Burned In Annotation YES; any Secondary Capture class; ultrasound (by modality or class);
    and, for those classes, a missing Burned In Annotation.
    """
    reasons = []
    burned_in = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned_in == "YES":
        reasons.append("Burned In Annotation is YES: the pixels show text")
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    kind = None
    if sop_class in SECONDARY_CAPTURE_CLASSES:
        kind = f"Secondary Capture ({UID(sop_class).name})"
    elif sop_class in ULTRASOUND_CLASSES or str(ds.get("Modality", "")).strip() == "US":
        kind = "Ultrasound"
    if kind is not None:
        reasons.append(f"{kind}: such images often carry burned-in patient text")
        if not burned_in:
            reasons.append(f"{kind} without Burned In Annotation: cannot tell if text is burned in")
    return tuple(reasons)


def deidentify_dataset(ds: Dataset, pseudonymizer: Pseudonymizer, *,
                       options: DeidOptions = DeidOptions()) -> DeidResult:
    """A de-identified copy of ``ds`` (``ds`` itself is not changed) and what was done.

    Raises `InputError` (without a path) when the dataset has no Patient ID to key on.
    """
    patient_id = str(ds.get("PatientID", "") or "").strip()
    if not patient_id:
        raise InputError(None, "Patient ID is missing or empty: cannot assign a pseudonym")
    issuer = options.patient_id_issuer
    run = ProfileRun(
        pseudonymizer=pseudonymizer,
        patient_pseudonym=pseudonymizer.patient_pseudonym(patient_id, issuer),
        offset_days=pseudonymizer.date_offset_days(patient_id, issuer),
        issuer=issuer,
        modified_dates=options.retain_longitudinal_modified_dates,
        patient_characteristics=options.retain_patient_characteristics,
        safe_private=frozenset(options.safe_private),
    )
    out = run.dataset(ds)
    if options.retain_patient_characteristics:
        _add_age(out, ds, run)
    _declare(out, options)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        out.file_meta = _file_meta(meta, out, run)
    return DeidResult(
        dataset=out,
        patient_pseudonym=run.patient_pseudonym,
        date_offset_days=run.offset_days if options.retain_longitudinal_modified_dates else None,
        actions=dict(run.counts),
        log=tuple(run.log),
        quarantine_reasons=quarantine_reasons(ds),
        pixel_sha256_before=pixel_data_sha256(ds),
        pixel_sha256_after=pixel_data_sha256(out),
    )


def deidentify_file(src: str | Path, dst: str | Path, pseudonymizer: Pseudonymizer,
                    options: DeidOptions = DeidOptions()) -> DeidResult:
    """De-identify the DICOM file ``src`` into ``dst``, written atomically.

    Nothing is written when ``src`` is not readable DICOM (`InputError` naming it), when an
    identifier of the patient survives in the header, or when the written pixel data differ from
    the source's (`DeidentificationError`). ``pixel_sha256_after`` is read back from ``dst``.
    """
    src, dst = Path(src), Path(dst)
    ds = _read(src)
    missing = [keyword for keyword in ("SOPClassUID", "SOPInstanceUID") if not ds.get(keyword)]
    if missing:
        raise InputError(src, f"not a composite instance: {' and '.join(missing)} missing")
    try:
        result = deidentify_dataset(ds, pseudonymizer, options=options)
    except InputError as error:
        if error.path is None:
            raise InputError(src, error.problem) from error
        raise
    if "TransferSyntaxUID" not in result.dataset.file_meta:
        raise InputError(src, "the File Meta Information has no Transfer Syntax UID")
    if options.check_identifiers:
        _check_identifiers(src, ds, result.dataset)
    with atomic_path(dst) as temporary:
        result.dataset.save_as(temporary, enforce_file_format=True)
        written = pixel_data_sha256(dcmread(temporary))
        if written != result.pixel_sha256_before:
            raise DeidentificationError(f"{src}: the pixel data written to {dst} differ from the "
                                        "source's; nothing was written")
    return replace(result, pixel_sha256_after=written)


def _read(src: Path) -> Dataset:
    if not src.exists():
        raise InputError(src, "file does not exist")
    if src.is_dir():
        raise InputError(src, "is a folder, not a DICOM file")
    try:
        ds = dcmread(src)
        for _ in ds.iterall():  # parse every element now, so damage shows here
            pass
    except InvalidDicomError as error:
        raise InputError(src, f"not a DICOM file: {error}") from error
    except Exception as error:  # pydicom raises many kinds on damaged files
        raise InputError(src, f"unreadable DICOM file ({type(error).__name__}: {error})") from error
    return ds


def _add_age(out: Dataset, source: Dataset, run: ProfileRun) -> None:
    """Derive Patient's Age from the birth date (about to be emptied) when the age is missing.

    PS3.15 E.1.1 gives this very example: Patient's Age introduced in place of Patient's Birth
    Date when age matters and the profile permits it.
    """
    if str(source.get("PatientAge", "") or "").strip():
        return
    birth = str(source.get("PatientBirthDate", "") or "")
    for keyword in _AGE_REFERENCE_DATES:
        age = dates.age_string(birth, str(source.get(keyword, "") or ""))
        if age is not None:
            out.PatientAge = age
            run.counts["added"] += 1
            run.log.append(ActionRecord("(0010,1010)", "PatientAge", "added"))
            return


def _declare(out: Dataset, options: DeidOptions) -> None:
    """Patient Identity Removed, De-identification Method (+ codes), Longitudinal Temporal..."""
    chosen = options.method_codes()
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = [f"voxelwise {__version__} PS3.15 Annex E"[:64]] + [
        meaning for _, meaning in chosen]
    items = []
    for value, meaning in chosen:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    out.DeidentificationMethodCodeSequence = items
    modified = options.retain_longitudinal_modified_dates
    out.LongitudinalTemporalInformationModified = "MODIFIED" if modified else "REMOVED"


def _file_meta(source: FileMetaDataset, out: Dataset, run: ProfileRun) -> FileMetaDataset:
    """New File Meta Information describing voxelwise (PS3.15 E.1.1 item 7).

    Only the class, the remapped instance UID and the transfer syntax carry over; anything else
    in the source's meta (source AE titles, private information) is dropped.
    """
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    sop_class = out.get("SOPClassUID") or source.get("MediaStorageSOPClassUID")
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    if "SOPInstanceUID" in out:
        meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    elif source.get("MediaStorageSOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = run.pseudonymizer.uid(source.MediaStorageSOPInstanceUID)
    if "TransferSyntaxUID" in source:
        meta.TransferSyntaxUID = source.TransferSyntaxUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    kept = {"FileMetaInformationVersion", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID",
            "TransferSyntaxUID", "ImplementationClassUID", "ImplementationVersionName"}
    for elem in source:
        if elem.keyword == "MediaStorageSOPInstanceUID":
            run.log.append(ActionRecord("meta(0002,0003)", elem.keyword, "U"))
            run.counts["U"] += 1
        elif elem.keyword not in kept and elem.tag.element != 0:
            run.log.append(ActionRecord(f"meta({elem.tag.group:04X},{elem.tag.element:04X})",
                                        elem.keyword, "X"))
            run.counts["X"] += 1
    return meta


def _check_identifiers(src: Path, source: Dataset, out: Dataset) -> None:
    """Refuse when the patient's name, IDs or accession number survive in the new header."""
    found_in: dict[str, str] = {}
    for keyword in _CHECKED_IDENTIFIERS:
        value = source.get(keyword)
        values = [] if value is None else [value] if isinstance(value, str | bytes) else value
        for item in values:
            text = str(item).strip()
            if len(text) >= 4 and not (text.isdigit() and len(text) < 6):
                found_in.setdefault(text, keyword)
    if not found_in:
        return
    header = Dataset()  # not Dataset(out): that shares out's elements
    for elem in out:
        if elem.keyword not in PIXEL_KEYWORDS:
            header.add(elem)
    buffer = io.BytesIO()
    dcmwrite(buffer, header, implicit_vr=False, little_endian=True)
    leaked = verify_no_phi(buffer.getvalue(), list(found_in))
    if leaked:
        names = ", ".join(sorted({found_in[text] for text in leaked}))
        raise DeidentificationError(f"{src}: the value of {names} is still present after "
                                    "de-identification; nothing was written")
