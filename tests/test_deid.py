"""voxelwise.deid: PS3.15 Basic Profile with modified dates and patient characteristics."""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from pydicom import config, dcmread
from pydicom.datadict import dictionary_has_tag, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from voxelwise.deid import (
    SAFE_PRIVATE_CT,
    DeidentificationError,
    DeidOptions,
    Pseudonymizer,
    dates,
    deidentify_dataset,
    deidentify_file,
    identifier_spellings,
    load_or_create_key,
    pixel_data_sha256,
    resolve_action,
    verify_no_phi,
)
from voxelwise.deid.profile import ACTIONS, COMBINED_ACTIONS
from voxelwise.deid.profile_table import BY_TAG, ROWS
from voxelwise.errors import InputError

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
UID_ROOT = "1.2.826.0.1.3680043.10.543."
UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")

# Fake PHI, each string distinctive enough that finding it anywhere in a file is a leak.
PHI = {
    "PatientName": "Smithsonian^Johanna^Q",
    "PatientID": "PID-778899",
    "PatientBirthDate": "19640212",
    "OtherPatientIDs": "OTHER-55123",
    "IssuerOfPatientID": "SAINT-ELSEWHERE-MRN",
    "InstitutionName": "Saint Elsewhere Hospital",
    "InstitutionAddress": "12 Harbour Road Springfield",
    "InstitutionalDepartmentName": "Neuroradiology Wing Q",
    "ReferringPhysicianName": "Kildare^Gillespie",
    "OperatorsName": "Radtech^Rhonda",
    "PerformingPhysicianName": "Houseman^Gregory",
    "NameOfPhysiciansReadingStudy": "Quincy^Marguerite",
    "AccessionNumber": "ACC99887766",
    "StationName": "CTSCANNER-ER2",
    "StudyID": "STUDY4242",
    "DeviceSerialNumber": "SN-CT-000451",
    "ImageComments": "Johanna fell off a ladder, call wife on 555-0199",
    "StudyComments": "VIP patient, room 12B, see chart",
    "StudyDescription": "CT HEAD for Johanna Smithsonian",
    "RequestedProcedureID": "REQPROC-31337",
    "ScheduledProcedureStepID": "SPS-27182",
    "NestedName": "Nested^Namesake",
    "EvaluatorName": "Evaluator^Eleanor",
    "PrivateName": "Smithsonian Johanna private copy",
    "PrivateID": "PRIVATE-MRN-60606",
    "OverlayComment": "overlay drawn by Dr Kildare",
}


def _uid(n: int) -> str:
    return f"{UID_ROOT}{n}"


