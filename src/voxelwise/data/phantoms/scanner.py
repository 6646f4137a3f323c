"""What the CT scanner does to the noise-free phantom: partial-volume blur, noise, integer HU.

The noise is added before the blur and scaled so that after it its standard deviation is the
centre's ``noise_hu``: one in-plane Gaussian blur then gives both the point-spread function (soft
edges) and noise that is correlated between neighbouring pixels, as a reconstruction kernel makes
it. Partial volume across the thick slices is done when the anatomy is rendered.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

PSF_SIGMA_MM = 0.6
"""In-plane standard deviation of the point-spread function (FWHM about 1.4 mm)."""
SLICE_SIGMA = 0.0
"""Blur across slices in slice spacings (none: the anatomy is already averaged over each slice's
thickness, see `anatomy.render_anatomy`)."""
MIN_SIGMA = 0.45
"""Least in-plane blur in voxels, so that coarse grids average rather than alias."""
HU_RANGE = (-1024, 3071)

_TRUNCATE = 3.0


def blur_sigmas(spacing: tuple[float, float, float]) -> tuple[float, float, float]:
    """Gaussian standard deviations in voxels along (slice, row, column)."""
    return (SLICE_SIGMA, max(PSF_SIGMA_MM / spacing[1], MIN_SIGMA),
            max(PSF_SIGMA_MM / spacing[2], MIN_SIGMA))


def _noise_gain(sigma: float) -> float:
    """Factor by which a 1-D Gaussian blur of ``sigma`` voxels scales white noise's SD."""
    if sigma <= 0:
        return 1.0
    radius = int(_TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (x / sigma) ** 2)
    weights /= weights.sum()
    return float(np.sqrt((weights**2).sum()))


def acquire(hu: np.ndarray, spacing: tuple[float, float, float], noise_hu: float,
            rng: np.random.Generator) -> np.ndarray:
    """The image the scanner reconstructs from noise-free ``hu``: int16 HU, blurred and noisy.

    ``hu`` (float32) is modified in place (noise is added to it slice by slice).
    """
    sigmas = blur_sigmas(spacing)
    scale = noise_hu / np.prod([_noise_gain(s) for s in sigmas])
    noise = np.empty(hu.shape[1:], np.float32)
    for k in range(hu.shape[0]):
        rng.standard_normal(out=noise, dtype=np.float32)
        noise *= np.float32(scale)
        hu[k] += noise
    blurred = ndimage.gaussian_filter(hu, sigmas, truncate=_TRUNCATE, mode="nearest")
    np.rint(blurred, out=blurred)
    np.clip(blurred, *HU_RANGE, out=blurred)
    return blurred.astype(np.int16)
