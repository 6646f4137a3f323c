"""Labelled sets from CSV files: a labels table (one 0/1 column per finding) and 2-D images.

``read_label_table`` reads and checks a labels CSV (shared by the 2-D image folders and the
folders of DICOM series); ``read_image_2d`` decodes one PNG, JPEG or single-frame DICOM image
into a (3, H, W) float32 array in [0, 1] resized with its aspect ratio kept. Every problem is
reported with the CSV's file name and line number, all of them at once.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxelwise.errors import InputError

FILE_COLUMNS = ("file", "image", "filename", "file_name", "path")
PATIENT_COLUMNS = ("patient_id", "patient")
# Columns a labels table may hold besides findings (the head-CT phantom's labels.csv among them).
METADATA_COLUMNS = frozenset({
    *FILE_COLUMNS, *PATIENT_COLUMNS, "center", "timepoint", "days_since_admission",
    "study_instance_uid", "series_instance_uid", "accession_number", "dicom_dir", "label_map",
    "midline_shift_mm", "haematoma_ml", "oedema_ml", "lesion_count", "split"})
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", "")
MAX_LISTED = 8


@dataclass
class LabelTable:
    """Rows of a labels CSV: ``labels`` (rows, findings) 0/1, per-row line numbers and fields."""

    path: Path
    findings: list[str]
    rows: list[dict[str, str]]
    lines: list[int]
    labels: np.ndarray

    def column(self, name: str) -> list[str]:
        return [row.get(name, "") for row in self.rows]


def problems_error(path: Path, problems: Sequence[str]) -> InputError:
    """One `InputError` listing the first problems (each with its line) and how many more."""
    shown = "; ".join(problems[:MAX_LISTED])
    more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return InputError(path, f"{len(problems)} problem(s): {shown}{more}")


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    if not path.is_file():
        raise InputError(path, "labels CSV not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [(reader.line_num, row) for row in reader]
            columns = [c.strip() for c in (reader.fieldnames or [])]
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"not a readable CSV ({error})") from error
    if not columns:
        raise InputError(path, "empty CSV: no header line")
    if not rows:
        raise InputError(path, "no rows below the header")
    return columns, [(n, {k.strip(): (v or "").strip() for k, v in r.items() if k})
                     for n, r in rows]


def _choose_findings(path: Path, columns: list[str], findings: Sequence[str] | None,
                     known: Sequence[str], ignore: Sequence[str]) -> list[str]:
    if findings:
        missing = [f for f in findings if f not in columns]
        if missing:
            raise InputError(path, f"unknown column(s) {', '.join(missing)}: not in the CSV "
                             f"(columns: {', '.join(columns)})")
        return list(findings)
    skipped = METADATA_COLUMNS | set(ignore)
    unknown = [c for c in columns if c not in skipped and c not in known]
    if unknown:
        raise InputError(path, f"unknown column(s) {', '.join(unknown)}: neither a finding "
                         f"({', '.join(known)}) nor metadata; name the findings to train on "
                         "with --findings, or skip columns with --ignore-columns")
    chosen = [f for f in known if f in columns]
    if not chosen:
        raise InputError(path, f"no finding column (expected some of {', '.join(known)}); "
                         "name them with --findings")
    return chosen


def read_label_table(path: str | Path, *, known: Sequence[str], findings: Sequence[str] | None
                     = None, ignore: Sequence[str] = ()) -> LabelTable:
    """Read and check a labels CSV: every finding value must be 0 or 1.

    ``findings`` names the columns to use; without it the columns of ``known`` present in the
    CSV are used and any column that is neither known nor metadata is refused (a misspelt
    finding must not be dropped silently). Raises `InputError` listing every bad value by line.
    """
    path = Path(path)
    columns, rows = _read_rows(path)
    chosen = _choose_findings(path, columns, findings, known, ignore)
    problems, labels = [], np.zeros((len(rows), len(chosen)), np.float32)
    for i, (line, row) in enumerate(rows):
        for j, name in enumerate(chosen):
            value = row.get(name, "")
            if value in ("0", "1", "0.0", "1.0"):
                labels[i, j] = float(value)
            else:
                problems.append(f"line {line}: {name} = {value!r} is not 0 or 1")
    if problems:
        raise problems_error(path, problems)
    return LabelTable(path, chosen, [r for _, r in rows], [n for n, _ in rows], labels)


def file_column(table: LabelTable) -> str:
    """The column naming each row's image file (``file``, ``image``, ``filename``...)."""
    for name in FILE_COLUMNS:
        if name in table.rows[0]:
            return name
    raise InputError(table.path, f"no file column (one of {', '.join(FILE_COLUMNS)})")


