"""Medical images with their geometry: `Volume`, readers and writers, resampling, HU windows."""

from voxelwise.imaging.dicom import (
    DicomScan,
    Problem,
    read_dicom_series,
    read_dicom_slices,
    scan_dicom_folder,
)
from voxelwise.imaging.dicom_write import write_dicom_series
from voxelwise.imaging.nifti import read_nifti, write_nifti
from voxelwise.imaging.resample import CANONICAL, reorient, resample, resample_to
from voxelwise.imaging.volume import GeometryError, Volume
from voxelwise.imaging.windows import WINDOWS, apply_window, window, window_channels

__all__ = [
    "CANONICAL", "WINDOWS", "DicomScan", "GeometryError", "Problem", "Volume", "apply_window",
    "read_dicom_series", "read_dicom_slices", "read_nifti", "reorient", "resample",
    "resample_to", "scan_dicom_folder", "window", "window_channels", "write_dicom_series",
    "write_nifti",
]
