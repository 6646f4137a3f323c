"""Shifting DICOM dates (DA) and date-times (DT) by whole days, and ages (AS) from dates.

Only the date part moves; times of day are kept, so every interval between two events of the
same patient (admission CT to follow-up CT, contrast injection to acquisition) is preserved to
the second. A value that cannot be parsed returns ``None`` and the caller removes it: an
unparsed date is never written back unchanged.
"""

from __future__ import annotations

import datetime as dt
import re

_DA = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})")  # YYYYMMDD, or the ACR-NEMA YYYY.MM.DD
_DT = re.compile(r"(\d{8})(\d{0,6}(?:\.\d{1,6})?)([+-]\d{4})?")


def parse_date(value: str) -> dt.date | None:
    """The date of a DA value, or ``None`` if it is not one."""
    match = _DA.fullmatch(value.strip())
    if match is None:
        return None
    try:
        return dt.date(*(int(part) for part in match.groups()))
    except ValueError:  # 20230230
        return None


def shift_date(value: str, days: int) -> str | None:
    """Shift one DA value by ``days``; ``""`` stays ``""``; ``None`` if unparseable."""
    if not value.strip():
        return ""
    date = parse_date(value)
    if date is None:
        return None
    try:
        return (date + dt.timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return None


def shift_datetime(value: str, days: int) -> str | None:
    """Shift the date part of one DT value by ``days``, keeping time and UTC offset.

    A DT with less than a full date (``"2021"``, ``"202103"``) cannot be shifted by days without
    changing its precision, so it returns ``None`` (the caller removes it).
    """
    text = value.strip()
    if not text:
        return ""
    match = _DT.fullmatch(text)
    if match is None:
        return None
    shifted = shift_date(match.group(1), days)
    if shifted is None:
        return None
    return shifted + match.group(2) + (match.group(3) or "")


def age_string(birth: str, on: str) -> str | None:
    """A Patient's Age (AS) value for someone born on DA ``birth``, on DA ``on``.

    Years (``"057Y"``) from two years of age, months below that, days below one month.
    """
    born, when = parse_date(birth), parse_date(on)
    if born is None or when is None or when < born:
        return None
    years = when.year - born.year - ((when.month, when.day) < (born.month, born.day))
    if years >= 2:
        return f"{min(years, 999):03d}Y"
    months = (when.year - born.year) * 12 + when.month - born.month - (when.day < born.day)
    if months >= 1:
        return f"{months:03d}M"
    return f"{(when - born).days:03d}D"
