"""What the demo's steps share: the run's configuration and the state they hand to each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxelwise.reports.html import Report

LABEL_NAMES = {1: "haematoma", 2: "oedema"}


@dataclass
class DemoConfig:
    """What the demo runs on; every field is a `voxelwise demo` option."""

    out: Path = Path("voxelwise-demo")
    size: str = "full"
    centers: int = 3
    patients: int = 4
    followups: int = 2
    seed: int = 0


@dataclass
class DemoState:
    """What the steps hand to each other, and what ends up in ``demo.json``.

    ``outputs`` holds paths a later step reads (``outputs["repository"]``, a folder of predicted
    label maps, a trained model's run folder...); ``findings`` holds the numbers the report and
    the tests check.
    """

    config: DemoConfig
    report: Report
    phantom_root: Path | None = None
    studies: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    findings: dict[str, Any] = field(default_factory=dict)
