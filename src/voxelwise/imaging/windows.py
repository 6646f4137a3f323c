"""Hounsfield-unit display windows (level/width) used for reading and as network input channels."""

from __future__ import annotations

import numpy as np

from voxelwise.imaging.volume import Volume

WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (80.0, 200.0),
    "bone": (600.0, 2800.0),
    "stroke": (35.0, 40.0),
    "soft-tissue": (50.0, 400.0),
}
"""Named windows as (level, width) in HU; brain, subdural and bone are the usual head-CT trio."""


def apply_window(values: np.ndarray | Volume, level: float, width: float) -> np.ndarray:
    """Map HU values to [0, 1]: ``level - width/2`` -> 0, ``level + width/2`` -> 1, clipped."""
    if width <= 0:
        raise ValueError(f"window width must be positive; got {width}")
    array = values.array if isinstance(values, Volume) else np.asarray(values)
    low = level - width / 2.0
    return np.clip((array.astype(np.float32) - low) / width, 0.0, 1.0)


def window(values: np.ndarray | Volume, name: str) -> np.ndarray:
    """Apply a named window from `WINDOWS` (``"brain"``, ``"subdural"``, ``"bone"``...)."""
    if name not in WINDOWS:
        raise ValueError(f"unknown window {name!r}; choose one of {', '.join(WINDOWS)}")
    return apply_window(values, *WINDOWS[name])


def window_channels(volume: Volume, names: tuple[str, ...] = ("brain", "subdural", "bone")
                    ) -> np.ndarray:
    """Stack several windows as channels, shape (len(names), *volume.shape), float32 in [0, 1]."""
    return np.stack([window(volume, name) for name in names])
