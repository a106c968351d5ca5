"""Augmentation must hand back pixels: A.Normalize, ToFloat, float-returning callables or
imgaug Lambdas, and augmenters that change the channels or drop masks are refused with
the augmenter and the fix named, instead of training on normalised floats."""
import numpy as np
import pytest

from mrcnn import augment
from mrcnn.augment import augment_image_and_masks
from mrcnn.config import Config
from mrcnn.dataset import Dataset
from mrcnn.pipeline import load_image_gt

A = pytest.importorskip("albumentations")
iaa = pytest.importorskip("imgaug.augmenters")


class SquareConfig(Config):
    NAME = "augcheck"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64


class Squares(Dataset):
    def __init__(self):
        super().__init__()
        self.add_class("sq", 1, "square")
        self.add_image("sq", image_id=0, path=None)
        self.prepare()

    def load_image(self, image_id):
        return np.random.RandomState(0).randint(0, 256, (64, 64, 3)).astype(np.uint8)

    def load_mask(self, image_id):
        mask = np.zeros((64, 64, 2), bool)
        mask[5:20, 5:20, 0] = True
        mask[30:50, 30:60, 1] = True
        return mask, np.array([1, 1], np.int32)


def test_albumentations_normalize_is_refused_naming_it_and_the_fix():
    pipeline = A.Compose([A.HorizontalFlip(p=0.5), A.Normalize()])
    with pytest.raises(ValueError, match=r"albumentations pipeline returned a float32 image "
                                         r"with values in \[-2\.\d+, 2\.\d+\] from a uint8 one "
                                         r"\(Normalize in it\)\. .*remove A\.Normalize: the "
                                         r"network subtracts config\.MEAN_PIXEL itself"):
        load_image_gt(Squares(), SquareConfig(), 0, augmentation=pipeline, seed=1)
    # found up front even when it would run only now and then
    rarely = A.Compose([A.OneOf([A.Normalize(), A.ToFloat()], p=0.01)])
    with pytest.raises(ValueError, match=r"\(Normalize, ToFloat in it\).*remove A\.Normalize.*"
                                         r"remove A\.ToFloat"):
        augment.check_augmentation(rarely)


def test_imgaug_and_callables_that_return_floats_are_refused():
    to_unit = iaa.Lambda(func_images=lambda images, *args: [i.astype(np.float32) / 255
                                                            for i in images])
    with pytest.raises(ValueError, match=r"imgaug augmenter Lambda returned a float32 image "
                                         r"with values in \[0, 1\] from a uint8 one.*MEAN_PIXEL"):
        load_image_gt(Squares(), SquareConfig(), 0, augmentation=to_unit, seed=1)

    def brighter(image, mask):
        return image * 1.1, mask
    with pytest.raises(ValueError, match=r"augmentation callable brighter returned a float64 "
                                         r"image .*np\.clip\(image, 0, 255\)\.round\(\)\.astype"):
        augment.check_augmentation(brighter, image_shape=(64, 64, 3))


def test_augmenters_that_change_channels_or_drop_masks_are_refused():
    image = np.zeros((32, 32, 3), np.uint8)
    mask = np.zeros((32, 32, 2), bool)
    with pytest.raises(ValueError, match=r"returned masks of shape \(32, 32, 1\) for 2 instance "
                                         r"masks\. Return one mask per instance"):
        augment_image_and_masks(image, mask, lambda i, m: (i, m[:, :, :1]))
    with pytest.raises(ValueError, match=r"returned an image of shape \(32, 32\) from one of "
                                         r"shape \(32, 32, 3\)\. Keep the channels"):
        augment_image_and_masks(image, mask, lambda i, m: (i[:, :, 0], m))


def test_pixel_preserving_augmentations_still_pass_through():
    image = np.random.RandomState(1).randint(0, 256, (32, 32, 3)).astype(np.uint8)
    mask = np.zeros((32, 32, 1), bool)
    mask[2:6, 3:9, 0] = True
    for aug in (A.Compose([A.HorizontalFlip(p=1.0)]), iaa.Fliplr(1.0),
                lambda i, m: (i[:, ::-1], m[:, ::-1])):
        augment.check_augmentation(aug)
        out, out_mask = augment_image_and_masks(image, mask, aug, seed=3)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, image[:, ::-1])
        np.testing.assert_array_equal(out_mask, mask[:, ::-1])