def patient_ids(table: LabelTable) -> list[str]:
    """Each row's patient (``patient_id`` / ``patient``), or the row's file when there is none."""
    for name in PATIENT_COLUMNS:
        if name in table.rows[0]:
            return table.column(name)
    return table.column(file_column(table))


# ---------------------------------------------------------------------------------------------
# decoding and resizing


def _decode_dicom(path: Path) -> np.ndarray:
    import pydicom

    from voxelwise.imaging.windows import WINDOWS, apply_window

    dataset = pydicom.dcmread(path)
    pixels = dataset.pixel_array.astype(np.float32)
    if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4):
        raise ValueError(f"multi-frame image ({pixels.shape[0]} frames); give one image per file")
    slope, intercept = float(getattr(dataset, "RescaleSlope", 1)), float(
        getattr(dataset, "RescaleIntercept", 0))
    if getattr(dataset, "Modality", "") == "CT" and pixels.ndim == 2:
        hu = pixels * slope + intercept
        return np.stack([apply_window(hu, *WINDOWS[w]) for w in ("brain", "subdural", "bone")])
    if getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1":
        pixels = pixels.max() - pixels
    return _to_channels(pixels)


def _to_channels(pixels: np.ndarray) -> np.ndarray:
    """(3, H, W) in [0, 1]: grey replicated three times, RGB(A) as its three colour channels."""
    pixels = pixels.astype(np.float32)
    if pixels.ndim == 3:
        pixels = np.moveaxis(pixels[..., :3], -1, 0)
    else:
        pixels = np.repeat(pixels[None], 3, axis=0)
    low, high = float(pixels.min()), float(pixels.max())
    return (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)


def _decode_picture(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("P", "LA", "1"):
            image = image.convert("RGBA" if image.mode == "P" else "L")
        pixels = np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[-1] == 2:
        pixels = pixels[..., 0]
    return _to_channels(pixels)


def decode_image(path: Path) -> np.ndarray:
    """(3, H, W) float32 in [0, 1] from a PNG, JPEG or DICOM file (CT: three HU windows)."""
    suffix = path.suffix.lower()
    if suffix == ".dcm" or (suffix not in (".png", ".jpg", ".jpeg") and _is_dicom(path)):
        return _decode_dicom(path)
    return _decode_picture(path)


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def resize_keep_aspect(image: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) scaled so its longer side is ``size`` (area-averaged), centred on a zero
    square of ``size`` x ``size``."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    _, h, w = image.shape
    scale = size / max(h, w)
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    mode = "area" if scale < 1 else "bilinear"
    resized = F.interpolate(tensor, size=new, mode=mode,
                            **({} if mode == "area" else {"align_corners": False}))[0].numpy()
    out = np.zeros((image.shape[0], size, size), np.float32)
    top, left = (size - new[0]) // 2, (size - new[1]) // 2
    out[:, top:top + new[0], left:left + new[1]] = resized
    return out


def read_image_2d(path: str | Path, size: int) -> np.ndarray:
    """`decode_image` then `resize_keep_aspect`: a (3, size, size) float32 array."""
    return resize_keep_aspect(decode_image(Path(path)), size)


IMAGE_SUBFOLDER = "images"
"""Where file names are also looked up, beside the labels CSV (the layout public sets use)."""


def image_folder(table: LabelTable, folder: Path | None = None) -> Path:
    """The folder the table's file names are relative to: ``folder`` (default: the CSV's
    own), or its `IMAGE_SUBFOLDER` when the first file is found only there."""
    folder = folder or table.path.parent
    names = table.column(file_column(table))
    if names and not (folder / names[0]).is_file() \
            and (folder / IMAGE_SUBFOLDER / names[0]).is_file():
        return folder / IMAGE_SUBFOLDER
    return folder


def load_images(table: LabelTable, size: int, folder: Path | None = None) -> np.ndarray:
    """(rows, 3, size, size) images of a labels table; every missing or undecodable file is
    reported by file and line, all at once. File names are relative to ``folder`` or its
    `IMAGE_SUBFOLDER` (`image_folder`; default: the CSV's folder)."""
    folder = image_folder(table, folder)
    column = file_column(table)
    problems: list[str] = []
    images = np.zeros((len(table.rows), 3, size, size), np.float32)
    for i, (line, name) in enumerate(zip(table.lines, table.column(column), strict=True)):
        path = folder / name
        if not name or not path.is_file():
            problems.append(f"line {line}: file {name!r} not found")
            continue
        try:
            images[i] = read_image_2d(path, size)
        except Exception as error:  # PIL and pydicom raise many kinds for a broken file
            problems.append(f"line {line}: {name} cannot be decoded "
                            f"({type(error).__name__}: {str(error).splitlines()[0][:80]})")
    if problems:
        raise problems_error(table.path, problems)
    return images
