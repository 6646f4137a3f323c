"""Errors of the study repository: each names the repository (folder or database) and problem."""

from __future__ import annotations

from voxelwise.errors import VoxelwiseError


class StoreError(VoxelwiseError):
    """The repository cannot do what was asked (bad location, conflicting records, no database)."""


class SchemaVersionError(StoreError):
    """The database was written by a newer voxelwise whose schema this version does not know."""


class MissingObjectError(StoreError):
    """A content address (sha256) that the file store does not hold."""
