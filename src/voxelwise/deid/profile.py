"""Applying PS3.15 Table E.1-1 to a dataset, recursively through sequences.

The decision for one attribute is taken in `ProfileRun.action_for`, in this order:

1. Patient ID and (top-level) Patient's Name: replaced by the keyed pseudonym. Patient ID inside
   a sequence item gets the keyed pseudonym of its own value; a nested Patient's Name is emptied.
2. UI attributes that name a class, syntax or scheme (`NON_INSTANCE_UID_KEYWORDS`): kept.
3. A row of Table E.1-1 (`voxelwise.deid.profile_table.ROWS`): its action under the options in
   use, resolved by `resolve_action`.
4. `ADDITIONAL_REMOVED`, the repeating groups 50xx/60xx and group lengths: removed.
5. Attributes the table does not list, by VR, conservatively: PN and AE removed; DA and DT
   shifted by the patient's offset with the modified-dates option (removed without it); TM kept
   with the option (removed without it); UI remapped unless under the DICOM root; UN of an
   unknown standard tag removed; anything else kept.

Private attributes (odd groups) are removed unless (group, creator, element) is in the safe list
of the run; a private creator is kept only when an attribute of its block is.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from voxelwise.deid import dates
from voxelwise.deid.profile_table import (
    ADDITIONAL_REMOVED,
    BY_TAG,
    NON_INSTANCE_UID_KEYWORDS,
    REMOVED_REPEATING_GROUPS,
    VERSION_DATETIME_KEYWORDS,
    Row,
)
from voxelwise.deid.pseudonym import Pseudonymizer

DICOM_UID_ROOT = "1.2.840.10008."
"""UIDs under this root are defined by the standard (classes, syntaxes, frames): never remapped."""

PATIENT_ID = 0x00100020
PATIENT_NAME = 0x00100010
METHOD_TAGS = frozenset({
    0x00120062,  # PatientIdentityRemoved
    0x00120063,  # DeidentificationMethod
    0x00120064,  # DeidentificationMethodCodeSequence
    0x00280303,  # LongitudinalTemporalInformationModified
})
"""Top-level attributes that describe the de-identification: dropped, then written anew."""

ACTIONS = frozenset({"X", "Z", "D", "K", "C", "U", "U*", "pseudonym"})

COMBINED_ACTIONS = {
    # X/Z, X/D and X/Z/D name what to do when the IOD makes the attribute Type 3, 2 or 1. Every
    # attribute with such a code is Type 3 in the CT, MR, PET and X-ray image IODs this project
    # de-identifies, so voxelwise removes it (a Type 1 use, e.g. Institution Name in the
    # Enhanced General Equipment module, is not re-created).
    "X/Z": "X", "X/D": "X", "X/Z/D": "X",
    # Z/D: Z unless a non-empty value is required: voxelwise writes the empty value.
    "Z/D": "Z",
    # X/Z/U*: references to other instances (Referenced Image Sequence, Source Image Sequence).
    # voxelwise keeps them with their UIDs remapped consistently, so a derived series still
    # points at its source; the items are de-identified recursively like everything else.
    "X/Z/U*": "U*",
}

_DECODED_VRS = frozenset({None, "UN", "SQ"})
"""Raw elements with these VRs are always decoded first: implicit VR (None) and UN take their VR
from the dictionary when decoded, and sequence items are de-identified one by one."""
_RAW_ACTIONS: dict[tuple[int, str, bool, bool, bool], tuple[str, str, bool]] = {}

_STRING_DUMMY = "ANONYMOUS"
_DUMMY_BY_VR: dict[str, Any] = {
    "DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000Y", "IS": "0", "DS": "0",
    "US": 0, "SS": 0, "UL": 0, "SL": 0, "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0,
    "OB": b"\x00\x00", "OW": b"\x00\x00", "OF": b"\x00" * 4, "OD": b"\x00" * 8,
    "OL": b"\x00" * 4, "OV": b"\x00" * 8, "UN": b"\x00\x00",
}


def resolve_action(row: Row, *, modified_dates: bool, patient_characteristics: bool) -> str:
    """The single action (``X Z D K C U U*``) for one table row under the options in use.

    An option's column, where it has an entry, overrides the basic profile (PS3.15 E.1.1:
    "A requirement for an Option, when implemented, overrides any requirement for the underlying
    Profile"); combined codes are then resolved as `COMBINED_ACTIONS` explains.
    """
    action = row.basic
    if modified_dates and row.dates:
        action = row.dates
    if patient_characteristics and row.patient:
        action = row.patient
    return COMBINED_ACTIONS.get(action, action)


@dataclass(frozen=True)
class ActionRecord:
    """One decision: where (tag path), which attribute, what was done. Never the value."""

    path: str
    keyword: str
    action: str


@dataclass
class ProfileRun:
    """The profile applied to one instance; state shared by every nesting level."""

    pseudonymizer: Pseudonymizer
    patient_pseudonym: str
    offset_days: int
    issuer: str = ""
    modified_dates: bool = True
    patient_characteristics: bool = True
    safe_private: frozenset[tuple[int, str, int]] = frozenset()
    counts: Counter[str] = field(default_factory=Counter)
    log: list[ActionRecord] = field(default_factory=list)
    _raw_ok: bool = field(default=False, init=False, repr=False)
    """True while de-identifying a dataset read from an explicit VR little endian file."""

    def dataset(self, source: Dataset, path: str = "") -> Dataset:
        """A de-identified copy of ``source`` (``path`` is the item's place, "" at top level).

        Elements still undecoded as read from a file (pydicom's raw elements, explicit VR) whose
        action needs no value (K, and C of a time: kept as read, byte for byte; X: dropped; Z:
        emptied) are handled without decoding them: the decision depends only on tag, VR and
        options (`_raw_action`). Every other element is decoded and goes through `action_for`
        and `apply`. New values of a dataset read in explicit VR little endian are encoded
        directly when they are plain ASCII (`_new`).
        """
        outer, self._raw_ok = self._raw_ok, source.original_encoding == (False, True)
        try:
            return self._dataset(source, path)
        finally:
            self._raw_ok = outer

    def _dataset(self, source: Dataset, path: str) -> Dataset:
        kept: dict[BaseTag, Any] = {}  # raw elements kept as read
        added: list[DataElement] = []
        creators: list[Any] = []
        needed_creators: set[BaseTag] = set()
        nested = bool(path)
        for raw in source.elements():
            tag = raw.tag
            if tag.is_private:
                if tag.is_private_creator:
                    creators.append(raw)
                else:
                    self._private(raw, source, kept, added, needed_creators, path)
                continue
            if not nested and int(tag) in METHOD_TAGS:
                continue
            if raw.is_raw and raw.VR not in _DECODED_VRS:
                action, keyword, as_read = self._raw_action(tag, raw.VR, nested)
                if as_read or action in ("X", "Z"):  # decided without decoding the value
                    if as_read:
                        kept[tag] = raw
                    elif action == "Z":
                        added.append(self._new(tag, raw.VR, empty_value_for_VR(raw.VR)))
                    if action == "K":
                        self.counts["K"] += 1
                    else:
                        self._record(f"{path}{_tag_text(tag)}", keyword, action)
                    continue
            elem = source[tag]
            action = self.action_for(elem, nested=nested)
            where = f"{path}{_tag_text(tag)}"
            result = self.apply(action, elem, where, nested=nested)
            self._record(where, elem.keyword, "X" if result is None else action)
            if result is not None:
                added.append(result)
        for creator in creators:
            keep = creator.tag in needed_creators
            if keep:
                _keep(creator, kept, added)
            self._record(f"{path}{_tag_text(creator.tag)}", "PrivateCreator", "K" if keep else "X")
        out = Dataset(kept)
        for elem in added:
            out.add(elem)
        implicit_vr, little_endian = source.original_encoding
        if implicit_vr is False:  # read from an explicit VR file: written in the same encoding,
            # its raw elements are copied as they are (pydicom decodes them otherwise)
            out.set_original_encoding(False, little_endian, source.original_character_set)
        return out

    def _raw_action(self, tag: BaseTag, vr: str, nested: bool) -> tuple[str, str, bool]:
        """(action, keyword, kept as read) of `action_for` for this tag and VR, cached.

        Kept as read: K, and C of a time (`_clean` keeps times and UTC offsets unchanged).
        """
        key = (int(tag), vr, nested, self.modified_dates, self.patient_characteristics)
        found = _RAW_ACTIONS.get(key)
        if found is None:
            probe = DataElement(tag, vr, None)
            action, keyword = self.action_for(probe, nested=nested), probe.keyword
            as_read = action == "K" or (action == "C" and (
                vr == "TM" or keyword == "TimezoneOffsetFromUTC"))
            found = _RAW_ACTIONS[key] = (action, keyword, as_read)
        return found

    def action_for(self, elem: DataElement, *, nested: bool) -> str:
        """Which action applies to the standard (even-group) attribute ``elem``."""
        tag = int(elem.tag)
        if tag == PATIENT_ID or (tag == PATIENT_NAME and not nested):
            return "pseudonym"
        if elem.VR == "UI" and elem.keyword in NON_INSTANCE_UID_KEYWORDS:
            return "K"
        row = BY_TAG.get(tag)
        if row is not None:
            return resolve_action(row, modified_dates=self.modified_dates,
                                  patient_characteristics=self.patient_characteristics)
        if (tag in ADDITIONAL_REMOVED or (elem.tag.group & 0xFF00) in REMOVED_REPEATING_GROUPS
                or elem.tag.element == 0):
            return "X"
        return self._action_by_vr(elem)

    def _action_by_vr(self, elem: DataElement) -> str:
        vr = elem.VR
        if vr == "UN":  # judge by the dictionary's VR; an unknown tag could hold anything
            if not dictionary_has_tag(elem.tag):
                return "X"
            vr = dictionary_VR(elem.tag)
        if vr in ("PN", "AE"):
            return "X"
        if vr in ("DA", "DT"):
            if elem.keyword in VERSION_DATETIME_KEYWORDS:
                return "K"
            return "C" if self.modified_dates else "X"
        if vr == "TM":
            return "K" if self.modified_dates else "X"
        if vr == "UI":
            return "U"
        return "K"

    def apply(self, action: str, elem: DataElement, where: str, *,
              nested: bool) -> DataElement | None:
        """The element that replaces ``elem`` under ``action``, or ``None`` to remove it."""
        if action == "X":
            return None
        if elem.VR == "SQ" and action in ("K", "D", "C", "U", "U*"):
            return self._sequence(elem, where)
        if action == "K":
            return _copy_element(elem)
        if action == "Z":
            return self._new(elem.tag, elem.VR, empty_value_for_VR(elem.VR))
        if action == "D":
            return self._dummy(elem)
        if action == "C":
            return self._clean(elem)
        if action in ("U", "U*"):
            return self._remap_uids(elem)
        if action == "pseudonym":
            return self._pseudonym(elem, nested=nested)
        raise ValueError(f"unknown de-identification action {action!r} for {where}")

    def _sequence(self, elem: DataElement, where: str) -> DataElement:
        items = [self.dataset(item, f"{where}[{index}]") for index, item in enumerate(elem.value)]
        return DataElement(elem.tag, "SQ", Sequence(items))

    def _dummy(self, elem: DataElement) -> DataElement:
        if elem.VR == "UI":
            return self._remap_uids(elem)
        return DataElement(elem.tag, elem.VR, _DUMMY_BY_VR.get(elem.VR, _STRING_DUMMY))

    def _clean(self, elem: DataElement) -> DataElement | None:
        """C: dates shifted by the patient's offset; times and UTC offsets kept; text removed.

        Cleaning free text (Allergies, Patient State...) cannot be automated safely, so any
        other VR is removed.
        """
        if elem.VR in ("DA", "DT"):
            shift = dates.shift_date if elem.VR == "DA" else dates.shift_datetime
            shifted = [shift(value, self.offset_days) for value in _values(elem)]
            if any(value is None for value in shifted):
                return None
            return self._new(elem.tag, elem.VR, _as_value(shifted))
        if elem.VR == "TM" or elem.keyword == "TimezoneOffsetFromUTC":
            return _copy_element(elem)
        return None

    def _remap_uids(self, elem: DataElement) -> DataElement:
        remapped = [self._remap_uid(value) for value in _values(elem)]
        return self._new(elem.tag, "UI", _as_value(remapped))

    def _remap_uid(self, value: str) -> str:
        value = value.strip().rstrip("\x00")
        if not value or value.startswith(DICOM_UID_ROOT):
            return value
        return self.pseudonymizer.uid(value)

    def _pseudonym(self, elem: DataElement, *, nested: bool) -> DataElement:
        if not nested:
            return self._new(elem.tag, elem.VR, self.patient_pseudonym)
        original = str(elem.value or "").strip()
        if not original:
            return self._new(elem.tag, elem.VR, "")
        return self._new(elem.tag, elem.VR,
                         self.pseudonymizer.patient_pseudonym(original, self.issuer))

    def _new(self, tag: BaseTag, vr: str, value: Any) -> Any:
        """A new element: raw, encoded here, when the dataset is written in explicit VR little
        endian and the value is empty or plain ASCII text (as pydicom would encode it: values
        joined by backslashes, padded with NUL for UI, else a space); else a `DataElement`."""
        if self._raw_ok and vr != "SQ" and len(vr) == 2:
            values = [] if value is None else [value] if isinstance(value, str) else value
            if isinstance(values, list) and all(
                    isinstance(item, str) and item.isascii() for item in values):
                text = "\\".join(values)
                if len(text) % 2:
                    text += "\x00" if vr == "UI" else " "
                encoded = text.encode("ascii")
                return RawDataElement(tag, vr, len(encoded), encoded, 0, False, True)
        return DataElement(tag, vr, value)

    def _private(self, elem: Any, source: Dataset, kept: dict[BaseTag, Any],
                 added: list[DataElement], needed_creators: set[BaseTag], path: str) -> None:
        tag = elem.tag
        creator_tag = Tag(tag.group, tag.element >> 8)
        creator = None
        if tag.element >= 0x1000 and creator_tag in source:
            creator = str(source[creator_tag].value or "").strip()
        safe = creator is not None and (tag.group, creator, tag.element & 0xFF) in self.safe_private
        if safe:
            _keep(elem, kept, added)
            needed_creators.add(creator_tag)
        self._record(f"{path}{_tag_text(tag)}", f"Private:{creator or '?'}", "K" if safe else "X")

    def _record(self, where: str, keyword: str, action: str) -> None:
        self.counts[action] += 1
        if action != "K":
            self.log.append(ActionRecord(where, keyword, action))


def _keep(elem: Any, kept: dict[BaseTag, Any], added: list[DataElement]) -> None:
    """Keep ``elem`` unchanged: a raw element as read, a decoded one as a copy."""
    if elem.is_raw:
        kept[elem.tag] = elem
    else:
        added.append(_copy_element(elem))


def _tag_text(tag: BaseTag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def _values(elem: DataElement) -> list[str]:
    """The element's values as a list of strings (an empty element gives ``[""]``)."""
    value = elem.value
    if value is None:
        return [""]
    if isinstance(value, bytes):  # a UN element: its text is ASCII, values split by backslash
        return value.decode("ascii", errors="replace").rstrip("\x00 ").split("\\")
    if isinstance(value, list | tuple | MultiValue):
        return [str(item) for item in value] or [""]
    return [str(value)]  # str, UID, or a DA/DT object when pydicom converts dates


def _as_value(values: list[str]) -> str | list[str]:
    return values if len(values) > 1 else values[0]


def _copy_element(elem: DataElement) -> DataElement:
    """A new element with the same value; immutable values (pixel bytes) are shared, not copied."""
    value = elem.value
    if not isinstance(value, bytes | str | int | float | type(None)):
        value = copy.deepcopy(value)
    return DataElement(elem.tag, elem.VR, value, is_undefined_length=elem.is_undefined_length,
                       already_converted=True)  # as read: a malformed value is not re-parsed
