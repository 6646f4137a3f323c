"""voxelwise: deep-learning studies on medical images, from the scanner's DICOM to numbers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voxelwise")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
