"""Augmentation of an image together with its instance masks.

``train(augmentation=...)`` accepts:
- an imgaug augmenter (the classic way): geometric augmenters (flips, affine, crops,
  ...) are applied to the masks too, pixel-only ones (blur, colour, noise) to the image
  only, exactly as the classic library did with its ``MASK_AUGMENTERS`` hook;
- an albumentations pipeline (``A.Compose([...])``): called with ``image=`` and
  ``masks=``; albumentations itself applies only spatial transforms to masks;
- any callable ``f(image, mask) -> (image, mask)`` with mask [H, W, N] bool.
"""
import numpy as np

# imgaug augmenters that move pixels: these are applied to the masks as well.
MASK_AUGMENTERS = ["Sequential", "SomeOf", "OneOf", "Sometimes", "Fliplr", "Flipud",
                   "CropAndPad", "Affine", "PiecewiseAffine", "Rot90", "Crop", "Pad",
                   "PerspectiveTransform", "ElasticTransformation", "Resize",
                   "CropToFixedSize", "PadToFixedSize", "ScaleX", "ScaleY", "TranslateX",
                   "TranslateY", "Rotate", "ShearX", "ShearY", "KeepSizeByResize",
                   "CenterCropToFixedSize", "CenterPadToFixedSize", "Identity", "Noop"]


def _is_imgaug(augmentation):
    return type(augmentation).__module__.startswith("imgaug") and \
        hasattr(augmentation, "to_deterministic")


def _is_albumentations(augmentation):
    return type(augmentation).__module__.startswith("albumentations")


def augment_image_and_masks(image, mask, augmentation, seed=None):
    """Apply ``augmentation`` to an image and its [H, W, N] masks.

    seed: makes the random choice repeatable (imgaug and albumentations both honour it).
    Returns: (image uint8 [H', W', 3], mask bool [H', W', N]). The image keeps its
    shape for pixel-only augmenters; geometric ones may change it and the masks follow.
    """
    image_shape = image.shape
    mask_shape = mask.shape
    if _is_imgaug(augmentation):
        import imgaug

        def hook(images, augmenter, parents, default):
            """Only the augmenters in MASK_AUGMENTERS touch the masks."""
            return augmenter.__class__.__name__ in MASK_AUGMENTERS

        det = augmentation.to_deterministic()
        if seed is not None:
            det.seed_(int(seed) % (2 ** 31))
        image = det.augment_image(image)
        mask = det.augment_image(mask.astype(np.uint8),
                                 hooks=imgaug.HooksImages(activator=hook))
        mask = mask.astype(bool)
        if image.shape[:2] != mask.shape[:2]:
            raise ValueError("augmentation changed the image to {} but the masks to {}: "
                             "a geometric augmenter missing from mrcnn.augment."
                             "MASK_AUGMENTERS".format(image.shape, mask.shape))
        return image, mask
    if _is_albumentations(augmentation):
        if seed is not None:
            import random
            random.seed(int(seed))
            np.random.seed(int(seed) % (2 ** 32))
            if hasattr(augmentation, "set_random_seed"):
                augmentation.set_random_seed(int(seed) % (2 ** 32))
        masks = [mask[:, :, i].astype(np.uint8) for i in range(mask.shape[-1])]
        out = augmentation(image=image, masks=masks)
        image = out["image"]
        masks = out.get("masks", masks)
        if len(masks):
            mask = np.stack([np.asarray(m) for m in masks], axis=-1).astype(bool)
        else:
            mask = np.zeros(image.shape[:2] + (0,), dtype=bool)
        return image, mask
    if callable(augmentation):
        image, mask = augmentation(image, mask)
        return np.asarray(image), np.asarray(mask).astype(bool)
    raise TypeError("augmentation must be an imgaug augmenter, an albumentations pipeline "
                    "or a callable f(image, mask) -> (image, mask); got {!r} "
                    "(image {}, masks {})".format(augmentation, image_shape, mask_shape))
