"""Augmentation of an image together with its instance masks.

``train(augmentation=...)`` accepts:
- an imgaug augmenter (the classic way): geometric augmenters (flips, affine, crops,
  ...) are applied to the masks too, pixel-only ones (blur, colour, noise) to the image
  only, exactly as the classic library did with its ``MASK_AUGMENTERS`` hook;
- an albumentations pipeline (``A.Compose([...])``): called with ``image=`` and
  ``masks=``; albumentations itself applies only spatial transforms to masks;
- any callable ``f(image, mask) -> (image, mask)`` with mask [H, W, N] bool.

Augmentation works on pixels: it is given the uint8 RGB image and must return uint8
RGB of the same channel count, with the same N masks. The network subtracts
MEAN_PIXEL itself, so ``A.Normalize``, ``A.ToFloat`` or ``ToTensorV2`` in a pipeline
is refused (ValueError naming the transform and the fix) instead of feeding it
normalised floats; so is any augmenter or callable that changes the dtype, the
channels or the number of masks. ``check_augmentation`` runs these checks once, up
front.
"""
import copy
import random
import threading

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


# albumentations transforms that turn pixels into something else, and what to do
DTYPE_CHANGING = {
    "Normalize": "remove A.Normalize: the network subtracts config.MEAN_PIXEL itself",
    "Standardize": "remove it: the network subtracts config.MEAN_PIXEL itself",
    "ToFloat": "remove A.ToFloat: the network takes uint8 0..255 pixels",
    "ToTensorV2": "remove ToTensorV2: the library feeds NumPy [H, W, 3] arrays",
    "ToTensor": "remove ToTensor: the library feeds NumPy [H, W, 3] arrays",
}


def _transforms(augmentation):
    """Every transform of an albumentations (or imgaug) tree, depth first."""
    stack = [augmentation]
    while stack:
        t = stack.pop()
        yield t
        children = getattr(t, "transforms", None)
        if children is None and _is_imgaug(t):
            children = [c for group in t.get_children_lists() for c in group]
        if children:
            stack.extend(reversed(list(children)))


def _describe(augmentation):
    name = type(augmentation).__name__
    return "albumentations pipeline" if _is_albumentations(augmentation) else \
        "imgaug augmenter {}".format(name) if _is_imgaug(augmentation) else \
        "augmentation callable {}".format(getattr(augmentation, "__name__", name))


PIXELS_FIX = ("Augmentation must return the uint8 pixels it was given: the network "
              "subtracts config.MEAN_PIXEL itself, so leave out normalisation and float "
              "conversion")


def _refuse(augmentation, problem, fix=PIXELS_FIX):
    found = [type(t).__name__ for t in _transforms(augmentation)
             if type(t).__name__ in DTYPE_CHANGING]
    if found and fix is PIXELS_FIX:
        fix = "Augmentation must return the uint8 pixels it was given: " + "; ".join(
            DTYPE_CHANGING[n] for n in dict.fromkeys(found))
        problem = "{} ({} in it)".format(problem, ", ".join(found))
    raise ValueError("{} {}. {}.".format(_describe(augmentation), problem, fix))


