"""De-identify one DICOM instance: PS3.15 Basic Profile with the longitudinal options.

`deidentify_dataset` returns a new dataset and a record of what was done; `deidentify_bytes`
turns the bytes of a DICOM file into the checked bytes of its de-identified file, in memory;
`deidentify_file` does the same from a file to a file written atomically. The attribute rules
live in `voxelwise.deid.profile` and `voxelwise.deid.profile_table`; this module adds what
concerns the instance as a whole: the pseudonym and date offset of its patient, the File Meta
Information, the attributes that declare the de-identification, the patient's age, the
quarantine decision (burned-in text), the pixel-data checksum and the encoding of the new file.
"""

from __future__ import annotations

import copy
import hashlib
import io
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydicom import dcmread, dcmwrite
from pydicom.charset import default_encoding
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import data_element_generator
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.sr.codedict import codes
from pydicom.tag import Tag
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from voxelwise import __version__
from voxelwise.deid import dates
from voxelwise.deid.profile import ActionRecord, ProfileRun
from voxelwise.deid.pseudonym import Pseudonymizer
from voxelwise.deid.verify import verify_no_phi, worth_searching
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
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # in the order of PIXEL_KEYWORDS
_PIXEL_TAG_SET = frozenset(PIXEL_TAGS)
IMPLEMENTATION_VERSION_NAME = "VOXELWISE"
IMPLEMENTATION_CLASS_UID = "2.25.322279505063860021885162970539922522582"
"""Implementation Class UID of the files voxelwise writes: a UUID-derived UID (PS3.5 B.2) of
its own, uuid5(NAMESPACE_URL, "voxelwise:implementation-class"). Not pydicom's: pydicom's UID
root (1.2.826.0.1.3680043.8.498) also starts every UID that pydicom generates, so writing it
would put the prefix of the source's original UIDs back into each file."""
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
    the patient's name, IDs or accession number in any common spelling (values that match by
    chance are not checked: see `voxelwise.deid.verify.worth_searching`).
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
    encoded: bytes | None = field(default=None, repr=False, compare=False)
    """The bytes of the de-identified file, checked (from `deidentify_bytes`/`deidentify_file`)."""
    pixel_offset: int | None = field(default=None, compare=False)
    """Where native (not encapsulated) Pixel Data values start in ``encoded``, when known."""

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
                       options: DeidOptions = DeidOptions(),
                       hash_pixels: bool = True) -> DeidResult:
    """A de-identified copy of ``ds`` (``ds`` itself is not changed) and what was done.

    Raises `InputError` (without a path) when the dataset has no Patient ID to key on.
    ``hash_pixels=False`` leaves the pixel hashes ``None``, for a caller that hashes the pixel
    data itself (e.g. in another thread).
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
    before = after = None
    if hash_pixels:
        before = pixel_data_sha256(ds)
        # the pixel data are kept as read: hash them once unless they differ
        after = before if _pixel_value(out) == _pixel_value(ds) else pixel_data_sha256(out)
    return DeidResult(
        dataset=out,
        patient_pseudonym=run.patient_pseudonym,
        date_offset_days=run.offset_days if options.retain_longitudinal_modified_dates else None,
        actions=dict(run.counts),
        log=tuple(run.log),
        quarantine_reasons=quarantine_reasons(ds),
        pixel_sha256_before=before,
        pixel_sha256_after=after,
    )


def deidentify_bytes(data: bytes, pseudonymizer: Pseudonymizer,
                     options: DeidOptions = DeidOptions(), *,
                     source: str | Path | None = None, hash_pixels: bool = True) -> DeidResult:
    """De-identify the DICOM file whose bytes are ``data``; ``result.encoded`` holds the new file.

    ``source`` names the file in errors. Nothing is returned when ``data`` is not readable DICOM
    (`InputError`), when an identifier of the patient survives anywhere in the new dataset
    outside its pixel data, or when the pixel data in the new file differ from the source's
    (`DeidentificationError`). Both checks read the encoded bytes themselves: the pixel data
    element is re-read from ``encoded`` and compared byte for byte with the source's, so
    ``pixel_sha256_after`` is the hash of what was written. Elements the profile keeps are
    copied as read, byte for byte. ``hash_pixels``: see `deidentify_dataset`.
    """
    src = None if source is None else Path(source)
    ds = _parse(data, src)
    missing = [keyword for keyword in ("SOPClassUID", "SOPInstanceUID") if not ds.get(keyword)]
    if missing:
        raise InputError(src, f"not a composite instance: {' and '.join(missing)} missing")
    try:
        result = deidentify_dataset(ds, pseudonymizer, options=options, hash_pixels=hash_pixels)
    except InputError as error:
        if error.path is None:
            raise InputError(src, error.problem) from error
        raise
    except VoxelwiseError:
        raise
    except Exception as error:  # a damaged value met while decoding it
        raise InputError(src, f"unreadable DICOM file ({type(error).__name__}: {error})") \
            from error
    meta = getattr(result.dataset, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        raise InputError(src, "the File Meta Information has no Transfer Syntax UID")
    encoded = _encode(result.dataset)
    if options.check_identifiers:
        _check_identifiers(src, ds, encoded.header)
    if not encoded.pixels_equal(_pixel_value(ds)):
        raise DeidentificationError(f"{src}: the pixel data of the de-identified file differ "
                                    "from the source's; nothing was written")
    return replace(result, pixel_sha256_after=result.pixel_sha256_before, encoded=encoded.data,
                   pixel_offset=encoded.pixel_offset)


def deidentify_file(src: str | Path, dst: str | Path, pseudonymizer: Pseudonymizer,
                    options: DeidOptions = DeidOptions()) -> DeidResult:
    """De-identify the DICOM file ``src`` into ``dst``, written atomically.

    Nothing is written when ``src`` is not readable DICOM (`InputError` naming it), when an
    identifier of the patient survives in the header, or when the written pixel data differ from
    the source's (`DeidentificationError`); see `deidentify_bytes`, which does the work.
    """
    src, dst = Path(src), Path(dst)
    result = deidentify_bytes(_read_bytes(src), pseudonymizer, options, source=src)
    with atomic_path(dst) as temporary:
        temporary.write_bytes(result.encoded or b"")
    return result


def _read_bytes(src: Path) -> bytes:
    if not src.exists():
        raise InputError(src, "file does not exist")
    if src.is_dir():
        raise InputError(src, "is a folder, not a DICOM file")
    try:
        return src.read_bytes()
    except OSError as error:
        raise InputError(src, f"cannot be read: {error.strerror}") from None


def _parse(data: bytes, src: Path | None) -> Dataset:
    """The dataset in ``data``; values stay undecoded until used (pydicom's raw elements)."""
    try:
        return dcmread(io.BytesIO(data))
    except InvalidDicomError as error:
        raise InputError(src, f"not a DICOM file: {error}") from error
    except Exception as error:  # pydicom raises many kinds on damaged files
        raise InputError(src, f"unreadable DICOM file ({type(error).__name__}: {error})") \
            from error


def _pixel_value(ds: Dataset) -> Any:
    """The undecoded value of the first pixel data element present (None when there is none)."""
    for tag in PIXEL_TAGS:
        if tag in ds:
            return ds.get_item(tag).value
    return None


# ---------------------------------------------------------------------------------- encoding
_SHORT_ELEMENT = struct.Struct("<HH2sH")
_LONG_ELEMENT = struct.Struct("<HH2sHL")
_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class _Encoded:
    """A de-identified file and what its checks read in it."""

    data: bytes
    header: bytes
    """Every byte of the dataset but the pixel data element (what the identifier check reads)."""
    pixels: Any
    """The pixel data value as read back, or (start, length) of a native one in ``data``."""

    def pixels_equal(self, value: Any) -> bool:
        """True when the file's pixel data are exactly ``value`` (``None``: no pixel data)."""
        if isinstance(self.pixels, tuple):
            start, length = self.pixels
            return value is not None and length == len(value) \
                and self.data.startswith(value, start)  # a compare in place, no copy
        return bool(self.pixels == value)

    @property
    def pixel_offset(self) -> int | None:
        return self.pixels[0] if isinstance(self.pixels, tuple) else None


def _encode(ds: Dataset) -> _Encoded:
    """The file ``dcmwrite(..., enforce_file_format=True)`` writes for ``ds``, with its checks.

    For explicit VR little endian (native and compressed syntaxes alike, nearly every CT and MR
    file) the elements are written here: raw elements as read, plain ASCII values as pydicom
    writes them (`_fast_element_bytes`), anything else by pydicom's element writer. The pixel
    data element is read back where it lies in the file: its tag, VR and length from its header,
    then its value compared in place (native) or re-read by pydicom (encapsulated). Other
    encodings are written by dcmwrite and the whole file is read back.
    """
    syntax = ds.file_meta.TransferSyntaxUID
    fast = (syntax.is_transfer_syntax and not syntax.is_private and not syntax.is_deflated
            and syntax.is_little_endian and not syntax.is_implicit_VR
            and ds.original_encoding == (False, True)
            and ds.original_character_set == ds._character_set
            and not any(int(tag) >> 16 in (0, 2) for tag in ds.keys()))
    if not fast:
        return _encode_with_dcmwrite(ds)
    if 0x7FE00010 in ds:  # as dcmwrite does: encapsulated exactly when compressed
        pixels = ds.get_item(0x7FE00010)
        if not pixels.is_raw or (pixels.length == _UNDEFINED_LENGTH) != syntax.is_compressed:
            ds["PixelData"].is_undefined_length = syntax.is_compressed
    head = [_file_meta_bytes(ds)]
    pixel_chunks: list[bytes] = []
    tail: list[bytes] = []
    chunks = head
    # what the identifier check reads: every element but pixel data, as written (the File Meta
    # Information is made from scratch by `_file_meta` and holds nothing of the source's but its
    # classes and remapped instance UID)
    checked: list[bytes] = []
    encodings = ds.get("SpecificCharacterSet", default_encoding)
    pixel_tag = next((tag for tag in PIXEL_TAGS if tag in ds), None)
    for tag in sorted(int(key) for key in ds.keys()):  # ints: BaseTag compares slowly
        if tag & 0xFFFF == 0 and tag >> 16 > 6:  # group lengths are not written (PS3.5 7.2)
            continue
        elem = ds.get_item(tag)
        if tag == pixel_tag:
            header = _fast_element_header(elem)  # the value itself is not copied
            pixel_chunks = [header, elem.value] if header else [_element_bytes(elem, encodings)]
            chunks = tail
            continue
        chunks.append(_fast_element_bytes(elem) or _element_bytes(elem, encodings))
        if tag not in _PIXEL_TAG_SET:
            checked.append(chunks[-1])
    before_pixels = b"".join(head)
    data = b"".join([before_pixels, *pixel_chunks, *tail])
    written: Any = None
    if pixel_chunks:
        start = len(before_pixels)
        if len(pixel_chunks) == 2:
            written = _native_value_span(data, start, pixel_tag)
        else:
            read_back = next(data_element_generator(io.BytesIO(pixel_chunks[0]), False, True))
            written = read_back.value if read_back.tag == pixel_tag else None
    return _Encoded(data, b"".join(checked), written)


def _native_value_span(data: bytes, start: int, tag: int | None) -> tuple[int, int] | None:
    """(start, length) of the value of the element at ``start`` when it is ``tag``, defined
    length, explicit VR little endian; ``None`` otherwise."""
    group, element, vr = struct.unpack_from("<HH2s", data, start)
    if (group << 16 | element) != tag:
        return None
    if vr.decode("ascii", "replace") in EXPLICIT_VR_LENGTH_32:
        length, value_start = struct.unpack_from("<L", data, start + 8)[0], start + 12
    else:
        length, value_start = struct.unpack_from("<H", data, start + 6)[0], start + 8
    if length == _UNDEFINED_LENGTH or value_start + length > len(data):
        return None
    return value_start, length


_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UR", "UI"})  # pydicom write_string
_TEXT_VRS = frozenset({"SH", "LO", "LT", "ST", "UT", "UC"})  # pydicom write_text


def _fast_element_bytes(elem: Any) -> bytes | None:
    """The explicit VR little endian encoding of ``elem`` when it is simple, else ``None``.

    Simple: a raw element as read (defined length), or a decoded one whose value is empty, plain
    ASCII text of a string VR, or OB bytes. The bytes are those pydicom's element writer makes:
    the same padding (NUL for UI and OB, space otherwise), and ASCII is encoded alike by every
    character set DICOM allows.
    """
    if elem.is_raw:
        header = _fast_element_header(elem)
        return None if header is None else header + elem.value
    vr = elem.VR
    if not isinstance(vr, str) or len(vr) != 2:
        return None
    value = _plain_value(elem)
    if value is None:
        return None
    return _element_header(int(elem.tag), vr, len(value)) + value \
        if vr in EXPLICIT_VR_LENGTH_32 or len(value) <= 0xFFFF else None


def _fast_element_header(elem: Any) -> bytes | None:
    """The header (tag, VR, length) of a raw element written as read, or ``None``."""
    vr, value = elem.VR, elem.value
    if not elem.is_raw or not isinstance(vr, str) or len(vr) != 2 or type(value) is not bytes \
            or elem.length == _UNDEFINED_LENGTH:
        return None
    if vr not in EXPLICIT_VR_LENGTH_32 and len(value) > 0xFFFF:
        return None
    return _element_header(int(elem.tag), vr, len(value))


def _element_header(tag: int, vr: str, length: int) -> bytes:
    if vr in EXPLICIT_VR_LENGTH_32:
        return _LONG_ELEMENT.pack(tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
    return _SHORT_ELEMENT.pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)


def _plain_value(elem: Any) -> bytes | None:
    """The encoded value of a decoded element of `_fast_element_bytes`, or ``None``."""
    vr, value = elem.VR, elem.value
    if vr == "SQ" or elem.is_undefined_length:
        return None
    if vr == "OB" and type(value) is bytes:
        return value + b"\x00" if len(value) % 2 else value
    if vr not in _STRING_VRS and vr not in _TEXT_VRS:
        return b"" if elem.is_empty and vr not in ("PN", "DS", "IS") else None
    if value is None:
        return b""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list | MultiValue) or not all(
            isinstance(item, str) and type(item) in (str, UID) and item.isascii()
            for item in values):
        return None
    text = "\\".join(values)
    if len(text) % 2:
        text += "\x00" if vr == "UI" else " "
    return text.encode("ascii")


