"""Configuration files: TOML or JSON read into dataclasses, unknown keys refused by name.

Every step's configuration is a tree of dataclasses; `load_config_mapping` reads a TOML or JSON
file and `dataclass_from_mapping` fills a dataclass from it. Nothing in a config file is executed.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

from voxelwise.errors import InputError

T = TypeVar("T")


def load_config_mapping(path: str | Path) -> dict[str, Any]:
    """The contents of a ``.toml`` or ``.json`` config file as a dictionary."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(path, f"cannot be read: {error.strerror or error}") from error
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise InputError(path, f"is not valid {path.suffix.lstrip('.') or 'TOML'}: {error}") \
            from error
    if not isinstance(data, dict):
        raise InputError(path, "must hold a table / object of settings")
    return data


def dataclass_from_mapping(cls: type[T], data: dict[str, Any], source: str | Path | None = None,
                           base: T | None = None, prefix: str = "") -> T:
    """``cls`` filled from ``data`` (nested dataclasses from sub-tables) over ``base``."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(source, f"unknown setting(s) {', '.join(prefix + u for u in unknown)} "
                         f"(known: {', '.join(prefix + k for k in sorted(known))})")
    base = base if base is not None else cls()
    values = {}
    for name, value in data.items():
        current = getattr(base, name)
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, dict):
            value = dataclass_from_mapping(hints[name], value, source, current, f"{name}.")
        elif isinstance(value, list) and isinstance(current, tuple):
            value = tuple(value)
        values[name] = value
    try:
        return dataclasses.replace(base, **values)
    except (TypeError, ValueError) as error:
        raise InputError(source, str(error)) from error