def check_augmentation(augmentation, image_shape=(64, 64, 3)):
    """Refuse an augmentation that would not give the network pixels, before training.

    Looks for the transforms of DTYPE_CHANGING in it (found even when they only run
    some of the time), then runs it once on a random uint8 image of ``image_shape``
    with two masks and checks what comes back as ``augment_image_and_masks`` does.
    Raises ValueError naming the transform and the fix.
    """
    if augmentation is None:
        return
    found = [type(t).__name__ for t in _transforms(augmentation)
             if type(t).__name__ in DTYPE_CHANGING]
    if found:
        _refuse(augmentation, "would change the pixels to floats or tensors")
    rng = np.random.RandomState(0)
    image = rng.randint(0, 256, size=tuple(image_shape), dtype=np.uint8)
    mask = np.zeros(tuple(image_shape[:2]) + (2,), dtype=bool)
    h, w = image_shape[:2]
    mask[h // 4:h // 2, w // 4:w // 2, 0] = True
    mask[h // 2:, w // 2:, 1] = True
    out, _ = augment_image_and_masks(image, mask, augmentation, seed=0)
    if out.shape != image.shape:
        raise ValueError("augmentation changed the image shape from {} to {}; training needs "
                         "IMAGE_SHAPE-sized images, so keep the size (e.g. "
                         "CropAndPad(keep_size=True)) or resize back".format(image.shape,
                                                                             out.shape))


def _check_output(augmentation, image_in, n_masks, image, mask):
    """What an augmentation returned: uint8 (the input's dtype), same channels, N masks
    of the image's size."""
    image = np.asarray(image)
    if image.dtype != image_in.dtype:
        detail = ""
        if image.size and image.dtype.kind in "biuf":
            detail = " with values in [{:.4g}, {:.4g}]".format(float(image.min()),
                                                               float(image.max()))
        fix = PIXELS_FIX
        if image_in.dtype == np.uint8 and image.dtype.kind == "f" and image.size and \
                image.min() >= 0 and image.max() > 1:
            fix += " (if these floats are pixels, end with np.clip(image, 0, 255).round()" \
                ".astype(np.uint8))"
        _refuse(augmentation, "returned a {} image{} from a {} one".format(
            image.dtype, detail, image_in.dtype), fix)
    if image.ndim != image_in.ndim or image.shape[-1] != image_in.shape[-1]:
        _refuse(augmentation, "returned an image of shape {} from one of shape {}".format(
            image.shape, image_in.shape), "Keep the channels: [H, W, {}]".format(
                image_in.shape[-1]))
    mask = np.asarray(mask)
    if mask.ndim != 3 or mask.shape[-1] != n_masks:
        _refuse(augmentation, "returned masks of shape {} for {} instance masks".format(
            mask.shape, n_masks), "Return one mask per instance given, in order (masks "
            "that end up empty are dropped afterwards, with their class ids)")
    if mask.shape[:2] != image.shape[:2]:
        _refuse(augmentation, "returned an image of size {} but masks of size {}".format(
            image.shape[:2], mask.shape[:2]), "Move the masks with the image")
    return image, mask


# (albumentations before Compose.set_random_seed draws from the global random modules:
# seeding those and drawing must not interleave with another loader thread's)
_GLOBAL_SEED_LOCK = threading.Lock()


def _albumentations_call(augmentation, image, masks, seed):
    """augmentation(image=..., masks=...), repeatable for a seed even when the input
    pipeline's threads augment several images at once: a seeded call runs on its own
    copy of the pipeline, seeded, so no other thread draws from its generator (seeding
    the shared pipeline let the threads' draws interleave: 21 of 40 images came out
    different from a one-thread run), and the global random state is left alone
    (except by albumentations releases without set_random_seed, which draw from it)."""
    if seed is None:
        return augmentation(image=image, masks=masks)
    if hasattr(augmentation, "set_random_state"):
        # one generator shared by every transform of the copy, as an unseeded pipeline
        # draws (set_random_seed gives each transform the same seed: two flips at
        # p=0.5 then always flip together)
        own = copy.deepcopy(augmentation)
        own.set_random_state(np.random.default_rng(int(seed) % (2 ** 32)),
                             random.Random(int(seed)))
        return own(image=image, masks=masks)
    if hasattr(augmentation, "set_random_seed"):
        own = copy.deepcopy(augmentation)
        own.set_random_seed(int(seed) % (2 ** 32))
        return own(image=image, masks=masks)
    with _GLOBAL_SEED_LOCK:
        random.seed(int(seed))
        np.random.seed(int(seed) % (2 ** 32))
        return augmentation(image=image, masks=masks)


def augment_image_and_masks(image, mask, augmentation, seed=None):
    """Apply ``augmentation`` to an image and its [H, W, N] masks.

    seed: makes the random choice repeatable (imgaug and albumentations both honour it).
    Returns: (image uint8 [H', W', 3], mask bool [H', W', N]). The image keeps its
    shape for pixel-only augmenters; geometric ones may change it and the masks follow.
    Raises ValueError when the augmentation changes the dtype (A.Normalize, ToFloat),
    the channels or the number of masks (see the module docstring).
    """
    image_in = np.asarray(image)
    image_shape = image.shape
    mask_shape = mask.shape
    n_masks = mask.shape[-1]
    if _is_imgaug(augmentation):
        import imgaug

        def hook(images, augmenter, parents, default):
            """Only the augmenters in MASK_AUGMENTERS touch the masks."""
            return augmenter.__class__.__name__ in MASK_AUGMENTERS

        det = augmentation.to_deterministic()
        if seed is not None:
            # deterministic_too: imgaug leaves a deterministic augmenter's random state
            # alone otherwise, and the seed did nothing (each call drew anew)
            det.seed_(int(seed) % (2 ** 31), deterministic_too=True)
        image = det.augment_image(image)
        # augment_images([mask]) is what augment_image(mask) runs, without its warning
        # that an array with 32 or more channels looks like a batch of images: [H, W, N]
        # masks of a crowded image (nuclei) are meant as one image of N channels.
        mask = det.augment_images([mask.astype(np.uint8)],
                                  hooks=imgaug.HooksImages(activator=hook))[0]
        image, mask = np.asarray(image), np.asarray(mask)
        if image.shape[:2] != mask.shape[:2]:
            raise ValueError("augmentation changed the image to {} but the masks to {}: "
                             "a geometric augmenter missing from mrcnn.augment."
                             "MASK_AUGMENTERS".format(image.shape, mask.shape))
        image, mask = _check_output(augmentation, image_in, n_masks, image, mask)
        return image, mask.astype(bool)
    if _is_albumentations(augmentation):
        masks = [mask[:, :, i].astype(np.uint8) for i in range(mask.shape[-1])]
        out = _albumentations_call(augmentation, image, masks, seed)
        image = np.asarray(out["image"])
        masks = out.get("masks", masks)
        if len(masks):
            mask = np.stack([np.asarray(m) for m in masks], axis=-1)
        else:
            mask = np.zeros(image.shape[:2] + (0,), dtype=bool)
        image, mask = _check_output(augmentation, image_in, n_masks, image, mask)
        return image, mask.astype(bool)
    if callable(augmentation):
        image, mask = augmentation(image, mask)
        image, mask = _check_output(augmentation, image_in, n_masks, image, mask)
        return image, mask.astype(bool)
    raise TypeError("augmentation must be an imgaug augmenter, an albumentations pipeline "
                    "or a callable f(image, mask) -> (image, mask); got {!r} "
                    "(image {}, masks {})".format(augmentation, image_shape, mask_shape))
