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
from pydicom.dataelem import DataElement, empty_value_for_VR
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

    def dataset(self, source: Dataset, path: str = "") -> Dataset:
        """A de-identified copy of ``source`` (``path`` is the item's place, "" at top level)."""
        out = Dataset()
        creators: list[DataElement] = []
        needed_creators: set[BaseTag] = set()
        for elem in source:
            if elem.tag.is_private:
                if elem.tag.is_private_creator:
                    creators.append(elem)
                else:
                    self._private(elem, source, out, needed_creators, path)
                continue
            if not path and int(elem.tag) in METHOD_TAGS:
                continue
            action = self.action_for(elem, nested=bool(path))
            where = f"{path}{_tag_text(elem.tag)}"
            result = self.apply(action, elem, where, nested=bool(path))
            self._record(where, elem.keyword, "X" if result is None else action)
            if result is not None:
                out.add(result)
        for creator in creators:
            keep = creator.tag in needed_creators
            if keep:
                out.add(_copy_element(creator))
            self._record(f"{path}{_tag_text(creator.tag)}", "PrivateCreator", "K" if keep else "X")
        return out

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
            return DataElement(elem.tag, elem.VR, empty_value_for_VR(elem.VR))
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
            return DataElement(elem.tag, elem.VR, _as_value(shifted))
        if elem.VR == "TM" or elem.keyword == "TimezoneOffsetFromUTC":
            return _copy_element(elem)
        return None

    def _remap_uids(self, elem: DataElement) -> DataElement:
        remapped = [self._remap_uid(value) for value in _values(elem)]
        return DataElement(elem.tag, "UI", _as_value(remapped))

    def _remap_uid(self, value: str) -> str:
        value = value.strip().rstrip("\x00")
        if not value or value.startswith(DICOM_UID_ROOT):
            return value
        return self.pseudonymizer.uid(value)

    def _pseudonym(self, elem: DataElement, *, nested: bool) -> DataElement:
        if not nested:
            return DataElement(elem.tag, elem.VR, self.patient_pseudonym)
        original = str(elem.value or "").strip()
        if not original:
            return DataElement(elem.tag, elem.VR, "")
        return DataElement(elem.tag, elem.VR,
                           self.pseudonymizer.patient_pseudonym(original, self.issuer))

    def _private(self, elem: DataElement, source: Dataset, out: Dataset,
                 needed_creators: set[BaseTag], path: str) -> None:
        tag = elem.tag
        creator_tag = Tag(tag.group, tag.element >> 8)
        creator = None
        if tag.element >= 0x1000 and creator_tag in source:
            creator = str(source[creator_tag].value or "").strip()
        safe = creator is not None and (tag.group, creator, tag.element & 0xFF) in self.safe_private
        if safe:
            out.add(_copy_element(elem))
            needed_creators.add(creator_tag)
        self._record(f"{path}{_tag_text(tag)}", f"Private:{creator or '?'}", "K" if safe else "X")

    def _record(self, where: str, keyword: str, action: str) -> None:
        self.counts[action] += 1
        if action != "K":
            self.log.append(ActionRecord(where, keyword, action))


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
