"""Keyed pseudonyms, UID replacements and date offsets: HMAC-SHA256 under a per-repository key.

Every replacement value is a function of the original value and a secret key only, so the same
patient or instance gets the same replacement on every run and at every center that shares the
key, and nobody without the key can recompute the mapping (a plain hash of a patient ID would
fall to a dictionary attack over the ID space). The key lives in a file outside the study
database (`load_or_create_key`); losing it means new data can no longer be linked to old data.

Each kind of replacement uses its own HMAC message prefix, so a pseudonym, a UID and a date
offset made from the same string are unrelated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from pathlib import Path

from voxelwise.errors import InputError

KEY_BYTES = 32
"""Length of a key made by `load_or_create_key`."""

MIN_KEY_BYTES = 16
"""Shortest key `Pseudonymizer` accepts (128 bits)."""

DATE_OFFSET_RANGE_DAYS = (-3650, -365)
"""Inclusive range of the per-patient date shift: between about ten years and one year back."""

PSEUDONYM_PREFIX = "VW-"
UID_ROOT = "2.25."


class Pseudonymizer:
    """Makes stable, keyed replacements for patient IDs, UIDs and dates.

    >>> p = Pseudonymizer(bytes(32))
    >>> p.patient_pseudonym("12345") == p.patient_pseudonym("12345")
    True
    """

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray):
            raise TypeError(f"key must be bytes, not {type(key).__name__}")
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"key must hold at least {MIN_KEY_BYTES} bytes, got {len(key)}")
        self._key = bytes(key)

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymizer(key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        """A short, non-secret fingerprint of the key, for manifests ("which key made this")."""
        return self._digest("key-id").hex()[:12]

    def patient_pseudonym(self, original_patient_id: str, issuer: str = "") -> str:
        """``"VW-"`` and 16 base32 characters (80 bits) made from the issuer and the patient ID.

        Surrounding blanks (DICOM padding) are ignored; case is not, as IDs are case-sensitive.
        """
        digest = self._digest("patient", issuer.strip(), original_patient_id.strip())
        return PSEUDONYM_PREFIX + base64.b32encode(digest[:10]).decode("ascii")

    def uid(self, original_uid: str) -> str:
        """A UID under ``2.25.`` (a UUID written as an integer, PS3.5 B.2), at most 44 characters.

        The UUID is the first 128 bits of the HMAC with the version set to 8 (custom) and the
        RFC 9562 variant bits, so the value is a well-formed UUID-derived UID.
        """
        digest = bytearray(self._digest("uid", original_uid.strip().rstrip("\x00"))[:16])
        digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
        digest[8] = (digest[8] & 0x3F) | 0x80  # variant 10xx
        return UID_ROOT + str(int.from_bytes(digest, "big"))

    def date_offset_days(self, original_patient_id: str, issuer: str = "") -> int:
        """The patient's date shift in days, in `DATE_OFFSET_RANGE_DAYS` (always negative)."""
        low, high = DATE_OFFSET_RANGE_DAYS
        digest = self._digest("date-offset", issuer.strip(), original_patient_id.strip())
        return low + int.from_bytes(digest[:8], "big") % (high - low + 1)

    def _digest(self, purpose: str, *parts: str) -> bytes:
        message = bytearray(purpose.encode("ascii"))
        for part in parts:  # length-prefixed, so ("ab", "c") and ("a", "bc") differ
            encoded = part.encode("utf-8")
            message += len(encoded).to_bytes(4, "big") + encoded
        return hmac.new(self._key, bytes(message), hashlib.sha256).digest()


def load_or_create_key(path: str | Path) -> bytes:
    """Read the key at ``path``, or create a random 32-byte key there (mode 0600) if it is missing.

    Creation is atomic: the key is written to a temporary file in the same folder and linked to
    ``path`` only if nothing is there yet, so two processes starting at once end up with the same
    key. An existing key file that group or others can read is refused (POSIX), as ssh does.
    """
    path = Path(path)
    if path.exists():
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(key)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o600)
        try:
            os.link(temporary, path)
        except FileExistsError:  # another process created it first: use theirs
            return _read_key(path)
    finally:
        os.unlink(temporary)
    return key


def _read_key(path: Path) -> bytes:
    if not path.is_file():
        raise InputError(path, "the de-identification key path is not a regular file")
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(path, "the de-identification key is readable by group or others; "
                               f"run: chmod 600 {path}")
    key = path.read_bytes()
    if len(key) < MIN_KEY_BYTES:
        raise InputError(path, f"the de-identification key holds {len(key)} bytes; expected "
                               f"{KEY_BYTES} random bytes (at least {MIN_KEY_BYTES})")
    return key
