"""A content-addressed file store: each file lives at ``objects/ab/cdef...``, named by its sha256.

Writing is atomic and idempotent: the bytes go to a temporary file in the store (hashed from
the very bytes written, so the name always matches what was written), are flushed to disk, and
are then renamed into place; storing the same bytes again changes nothing (and writes nothing).
Stored files are made read-only, since a changed file would no longer match its name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from voxelwise.errors import InputError
from voxelwise.store.errors import MissingObjectError

_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMPORARY_PREFIX = ".incoming-"


class ObjectStore:
    """Files by sha256 under ``root`` (the repository's ``objects`` folder)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its sha256 (hex).

        The bytes are hashed and written as they are, in one piece; bytes already stored are not
        written again.
        """
        sha256 = hashlib.sha256(data).hexdigest()
        if not self._path(sha256).is_file():
            self._store(lambda out: out.write(data), sha256)
        return sha256

    def put_file(self, path: str | Path) -> str:
        """Store a copy of the file at ``path``; return its sha256 (hex)."""
        path = Path(path)
        try:
            with path.open("rb") as stream:
                return self._put_stream(stream)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
            problem = f"cannot be read into the file store: {error.strerror}"
            raise InputError(path, problem) from None

    def path_of(self, sha256: str) -> Path:
        """The path of a stored file; `MissingObjectError` if the store does not hold it."""
        path = self._path(sha256)
        if not path.is_file():
            raise MissingObjectError(f"{self.root}: no stored file with sha256 {sha256}")
        return path

    def __contains__(self, sha256: object) -> bool:
        return isinstance(sha256, str) and bool(_SHA256.fullmatch(sha256)) \
            and self._path(sha256).is_file()

    def _path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest (64 lower-case hex digits): {sha256!r}")
        return self.root / sha256[:2] / sha256[2:]

    def _put_stream(self, stream: BinaryIO) -> str:
        digest = hashlib.sha256()

        def copy(out: BinaryIO) -> None:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)

        return self._store(copy, None, digest)

    def _store(self, write: Callable[[BinaryIO], object], sha256: str | None,
               digest: Any = None) -> str:
        """Write through ``write`` to a temporary file, flush it to disk, rename it into place.

        The name is ``sha256`` when the caller hashed the bytes, else ``digest``'s, computed
        while ``write`` ran.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temporary_name = tempfile.mkstemp(prefix=_TEMPORARY_PREFIX, dir=self.root)
        temporary = Path(temporary_name)
        try:
            with os.fdopen(handle, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            sha256 = sha256 or digest.hexdigest()
            final = self._path(sha256)
            if not final.is_file():
                final.parent.mkdir(exist_ok=True)
                temporary.chmod(0o444)
                os.replace(temporary, final)
            return sha256
        finally:
            temporary.unlink(missing_ok=True)
