"""Patch sampling: foreground oversampling puts the lesion inside the patch the network sees."""

from __future__ import annotations

import numpy as np
import pytest

from voxelwise.data.preprocess import PreprocessedCase, foreground_locations
from voxelwise.data.transforms import Augment, PatchSampler


def _case_with_one_voxel(shape: tuple[int, ...], where: tuple[int, ...]) -> PreprocessedCase:
    label = np.zeros(shape, np.uint8)
    label[where] = 1
    image = np.zeros((1, *shape), np.float32)
    image[(0, *where)] = 1.0
    return PreprocessedCase("case", image, label, foreground_locations(label, [1]))


NO_SPATIAL = Augment(spatial_probability=0.0, intensity_probability=0.0, noise_probability=0.0,
                     mirror=False)
ROOM_TO_ROTATE = Augment(spatial_probability=1e-9, intensity_probability=0.0,
                         noise_probability=0.0, mirror=False)  # crops with a margin, no rotation


@pytest.mark.parametrize("augment", [None, NO_SPATIAL, ROOM_TO_ROTATE])
@pytest.mark.parametrize("dims", [2, 3])
def test_every_forced_patch_holds_the_foreground_voxel(dims: int, augment: Augment | None
                                                       ) -> None:
    case = _case_with_one_voxel((12, 80, 80), (6, 40, 17))
    patch = [32, 32] if dims == 2 else [8, 32, 32]
    sampler = PatchSampler([case], patch, batch_size=4, iterations=25,
                           foreground_fraction=1.0, augment=augment)
    if augment is ROOM_TO_ROTATE:
        assert sampler.crop != sampler.patch  # the case this test is about: crop > patch
    batches = list(sampler)
    for images, labels in batches:
        assert list(images.shape[2:]) == patch and list(labels.shape[2:]) == patch
        assert (labels.flatten(1) == 1).any(dim=1).all(), "a forced patch missed the lesion"
        assert ((images > 0.5) == (labels == 1)).all()  # image and label stay aligned


def test_random_patches_are_not_forced() -> None:
    case = _case_with_one_voxel((12, 80, 80), (6, 40, 17))
    sampler = PatchSampler([case], [16, 16], batch_size=6, iterations=30,
                           foreground_fraction=0.0, augment=None)
    hits = sum(int((labels == 1).any(dim=(1, 2, 3)).sum()) for _, labels in sampler)
    assert hits < 0.2 * 6 * 30  # one voxel in 12 x 80 x 80: random 16 x 16 slices rarely hold it
