"""Medical images with their geometry: `Volume`, readers and writers, resampling, HU windows."""

from voxelwise.imaging.nifti import read_nifti, write_nifti
from voxelwise.imaging.resample import CANONICAL, reorient, resample, resample_to
from voxelwise.imaging.volume import GeometryError, Volume
from voxelwise.imaging.windows import WINDOWS, apply_window, window, window_channels

__all__ = [
    "CANONICAL", "WINDOWS", "GeometryError", "Volume", "apply_window", "read_nifti", "reorient",
    "resample", "resample_to", "window", "window_channels", "write_nifti",
]
