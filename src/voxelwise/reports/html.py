"""The HTML report: sections of text, tables and figures, written as one self-contained file.

Every step of the demo (and any user script) adds a section; figures are embedded as PNG so the
report can be mailed or archived as a single file.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voxelwise.fileio import write_text_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Table:
    """A table with a header row; cells are shown as given (format numbers with units first)."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass
class EmbeddedFigure:
    png_base64: str
    caption: str


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[EmbeddedFigure] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")

    def add_figure(self, figure: Figure, caption: str, dpi: int = 100) -> None:
        """Embed a matplotlib figure as PNG and close it."""
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(figure)
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        self.figures.append(EmbeddedFigure(encoded, caption))


@dataclass
class Report:
    """An HTML report under construction: ``report.section("...")`` then ``report.write(path)``."""

    title: str
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str) -> Section:
        """Add a new section at the end and return it."""
        section = Section(title)
        self.sections.append(section)
        return section

    def render(self) -> str:
        import jinja2

        from voxelwise import __version__

        environment = jinja2.Environment(
            loader=jinja2.PackageLoader("voxelwise.reports", "templates"),
            autoescape=jinja2.select_autoescape(["html"]),
        )
        created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        return environment.get_template("report.html").render(
            title=self.title, sections=self.sections, version=__version__, created=created
        )

    def write(self, path: str | Path) -> Path:
        """Write the report atomically and return its path."""
        return write_text_atomic(path, self.render())