def _file_meta_bytes(ds: Dataset) -> bytes:
    """Preamble, prefix and File Meta Information, as dcmwrite with enforce_file_format."""
    preamble = getattr(ds, "preamble", None) or b"\x00" * 128
    if len(preamble) != 128:
        raise ValueError("the preamble must be 128 bytes long")
    meta = ds.file_meta
    ready = (0x00020000 not in meta and all(key >> 16 == 2 for key in meta.keys())
             and all(meta.get(keyword) for keyword in _META_REQUIRED)
             and meta.get("MediaStorageSOPClassUID") == ds.get("SOPClassUID")
             and meta.get("MediaStorageSOPInstanceUID") == ds.get("SOPInstanceUID"))
    body = [_fast_element_bytes(meta.get_item(tag)) for tag in sorted(meta.keys())] \
        if ready else [None]
    if None in body:  # as dcmwrite does it, on a copy
        meta = copy.deepcopy(meta)
        for meta_keyword, keyword in (("MediaStorageSOPClassUID", "SOPClassUID"),
                                      ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
            in_meta, in_dataset = meta.get(meta_keyword), ds.get(keyword)
            if in_meta is None or (in_dataset and in_dataset != in_meta):
                setattr(meta, meta_keyword, in_dataset)
        validate_file_meta(meta, enforce_standard=True)
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_file_meta_info(fp, meta, enforce_standard=True)
        return preamble + b"DICM" + fp.getvalue()
    content = b"".join(body)  # type: ignore[arg-type]
    group_length = _SHORT_ELEMENT.pack(0x0002, 0x0000, b"UL", 4) + struct.pack("<L", len(content))
    return preamble + b"DICM" + group_length + content


_META_REQUIRED = ("FileMetaInformationVersion", "MediaStorageSOPClassUID",
                  "MediaStorageSOPInstanceUID", "TransferSyntaxUID", "ImplementationClassUID",
                  "ImplementationVersionName")


def _element_bytes(elem: Any, encodings: Any) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_data_element(fp, elem, encodings)
    return fp.getvalue()


def _encode_with_dcmwrite(ds: Dataset) -> _Encoded:
    """`_encode` for the other encodings: dcmwrite, then the whole file read back.

    The identifier check then sees the header written on its own in explicit VR little endian
    (a deflated file's bytes are compressed).
    """
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    encoded = buffer.getvalue()
    header = Dataset()  # not Dataset(ds): that shares ds's elements
    for tag in ds.keys():
        if tag not in PIXEL_TAGS:
            header.add(ds[tag])
    header_buffer = io.BytesIO()
    dcmwrite(header_buffer, header, implicit_vr=False, little_endian=True)
    return _Encoded(encoded, header_buffer.getvalue(), _pixel_value(dcmread(io.BytesIO(encoded))))


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
    """Patient Identity Removed, De-identification Method (+ codes), Longitudinal Temporal...

    The same four elements for every instance: when ``out`` is written in explicit VR little
    endian they are added as raw elements encoded once per set of options (immutable, so shared).
    """
    if out.original_encoding == (False, True):
        for raw in _declared_raw(options):
            out[raw.tag] = raw
        return
    _declare_elements(out, options)


def _declare_elements(out: Dataset, options: DeidOptions) -> None:
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


_DECLARED: dict[tuple[object, ...], tuple[Any, ...]] = {}


def _declared_raw(options: DeidOptions) -> tuple[Any, ...]:
    """The elements of `_declare_elements`, encoded in explicit VR little endian, read back raw.

    Their values are ASCII, so their bytes are the same under every Specific Character Set.
    """
    key = (tuple(options.method_codes()), options.retain_longitudinal_modified_dates)
    if key not in _DECLARED:
        template = Dataset()
        _declare_elements(template, options)
        encoded = b"".join(_element_bytes(template[tag], default_encoding)
                           for tag in sorted(template.keys()))
        _DECLARED[key] = tuple(data_element_generator(io.BytesIO(encoded), False, True))
    return _DECLARED[key]


def _file_meta(source: FileMetaDataset, out: Dataset, run: ProfileRun) -> FileMetaDataset:
    """New File Meta Information describing voxelwise (PS3.15 E.1.1 item 7).

    Only the class, the remapped instance UID and the transfer syntax carry over; anything else
    in the source's meta (source AE titles, private information) is dropped.
    """
    values: list[tuple[int, str, object]] = [(0x00020001, "OB", b"\x00\x01")]
    sop_class = out.get("SOPClassUID") or source.get("MediaStorageSOPClassUID")
    if sop_class:
        values.append((0x00020002, "UI", sop_class))
    if "SOPInstanceUID" in out:
        values.append((0x00020003, "UI", out.SOPInstanceUID))
    elif source.get("MediaStorageSOPInstanceUID"):
        values.append((0x00020003, "UI",
                       run.pseudonymizer.uid(source.MediaStorageSOPInstanceUID)))
    if "TransferSyntaxUID" in source:
        values.append((0x00020010, "UI", source.TransferSyntaxUID))
    values += [(0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
               (0x00020013, "SH", IMPLEMENTATION_VERSION_NAME)]
    meta = FileMetaDataset({Tag(tag): DataElement(tag, vr, value) for tag, vr, value in values})
    kept = {"FileMetaInformationVersion", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID",
            "TransferSyntaxUID", "ImplementationClassUID", "ImplementationVersionName"}
    for tag in sorted(source.keys()):
        keyword = keyword_for_tag(tag)
        if keyword == "MediaStorageSOPInstanceUID":
            run.log.append(ActionRecord("meta(0002,0003)", keyword, "U"))
            run.counts["U"] += 1
        elif keyword not in kept and tag.element != 0:
            run.log.append(ActionRecord(f"meta({tag.group:04X},{tag.element:04X})", keyword, "X"))
            run.counts["X"] += 1
    return meta


def _check_identifiers(src: Path | None, source: Dataset, header: bytes) -> None:
    """Refuse when the patient's name, IDs or accession number survive in the new header."""
    found_in: dict[str, str] = {}
    for keyword in _CHECKED_IDENTIFIERS:
        value = source.get(keyword)
        values = [] if value is None else [value] if isinstance(value, str | bytes) else value
        for item in values:
            text = str(item).strip()
            if worth_searching(text):
                found_in.setdefault(text, keyword)
    if not found_in:
        return
    leaked = verify_no_phi(header, list(found_in))
    if leaked:
        names = ", ".join(sorted({found_in[text] for text in leaked}))
        raise DeidentificationError(f"{src}: the value of {names} is still present after "
                                    "de-identification; nothing was written")
