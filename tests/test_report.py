"""The HTML report: sections, tables and embedded figures, written atomically."""

from __future__ import annotations

import base64

import numpy as np

from voxelwise.imaging import Volume
from voxelwise.reports.figures import largest_label_slice, slice_overlay
from voxelwise.reports.html import Report, Table


def test_report_embeds_tables_and_figures(tmp_path) -> None:
    image = Volume(np.full((4, 32, 32), 30, np.int16), (5.0, 0.5, 0.5))
    labels = np.zeros((4, 32, 32), np.uint8)
    labels[2, 10:20, 12:22] = 1
    label_map = image.with_array(labels)
    assert largest_label_slice(label_map) == 2

    report = Report("test <report>")
    section = report.section("Results & more")
    section.tables.append(Table(["center", "patients"], [["A", 3]], caption="counts"))
    section.add_figure(slice_overlay(image, label_map, 2, "brain", "slice 2"), "slice 2")
    path = report.write(tmp_path / "report.html")

    html = path.read_text()
    assert "test &lt;report&gt;" in html  # escaped
    assert 'id="results-more"' in html and "<td>A</td>" in html
    encoded = html.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(encoded).startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