def make_ct(*, patient_id: str = PHI["PatientID"], name: str = PHI["PatientName"],
            institution: str = PHI["InstitutionName"], study_date: str = "20210314",
            study: int = 1, instance: int = 1, sop_class: str = CTImageStorage,
            modality: str = "CT", burned_in: str | None = "NO") -> Dataset:
    """A small CT instance (8x8 pixels) with fake PHI in many places."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = _uid(1000 * study + instance)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "ER_CT_SAINTE"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _uid(1000 * study + instance)
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.ContentDate = study_date
    ds.AcquisitionDateTime = f"{study_date}093015.123456"
    ds.StudyTime = "093000"
    ds.InstanceCreationDate = study_date  # not in Table E.1-1: shifted by the DA rule
    ds.AccessionNumber = PHI["AccessionNumber"]
    ds.Modality = modality
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.InstitutionName = institution
    ds.InstitutionAddress = PHI["InstitutionAddress"]
    ds.InstitutionalDepartmentName = PHI["InstitutionalDepartmentName"]
    ds.ReferringPhysicianName = PHI["ReferringPhysicianName"]
    ds.StationName = PHI["StationName"]
    ds.StudyDescription = PHI["StudyDescription"]
    ds.NameOfPhysiciansReadingStudy = PHI["NameOfPhysiciansReadingStudy"]
    ds.PerformingPhysicianName = PHI["PerformingPhysicianName"]
    ds.OperatorsName = PHI["OperatorsName"]
    ds.ManufacturerModelName = "Revolution CT"
    ds.ReferencedImageSequence = [_reference(_uid(9000 + study))]
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.IssuerOfPatientID = PHI["IssuerOfPatientID"]
    ds.PatientBirthDate = PHI["PatientBirthDate"]
    ds.PatientSex = "F"
    ds.OtherPatientIDs = PHI["OtherPatientIDs"]
    ds.PatientAge = "057Y"
    ds.PatientSize = "1.65"
    ds.PatientWeight = "61.5"
    ds.SliceThickness = "5.0"
    ds.KVP = "120"
    ds.DeviceSerialNumber = PHI["DeviceSerialNumber"]
    ds.ConvolutionKernel = "STANDARD"
    ds.StudyInstanceUID = _uid(100 + study)
    ds.SeriesInstanceUID = _uid(200 + study)
    ds.StudyID = PHI["StudyID"]
    ds.SeriesNumber = "3"
    ds.InstanceNumber = str(instance)
    ds.ImagePositionPatient = ["-120.0", "-110.5", str(5.0 * instance)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = _uid(300 + study)
    ds.ImageComments = PHI["ImageComments"]
    ds.StudyComments = PHI["StudyComments"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 8
    ds.Columns = 8
    ds.PixelSpacing = ["0.488", "0.488"]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    request = Dataset()
    request.RequestedProcedureID = PHI["RequestedProcedureID"]
    request.ScheduledProcedureStepID = PHI["ScheduledProcedureStepID"]
    nested = Dataset()
    nested.PersonName = PHI["NestedName"]
    request.ContentSequence = [nested]
    ds.RequestAttributesSequence = [request]
    # A kept sequence whose item holds PHI that only the VR rules catch.
    anatomy = Dataset()
    anatomy.CodeValue = "T-D1100"
    anatomy.CodingSchemeDesignator = "SRT"
    anatomy.CodeMeaning = "Head"
    anatomy.EvaluatorName = PHI["EvaluatorName"]  # PN not in Table E.1-1: removed by VR
    anatomy.ObservationDateTime = f"{study_date}101010"  # DT not in the table: shifted
    ds.AnatomicRegionSequence = [anatomy]
    ds.add_new(0x60004000, "LT", PHI["OverlayComment"])
    block = ds.private_block(0x0009, "ACME PHI STORE", create=True)
    block.add_new(0x01, "LO", PHI["PrivateName"])
    block.add_new(0x02, "LO", PHI["PrivateID"])
    ge = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    ge.add_new(0x23, "DS", "39.375")  # Table Speed: in SAFE_PRIVATE_CT
    ge.add_new(0x30, "LO", PHI["PrivateID"])  # not in the safe list
    pixels = (np.arange(64, dtype=np.int16).reshape(8, 8) * 37 - 500)
    ds.PixelData = pixels.tobytes()
    return ds


def _reference(sop_instance_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = CTImageStorage
    item.ReferencedSOPInstanceUID = sop_instance_uid
    return item


def _write(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _identifiers(ds: Dataset) -> list[str]:
    """Every identifier of ``ds`` that must not survive: PHI strings, original UIDs and dates."""
    uids = [ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID,
            ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID]
    return [*PHI.values(), *uids, ds.StudyDate, ds.AcquisitionDateTime[:8],
            str(ds.PatientName), ds.PatientID, str(ds.InstitutionName)]


@pytest.fixture
def pseudonymizer() -> Pseudonymizer:
    return Pseudonymizer(KEY)


# --- the table -------------------------------------------------------------------------------

def test_profile_table_is_the_standard_table_as_data():
    assert len(ROWS) >= 150
    assert len(BY_TAG) == len(ROWS), "one row per tag"
    codes = {"D", "Z", "X", "K", "C", "U", *COMBINED_ACTIONS}
    for row in ROWS:
        assert keyword_for_tag(row.tag) == row.keyword, hex(row.tag)
        assert row.basic in codes, row
        assert row.dates in (None, "C", "K"), row
        assert row.patient in (None, "C", "K"), row
    assert BY_TAG[0x00100010].basic == "Z"  # Patient's Name
    assert BY_TAG[0x00080080].basic == "X/Z/D"  # Institution Name
    assert BY_TAG[0x00100030].basic == "Z"  # Patient's Birth Date: no option keeps it


@pytest.mark.parametrize(("keyword", "dates_on", "patient_on", "expected"), [
    ("PatientAge", True, True, "K"),
    ("PatientAge", True, False, "X"),
    ("PatientSex", False, True, "K"),
    ("PatientSex", False, False, "Z"),
    ("PatientWeight", True, True, "K"),
    ("EthnicGroup", True, True, "K"),
    ("SmokingStatus", True, True, "K"),
    ("PregnancyStatus", True, True, "K"),
    ("Allergies", True, True, "C"),
    ("AdditionalPatientHistory", True, True, "X"),
    ("PatientBirthDate", True, True, "Z"),
    ("StudyDate", True, True, "C"),
    ("StudyDate", False, True, "Z"),
    ("SeriesDate", False, True, "X"),  # X/D
    ("ContentDate", False, True, "Z"),  # Z/D
    ("InstitutionName", True, True, "X"),  # X/Z/D
    ("StationName", True, True, "X"),
    ("ReferencedImageSequence", True, True, "U*"),  # X/Z/U*
    ("StudyInstanceUID", True, True, "U"),
])
def test_resolve_action(keyword, dates_on, patient_on, expected):
    row = next(row for row in ROWS if row.keyword == keyword)
    action = resolve_action(row, modified_dates=dates_on, patient_characteristics=patient_on)
    assert action == expected
    assert action in ACTIONS


# --- no identifier survives --------------------------------------------------------------------

def test_written_file_contains_no_identifier_in_any_byte(tmp_path, pseudonymizer):
    source = make_ct()
    src = _write(source, tmp_path / "in.dcm")
    identifiers = _identifiers(source)
    raw = src.read_bytes()
    assert set(verify_no_phi(raw, identifiers)) == set(identifiers), "test data must hold them all"

    result = deidentify_file(src, tmp_path / "out" / "de.dcm", pseudonymizer)

    written = (tmp_path / "out" / "de.dcm").read_bytes()
    assert verify_no_phi(written, identifiers) == []
    names = [PHI[key] for key in ("PatientName", "ReferringPhysicianName", "OperatorsName",
                                  "PerformingPhysicianName", "NestedName", "EvaluatorName")]
    assert verify_no_phi(written, names, name_parts=True) == [], "not even one name component"
    out = dcmread(tmp_path / "out" / "de.dcm")
    assert out.PatientID == out.PatientName == result.patient_pseudonym
    assert result.patient_pseudonym.startswith("VW-")
    for gone in ("InstitutionName", "InstitutionAddress", "OtherPatientIDs", "IssuerOfPatientID",
                 "OperatorsName", "PerformingPhysicianName", "StationName", "DeviceSerialNumber",
                 "ImageComments", "StudyComments", "RequestAttributesSequence",
                 "StudyDescription", "NameOfPhysiciansReadingStudy"):
        assert gone not in out, gone
    assert out.PatientBirthDate == "" and out.AccessionNumber == "" and out.StudyID == ""
    assert out.ReferringPhysicianName == ""
    assert "EvaluatorName" not in out.AnatomicRegionSequence[0]
    assert out.AnatomicRegionSequence[0].CodeMeaning == "Head"
    assert not any(elem.tag.is_private for elem in out.iterall())
    assert 0x60004000 not in out
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert out.preamble == b"\x00" * 128
    assert result.actions["X"] > 10 and result.actions["U"] >= 5
    assert all(record.action != "K" for record in result.log)
    assert not result.quarantined


def test_imaging_attributes_and_patient_characteristics_are_kept(pseudonymizer):
    source = make_ct()
    out = deidentify_dataset(source, pseudonymizer).dataset
    for keyword in ("Modality", "Manufacturer", "ManufacturerModelName", "PixelSpacing",
                    "SliceThickness", "ImagePositionPatient", "ImageOrientationPatient",
                    "RescaleIntercept", "RescaleSlope", "KVP", "ConvolutionKernel", "ImageType",
                    "Rows", "Columns", "BitsStored", "PixelRepresentation", "SeriesNumber",
                    "InstanceNumber", "BurnedInAnnotation", "SpecificCharacterSet", "StudyTime",
                    "PatientAge", "PatientSex", "PatientSize", "PatientWeight"):
        assert out[keyword].value == source[keyword].value, keyword
    assert out.PatientAge == "057Y" and out.PatientSex == "F"
    assert float(out.PatientSize) == 1.65 and float(out.PatientWeight) == 61.5


def test_input_dataset_is_not_changed(pseudonymizer):
    source = make_ct()
    before = copy.deepcopy(source)
    deidentify_dataset(source, pseudonymizer)
    assert source == before
    assert source.file_meta == before.file_meta


def test_identifier_check_refuses_to_write_a_leak(tmp_path, pseudonymizer):
    source = make_ct()
    source.ProtocolName = "CT"  # harmless
    source.SeriesDescription = "x"
    # ConvolutionKernel is kept (K): a site that types the MRN into it must be caught.
    source.ConvolutionKernel = PHI["PatientID"]
    src = _write(source, tmp_path / "in.dcm")
    with pytest.raises(DeidentificationError, match="PatientID"):
        deidentify_file(src, tmp_path / "out.dcm", pseudonymizer)
    assert not (tmp_path / "out.dcm").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.dcm"]


# --- pseudonyms and UIDs --------------------------------------------------------------------

def test_same_patient_at_two_centers_gets_the_same_pseudonym_and_uids(pseudonymizer):
    center_a = make_ct(name="Smithsonian^Johanna", institution="Saint Elsewhere Hospital")
    center_b = make_ct(name="SMITHSONIAN^JOHANNA^^^", institution="County General")
    a = deidentify_dataset(center_a, pseudonymizer).dataset
    b = deidentify_dataset(center_b, Pseudonymizer(KEY)).dataset  # another run, same key
    assert a.PatientID == b.PatientID == a.PatientName
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                    "FrameOfReferenceUID"):
        assert a[keyword].value == b[keyword].value
    other = deidentify_dataset(center_a, Pseudonymizer(OTHER_KEY)).dataset
    assert other.PatientID != a.PatientID
    assert other.SOPInstanceUID != a.SOPInstanceUID
    assert other.StudyDate != a.StudyDate or other.ContentDate != a.ContentDate


def test_patient_id_issuer_namespaces_the_pseudonym(pseudonymizer):
    ds = make_ct()
    plain = deidentify_dataset(ds, pseudonymizer).patient_pseudonym
    local = deidentify_dataset(ds, pseudonymizer,
                               options=DeidOptions(patient_id_issuer="CENTER-B")).patient_pseudonym
    assert plain != local
    assert local == pseudonymizer.patient_pseudonym(PHI["PatientID"], "CENTER-B")


def test_uids_are_valid_remapped_and_classes_kept(tmp_path, pseudonymizer):
    source = make_ct()
    src = _write(source, tmp_path / "in.dcm")
    deidentify_file(src, tmp_path / "out.dcm", pseudonymizer)
    out = dcmread(tmp_path / "out.dcm")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                    "FrameOfReferenceUID"):
        value = out[keyword].value
        assert len(value) <= 64 and UID_PATTERN.fullmatch(value), value
        assert value.startswith("2.25.")
        assert value == pseudonymizer.uid(source[keyword].value)
    assert out.SOPClassUID == CTImageStorage
    assert out.file_meta.MediaStorageSOPClassUID == CTImageStorage
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    reference = out.ReferencedImageSequence[0]
    assert reference.ReferencedSOPClassUID == CTImageStorage
    assert reference.ReferencedSOPInstanceUID == pseudonymizer.uid(_uid(9001))
    for code in out.DeidentificationMethodCodeSequence:
        assert code.CodingSchemeDesignator == "DCM"


def test_pseudonymizer_values():
    p = Pseudonymizer(KEY)
    pseudonym = p.patient_pseudonym("12345")
    assert re.fullmatch(r"VW-[A-Z2-7]{16}", pseudonym)
    assert p.patient_pseudonym(" 12345 ") == pseudonym, "DICOM padding is ignored"
    assert p.patient_pseudonym("12345", issuer="X") != pseudonym
    assert Pseudonymizer(OTHER_KEY).patient_pseudonym("12345") != pseudonym
    uids = {p.uid(f"1.2.3.{n}") for n in range(500)}
    assert len(uids) == 500
    assert all(len(u) <= 64 and UID_PATTERN.fullmatch(u) for u in uids)
    offsets = [p.date_offset_days(f"patient-{n}") for n in range(500)]
    assert all(-3650 <= offset <= -365 for offset in offsets)
    assert len(set(offsets)) > 300, "offsets spread over the range"
    assert "key" not in repr(p).replace("key_id", "") and KEY.hex() not in repr(p)
    with pytest.raises(ValueError, match="at least 16"):
        Pseudonymizer(b"short")


# --- dates ---------------------------------------------------------------------------------

def _date(value: str) -> dt.date:
    return dt.datetime.strptime(value[:8], "%Y%m%d").date()


def test_interval_between_studies_is_kept_and_dates_are_changed(pseudonymizer):
    admission = make_ct(study_date="20210314", study=1)
    follow_up = make_ct(study_date="20210402", study=2)
    a = deidentify_dataset(admission, pseudonymizer)
    b = deidentify_dataset(follow_up, pseudonymizer)
    assert a.date_offset_days == b.date_offset_days
    assert -3650 <= a.date_offset_days <= -365
    for keyword in ("StudyDate", "SeriesDate", "ContentDate", "AcquisitionDateTime",
                    "InstanceCreationDate"):
        assert a.dataset[keyword].value[:8] != admission[keyword].value[:8], keyword
        interval = _date(b.dataset[keyword].value) - _date(a.dataset[keyword].value)
        assert interval == dt.timedelta(days=19), keyword
    shift = _date(a.dataset.StudyDate) - _date("20210314")
    assert shift.days == a.date_offset_days
    assert a.dataset.AcquisitionDateTime[8:] == "093015.123456", "time of day kept"
    assert a.dataset.StudyTime == "093000"
    nested = a.dataset.AnatomicRegionSequence[0].ObservationDateTime
    assert nested == (dt.date(2021, 3, 14) + shift).strftime("%Y%m%d") + "101010"
    assert a.dataset.LongitudinalTemporalInformationModified == "MODIFIED"


def test_date_helpers():
    assert dates.shift_date("20210301", -1) == "20210228"
    assert dates.shift_date("2021.03.01", -1) == "20210228"
    assert dates.shift_date("", -5) == ""
    assert dates.shift_date("20210230", -1) is None
    assert dates.shift_date("March 1", -1) is None
    assert dates.shift_datetime("20210301000001.5+0100", -1) == "20210228000001.5+0100"
    assert dates.shift_datetime("2021", -1) is None, "partial dates cannot shift by days"
    assert dates.age_string("19640212", "20210314") == "057Y"
    assert dates.age_string("20200101", "20210314") == "014M"
    assert dates.age_string("20210301", "20210314") == "013D"
    assert dates.age_string("20210315", "20210314") is None


def test_unparseable_dates_are_removed(pseudonymizer):
    ds = make_ct()
    ds["SeriesDate"] = DataElement(0x00080021, "DA", "yesterday", validation_mode=config.IGNORE)
    out = deidentify_dataset(ds, pseudonymizer).dataset
    assert "SeriesDate" not in out


def test_age_is_derived_from_birth_date_when_missing(pseudonymizer):
    ds = make_ct()
    del ds.PatientAge
    result = deidentify_dataset(ds, pseudonymizer)
    assert result.dataset.PatientAge == "057Y"
    assert result.dataset.PatientBirthDate == ""
    assert result.actions["added"] == 1


def test_without_options_dates_and_characteristics_go(pseudonymizer):
    options = DeidOptions(retain_longitudinal_modified_dates=False,
                          retain_patient_characteristics=False)
    result = deidentify_dataset(make_ct(), pseudonymizer, options=options)
    out = result.dataset
    assert out.StudyDate == out.StudyTime == out.ContentDate == out.PatientSex == ""
    for gone in ("SeriesDate", "AcquisitionDateTime", "InstanceCreationDate",
                 "PatientAge", "PatientSize", "PatientWeight"):
        assert gone not in out, gone
    assert result.date_offset_days is None
    assert [c.CodeValue for c in out.DeidentificationMethodCodeSequence] == ["113100"]
    assert out.LongitudinalTemporalInformationModified == "REMOVED"


def test_unlisted_attributes_follow_conservative_vr_rules(pseudonymizer):
    ds = make_ct()
    unknown = 0x00181FFE
    assert not dictionary_has_tag(unknown)
    assert "SourceFrameOfReferenceUID" not in {row.keyword for row in ROWS}
    ds.add_new(unknown, "UN", b"anything at all")
    ds.add_new(0x00142006, "UN", b"Evaluator^Undecoded")  # EvaluatorName (PN) read as UN
    ds.StationAETitle = "CT_ER_2"
    ds.SourceFrameOfReferenceUID = _uid(777)
    ds.ContextGroupVersion = "20020904000000"
    code = Dataset()
    code.CodeValue = "12345"
    code.CodingSchemeDesignator = "99LOCAL"
    code.CodingSchemeUID = "2.16.840.1.113883.6.96"
    code.CodeMeaning = "Local code"
    ds.ProcedureCodeSequence = [code]
    group = Dataset()
    group.PatientID = PHI["PatientID"]
    group.PatientName = PHI["PatientName"]
    ds.SourcePatientGroupIdentificationSequence = [group]
    result = deidentify_dataset(ds, pseudonymizer)
    out = result.dataset
    nested = out.SourcePatientGroupIdentificationSequence[0]
    assert nested.PatientID == result.patient_pseudonym and nested.PatientName == ""
    for gone in (unknown, 0x00142006, "StationAETitle"):
        assert gone not in out, gone
    assert out.SourceFrameOfReferenceUID == pseudonymizer.uid(_uid(777))
    assert out.ContextGroupVersion == "20020904000000", "a version stamp, not a patient date"
    assert out.ProcedureCodeSequence[0].CodingSchemeUID == "2.16.840.1.113883.6.96"
    assert out.ProcedureCodeSequence[0].CodeMeaning == "Local code"


# --- declaration, pixels, quarantine -----------------------------------------------------------

def test_method_attributes_name_profile_and_options(pseudonymizer):
    out = deidentify_dataset(make_ct(), pseudonymizer).dataset
    assert out.PatientIdentityRemoved == "YES"
    codes = {(c.CodeValue, c.CodingSchemeDesignator) for c in
             out.DeidentificationMethodCodeSequence}
    assert codes == {("113100", "DCM"), ("113107", "DCM"), ("113108", "DCM")}
    method = " ".join(out.DeidentificationMethod)
    assert "Basic Application Confidentiality Profile" in method
    assert "Retain Longitudinal Temporal Information Modified Dates Option" in method
    assert "Retain Patient Characteristics Option" in method
    assert all(len(value) <= 64 for value in out.DeidentificationMethod)
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_pixel_data_are_unchanged(tmp_path, pseudonymizer):
    source = make_ct()
    src = _write(source, tmp_path / "in.dcm")
    result = deidentify_file(src, tmp_path / "out.dcm", pseudonymizer)
    assert result.pixel_sha256_before == pixel_data_sha256(source) is not None
    assert result.pixel_sha256_after == result.pixel_sha256_before and result.pixels_unchanged
    out = dcmread(tmp_path / "out.dcm")
    assert out.PixelData == source.PixelData
    assert np.array_equal(out.pixel_array, source.pixel_array)
    assert pixel_data_sha256(Dataset()) is None
    assert result.summary()["pixel_sha256_after"] == result.pixel_sha256_before


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"burned_in": "YES"}, "Burned In Annotation is YES"),
    ({"sop_class": SecondaryCaptureImageStorage, "burned_in": "NO"}, "Secondary Capture"),
    ({"sop_class": SecondaryCaptureImageStorage, "burned_in": None}, "without Burned In"),
    ({"modality": "US"}, "Ultrasound"),
    ({"sop_class": "1.2.840.10008.5.1.4.1.1.6.1", "modality": "OT"}, "Ultrasound"),
])
def test_quarantine(pseudonymizer, kwargs, reason):
    result = deidentify_dataset(make_ct(**kwargs), pseudonymizer)
    assert result.quarantined
    assert any(reason in text for text in result.quarantine_reasons), result.quarantine_reasons


def test_plain_ct_is_not_quarantined(pseudonymizer):
    assert not deidentify_dataset(make_ct(burned_in=None), pseudonymizer).quarantined


# --- private tags ----------------------------------------------------------------------------

def test_safe_private_tags_are_kept_only_when_asked(pseudonymizer):
    default = deidentify_dataset(make_ct(), pseudonymizer).dataset
    assert not any(elem.tag.is_private for elem in default)
    result = deidentify_dataset(make_ct(), pseudonymizer,
                                options=DeidOptions(safe_private=SAFE_PRIVATE_CT))
    out = result.dataset
    assert out[0x00190010].value == "GEMS_ACQU_01"
    assert out[0x00191023].value == "39.375"
    assert 0x00191030 not in out and 0x00090010 not in out and 0x00091001 not in out
    assert "113111" in [c.CodeValue for c in out.DeidentificationMethodCodeSequence]


# --- keys and bad input ----------------------------------------------------------------------

def test_key_file_is_created_private_and_reused(tmp_path):
    path = tmp_path / "secrets" / "deid.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["deid.key"], "no temporary left"


def test_bad_key_files_are_refused(tmp_path):
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    os.chmod(short, 0o600)
    with pytest.raises(InputError, match="short.key.*3 bytes"):
        load_or_create_key(short)
    open_key = tmp_path / "open.key"
    open_key.write_bytes(bytes(32))
    os.chmod(open_key, 0o644)
    with pytest.raises(InputError, match="chmod 600"):
        load_or_create_key(open_key)


def test_non_dicom_input_is_an_input_error_and_nothing_is_written(tmp_path, pseudonymizer):
    src = tmp_path / "notes.dcm"
    src.write_text("this is not DICOM at all, just a text file\n" * 10)
    dst = tmp_path / "out" / "notes.dcm"
    with pytest.raises(InputError, match="notes.dcm") as error:
        deidentify_file(src, dst, pseudonymizer)
    assert error.value.path == src
    assert not dst.exists()
    assert not dst.parent.exists() or list(dst.parent.iterdir()) == []


def test_missing_and_truncated_inputs(tmp_path, pseudonymizer):
    with pytest.raises(InputError, match="does not exist"):
        deidentify_file(tmp_path / "nope.dcm", tmp_path / "out.dcm", pseudonymizer)
    whole = _write(make_ct(), tmp_path / "whole.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(whole[:200])
    with pytest.raises(InputError, match="cut.dcm"):
        deidentify_file(cut, tmp_path / "out.dcm", pseudonymizer)
    assert not (tmp_path / "out.dcm").exists()


def test_instance_without_sop_instance_uid_is_an_input_error(tmp_path, pseudonymizer):
    ds = make_ct()
    del ds.SOPInstanceUID
    src = _write(ds, tmp_path / "nouid.dcm")
    with pytest.raises(InputError, match=r"nouid\.dcm: .*SOPInstanceUID missing"):
        deidentify_file(src, tmp_path / "out.dcm", pseudonymizer)
    assert not (tmp_path / "out.dcm").exists()


def test_missing_patient_id_is_an_input_error_naming_the_file(tmp_path, pseudonymizer):
    ds = make_ct()
    del ds.PatientID
    src = _write(ds, tmp_path / "anon.dcm")
    with pytest.raises(InputError, match=r"anon\.dcm: Patient ID is missing"):
        deidentify_file(src, tmp_path / "out.dcm", pseudonymizer)


# --- the verifier itself -------------------------------------------------------------------

def test_verify_no_phi_finds_common_spellings():
    data = b"\x00\x10DOE JOHN\x00 born 19640212; id pid-778899 M\xfcller^Anna"
    assert verify_no_phi(data, ["Doe^John"]) == ["Doe^John"]
    assert verify_no_phi(data, ["1964-02-12"]) == ["1964-02-12"]
    assert verify_no_phi(data, ["PID-778899"]) == ["PID-778899"]
    assert verify_no_phi(data, ["Müller^Anna"]) == ["Müller^Anna"]  # Latin-1 bytes
    assert verify_no_phi("Müller^Anna".encode(), ["Müller^Anna"]) == ["Müller^Anna"]
    assert verify_no_phi(data, ["Roe^Richard", "", "20200101"]) == []
    assert verify_no_phi(b"SMITH", ["John^Smith"]) == []
    assert verify_no_phi(b"SMITH", ["John^Smith"], name_parts=True) == ["John^Smith"]
    assert {"Doe John", "John Doe", "Doe^John"} <= identifier_spellings("Doe^John")


def test_verify_no_phi_ignores_words_that_a_digest_spells_by_chance():
    """A repository stores hundreds of SHA-256 digests; one spelling "abcd" is no leak, but the
    same word next to a digest, or in a longer hex run that is not a digest, is."""
    import hashlib

    digest = next(h for h in (hashlib.sha256(str(i).encode()).hexdigest() for i in range(10**6))
                  if "abcd" in h).encode()
    assert verify_no_phi(b"('objects/" + digest[:2] + b"/" + digest + b".dcm',)", ["abcd"]) == []
    assert verify_no_phi(digest + b" Abcd", ["abcd"]) == ["abcd"]
    assert verify_no_phi(digest + b"0", ["abcd"]) == ["abcd"]  # 65 hex digits: not a digest
