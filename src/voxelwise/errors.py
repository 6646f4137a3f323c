"""Exceptions that the `voxelwise` command turns into one clear line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path


class VoxelwiseError(Exception):
    """Base class of every error voxelwise reports to a user."""


class InputError(VoxelwiseError):
    """Bad input: the message names the file and what is wrong with it."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")
