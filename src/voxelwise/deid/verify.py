"""Search raw bytes for identifiers in the spellings DICOM files use.

A de-identifier is checked by what it writes, not by what it meant to do: `verify_no_phi` looks
for each identifier in every byte of a written file (header, sequences, private blocks, File
Meta Information, preamble) in its common encodings.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

_DATE_ISO = re.compile(r"(\d{4})[-./]?(\d{2})[-./]?(\d{2})")  # 1964-02-12, 19640212, 1964.02.12
_DATE_DMY = re.compile(r"(\d{2})[./](\d{2})[./](\d{4})")  # 12.02.1964, 12/02/1964
_ENCODINGS = ("utf-8", "latin-1", "cp1252")
_SHA256_HEX = re.compile(rb"(?<![0-9A-Fa-f])[0-9a-f]{64}(?![0-9A-Fa-f])")
MIN_SEARCHED_LENGTH = 4
"""Shorter values are not searched: they occur in any file by chance ("F", "1", "CT")."""
MIN_SEARCHED_DIGITS = 6
"""All-digit values shorter than this are not searched (study IDs "1234", counts, sizes)."""


def worth_searching(value: str) -> bool:
    """Whether finding ``value`` in a file could mean it leaked, rather than chance.

    No: blank values, values shorter than `MIN_SEARCHED_LENGTH` characters, all-digit values
    shorter than `MIN_SEARCHED_DIGITS`, and values of one character repeated ("000000",
    "^^^^", "11111111": placeholders that carry nothing). Padding (spaces, NUL) is ignored.
    """
    text = value.strip(" \x00")
    if len(text) < MIN_SEARCHED_LENGTH or len(set(text)) == 1:
        return False
    return not (text.isdigit() and len(text) < MIN_SEARCHED_DIGITS)


def identifier_spellings(identifier: str, *, name_parts: bool = False) -> set[str]:
    """The spellings of ``identifier`` to look for (case is handled by the search).

    * a person name ``"Doe^John"`` also as ``"Doe John"``, ``"John Doe"``, ``"Doe, John"``;
      ``"John Doe"`` also as ``"Doe^John"`` and ``"John^Doe"``; with ``name_parts`` each name
      component of four letters or more on its own;
    * a date in ``YYYYMMDD``, ``YYYY-MM-DD``, ``YYYY.MM.DD`` or ``DD.MM.YYYY`` in all of them.
    """
    text = identifier.strip()
    spellings = {text}
    parts = [part for part in re.split(r"[\^ ,]+", text) if part]
    if len(parts) > 1:
        spellings |= {" ".join(parts), "^".join(parts), ", ".join(parts),
                      " ".join(reversed(parts)), "^".join(reversed(parts))}
        if name_parts:
            spellings |= {part for part in parts if len(part) >= 4}
    date = _DATE_ISO.fullmatch(text)
    if date is None and (match := _DATE_DMY.fullmatch(text)) is not None:
        date = match
        year, month, day = match.group(3), match.group(2), match.group(1)
    elif date is not None:
        year, month, day = date.groups()
    if date is not None:
        spellings |= {f"{year}{month}{day}", f"{year}-{month}-{day}", f"{year}.{month}.{day}",
                      f"{day}.{month}.{year}", f"{day}/{month}/{year}"}
    return {spelling for spelling in spellings if spelling}


def verify_no_phi(data: bytes, identifiers: list[str], *, name_parts: bool = False) -> list[str]:
    """The identifiers (as given) that occur in ``data`` in any spelling, case or encoding.

    An empty list means none was found. Spellings are those of `identifier_spellings`, each in
    its own case, upper and lower case, encoded as UTF-8, Latin-1 and Windows-1252 (the character
    sets of nearly all DICOM files), and compared to the bytes as they are and ASCII-lower-cased.
    SHA-256 digests (64 lower-case hex digits, the content addresses and pixel hashes a
    repository stores) are masked first: hundreds of them spell short hex words ("abcd",
    "cafe") by chance, and a digest cannot carry an identifier.
    """
    data = _SHA256_HEX.sub(b"#" * 64, data)
    lowered = data.lower()
    found = []
    for identifier in identifiers:
        if not identifier.strip():
            continue
        if any(needle in data or needle.lower() in lowered
               for needle in _needles(identifier, name_parts=name_parts)):
            found.append(identifier)
    return found


def _needles(identifier: str, *, name_parts: bool) -> set[bytes]:
    needles = set()
    for spelling in identifier_spellings(identifier, name_parts=name_parts):
        for cased in (spelling, spelling.upper(), spelling.lower()):
            for encoding in _ENCODINGS:
                try:
                    needles.add(cased.encode(encoding))
                except UnicodeEncodeError:
                    continue
    return needles


def without_pixel_data(path: str | Path) -> bytes:
    """The bytes of a stored file with the value of its pixel data element cut out.

    Pixel data are not searched for identifiers: they are checked by hash instead, and 8-bit
    images hold short strings such as "123456" by chance. A file that is not DICOM (a NIfTI
    label map in the content store) is returned whole.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from voxelwise.deid.deidentify import PIXEL_TAGS

    data = Path(path).read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, OSError):
        return data
    for tag in PIXEL_TAGS:
        value = dataset.get_item(tag).value if tag in dataset else None
        if isinstance(value, bytes) and value:
            start = data.find(value)
            if start < 0:
                raise ValueError(f"{path}: pixel data not found in the file's bytes")
            data = data[:start] + data[start + len(value):]
    return data
