"""Image reading and resizing (NumPy / scikit-image).

Images are ``[height, width, channels]`` arrays; the library works on RGB uint8.
"""
import os
import random

import numpy as np
import skimage.transform


def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True,
           preserve_range=False, anti_aliasing=False, anti_aliasing_sigma=None):
    """``skimage.transform.resize`` with the library's defaults (no anti-aliasing).

    Boolean inputs are resized as float32, since skimage refuses to interpolate bools.
    """
    image = np.asarray(image)
    if image.dtype == bool and order != 0:
        image = image.astype(np.float32)
    return skimage.transform.resize(
        image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
        preserve_range=preserve_range, anti_aliasing=anti_aliasing,
        anti_aliasing_sigma=anti_aliasing_sigma)


def resize_image(image, min_dim=None, max_dim=None, min_scale=None, mode="square",
                 rng=None):
    """Resize an image, keeping its aspect ratio, as IMAGE_RESIZE_MODE says.

    image: [height, width, channels].
    min_dim: scale up so the short side is at least this long.
    max_dim: (square) the long side is at most this long; the output is max_dim x max_dim.
    min_scale: scale up at least this much (checked after min_dim).
    mode: "none", "square", "pad64" or "crop" (see Config.IMAGE_RESIZE_MODE).
    rng: optional ``random.Random`` for crop mode (default: the ``random`` module).

    Returns:
        image: the resized image, same dtype as the input.
        window: (y1, x1, y2, x2) of the image inside the padded output, y2/x2 exclusive.
        scale: the scale factor applied.
        padding: [(top, bottom), (left, right), (0, 0)] added.
        crop: (y, x, height, width) of the crop, or None.
    """
    image = np.asarray(image)
    image_dtype = image.dtype
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    scale = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None

    if mode not in ("none", "square", "pad64", "crop"):
        raise ValueError("resize_image: unknown mode {!r}; use 'none', 'square', 'pad64' "
                         "or 'crop'.".format(mode))
    if mode == "none":
        return image, window, scale, padding, crop

    scale = resize_scale(h, w, min_dim=min_dim, max_dim=max_dim, min_scale=min_scale,
                         mode=mode)
    if scale != 1:
        image = resize(image, (round(h * scale), round(w * scale)), preserve_range=True)
        if np.issubdtype(image_dtype, np.integer):
            # round, not truncate (the classic code truncated: flat areas whose float
            # value came out as 127.9999999 dropped a level, and the mean fell by 0.5)
            image = np.round(image)

    if mode == "square":
        h, w = image.shape[:2]
        top_pad = (max_dim - h) // 2
        bottom_pad = max_dim - h - top_pad
        left_pad = (max_dim - w) // 2
        right_pad = max_dim - w - left_pad
        padding = [(top_pad, bottom_pad), (left_pad, right_pad), (0, 0)]
        image = np.pad(image, padding, mode="constant", constant_values=0)
        window = (top_pad, left_pad, h + top_pad, w + left_pad)
    elif mode == "pad64":
        h, w = image.shape[:2]
        if min_dim and min_dim % 64:
            raise ValueError("resize_image: mode 'pad64' needs min_dim to be a multiple of "
                             "64, got {}".format(min_dim))
        top_pad, bottom_pad = _pad_to_64(h)
        left_pad, right_pad = _pad_to_64(w)
        padding = [(top_pad, bottom_pad), (left_pad, right_pad), (0, 0)]
        image = np.pad(image, padding, mode="constant", constant_values=0)
        window = (top_pad, left_pad, h + top_pad, w + left_pad)
    elif mode == "crop":
        h, w = image.shape[:2]
        if h < min_dim or w < min_dim:
            raise ValueError("resize_image: crop of {0}x{0} from a {1}x{2} image; set "
                             "min_dim so that the image is scaled up first".format(min_dim, h, w))
        rng = rng or random
        y = rng.randint(0, (h - min_dim))
        x = rng.randint(0, (w - min_dim))
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        window = (0, 0, min_dim, min_dim)
    return image.astype(image_dtype), window, scale, padding, crop


def resize_scale(height, width, min_dim=None, max_dim=None, min_scale=None, mode="square"):
    """The scale ``resize_image`` applies to a height x width image (1 for mode "none").

    Raises ValueError when the image has no pixels, or when a side would shrink to
    nothing (a 10000x50 image fitted into 64x64 in "square" mode), saying what to do.
    """
    if height < 1 or width < 1:
        raise ValueError("a {}x{} image has no pixels".format(height, width))
    if mode == "none":
        return 1
    scale = 1
    if min_dim:
        scale = max(1, min_dim / min(height, width))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        image_max = max(height, width)
        if round(image_max * scale) > max_dim:
            scale = max_dim / image_max
    if round(height * scale) < 1 or round(width * scale) < 1:
        raise ValueError(
            "a {}x{} image scaled by {:.4g} to fit {}x{} ({!r} mode) would be {}x{} pixels: "
            "one side vanishes. Cut the image into pieces nearer to square (or pad it) "
            "first".format(height, width, scale, max_dim, max_dim, mode,
                                      round(height * scale), round(width * scale)))
    return scale


def _pad_to_64(size):
    if size % 64 == 0:
        return 0, 0
    total = size - (size % 64) + 64 - size
    before = total // 2
    return before, total - before


# ----------------------------------------------------------------------------- pixels
#
# One conversion rule for every image the network sees: Dataset.load_image on the
# training path (pipeline.load_image_gt), MaskRCNN.detect, the samples' detect,
# ``export --check`` and the web demo all end in ``as_model_image`` / ``to_rgb_uint8``.

def pixels_to_uint8(image):
    """The pixel values of an image as uint8 0..255, by one rule per dtype.

    uint8: unchanged. bool: 0/255. uint16 (16-bit): ``value >> 8``, the high byte, which
    is what Pillow does with 16-bit RGB PNG/TIFF and keeps 8-bit values stored as
    16-bit (``v * 257``) exact. Other integers: values must already be in 0..255.
    Floats: values in [0, 1] when the largest is at most 1.0 (scaled by 255), else
    values in [0, 255]; rounded. NaN, infinity, negative values and values above 255
    raise ValueError saying what was found.
    """
    image = np.asarray(image)
    kind = image.dtype.kind
    if image.dtype == np.uint8:
        return image
    if kind == "b":
        return image.astype(np.uint8) * 255
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.size == 0:
        if kind in "iuf":
            return image.astype(np.uint8)
    if kind in "iu":
        lo, hi = int(image.min()), int(image.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                "{} pixel values range over [{}, {}]; expected 0..255 (uint8), or uint16 "
                "for 16-bit images. Scale the image to 0..255 and return uint8".format(
                    image.dtype, lo, hi))
        return image.astype(np.uint8)
    if kind == "f":
        if not np.all(np.isfinite(image)):
            raise ValueError("{} pixel values include NaN or infinite values; return RGB "
                             "uint8 (or finite floats in [0, 1] or [0, 255])".format(
                                 image.dtype))
        lo, hi = float(image.min()), float(image.max())
        top = 1.0 if hi <= 1.0 else 255.0
        if lo < -0.5 * top / 255.0 or hi > 255.5:
            raise ValueError(
                "{} pixel values range over [{:.4g}, {:.4g}]; expected floats in [0, 1] or "
                "in [0, 255] (or uint8). The network subtracts MEAN_PIXEL itself: undo any "
                "normalisation and return pixel values".format(image.dtype, lo, hi))
        return np.clip(np.round(image * (255.0 / top)), 0, 255).astype(np.uint8)
    raise ValueError("unsupported pixel dtype {}; return RGB uint8".format(image.dtype))


def to_rgb_uint8(image):
    """Convert a decoded image to RGB uint8 [H, W, 3].

    Grayscale [H, W] or [H, W, 1] is repeated to three channels; gray+alpha [H, W, 2]
    keeps the gray; RGBA [H, W, 4] drops the alpha (the classic library's rule: the
    stored colours, not a blend onto a background). Values follow ``pixels_to_uint8``
    (16-bit: high byte; floats: [0, 1] or [0, 255]). Raises ValueError saying what is
    wrong with the array.
    """
    image = np.asarray(image)
    if image.dtype == object or image.dtype.kind not in "biuf":
        raise ValueError("not an image: an array of dtype {}{}".format(
            image.dtype, "" if image.dtype != object else " (a list of arrays of different "
            "sizes?)"))
    if image.ndim == 3 and image.shape[-1] in (1, 2):  # gray, gray + alpha
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError("not an image: array of shape {}; expected [H, W] (gray), [H, W, 3] "
                         "(RGB) or [H, W, 4] (RGBA)".format(image.shape))
    if image.shape[-1] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(pixels_to_uint8(image))


def as_model_image(image, channels=3):
    """The image the network is given, by the rule training and ``detect`` share.

    channels: config.IMAGE_CHANNEL_COUNT. With 3 (RGB, the default) the image goes
    through ``to_rgb_uint8``: grayscale, RGBA, 16-bit and float images are converted,
    so ``Dataset.load_image`` may return any of them and training sees exactly what
    ``detect`` sees. With another channel count the array is used as it is (your own
    MEAN_PIXEL decides its range); it must be [H, W, channels] and finite.
    Raises ValueError saying what is wrong (the caller adds which image).
    """
    if isinstance(image, (str, bytes, os.PathLike)):
        raise ValueError("got the path {!r}, not pixels; read it with "
                         "mrcnn.utils.read_image(path)".format(os.fspath(image)))
    image = np.asarray(image)
    if image.ndim >= 2 and (image.shape[0] == 0 or image.shape[1] == 0):
        raise ValueError("the image has no pixels (shape {})".format(image.shape))
    if channels == 3:
        return to_rgb_uint8(image)
    if image.ndim == 2 and channels == 1:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[-1] != channels:
        raise ValueError("array of shape {}; IMAGE_CHANNEL_COUNT is {}, so images must be "
                         "[H, W, {}]".format(image.shape, channels, channels))
    if image.dtype.kind not in "biuf":
        raise ValueError("unsupported pixel dtype {}".format(image.dtype))
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        raise ValueError("pixel values include NaN or infinite values")
    return image


# ----------------------------------------------------------------------------- files

EXIF_ORIENTATION = 0x0112


def _orientation(im):
    """The EXIF orientation (1..8) of a PIL image, 1 when absent or unreadable."""
    try:
        value = im.getexif().get(EXIF_ORIENTATION, 1)
        value = int(value)
    except Exception:  # a broken EXIF block is no reason to refuse the pixels
        return 1
    return value if 1 <= value <= 8 else 1


def image_size(path, exif_orientation=True):
    """(height, width) of an image file from its header (no decoding), as ``read_image``
    returns it: with ``exif_orientation``, a file whose EXIF orientation turns it by 90
    degrees has height and width swapped. Raises ValueError naming the file."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            width, height = im.size
            if exif_orientation and _orientation(im) in (5, 6, 7, 8):
                width, height = height, width
    except FileNotFoundError:
        raise FileNotFoundError("image file not found: {}".format(path)) from None
    except Exception as e:  # decoders raise many different types
        raise ValueError("cannot read image {}: {}: {}. Replace or remove the file.".format(
            path, type(e).__name__, e)) from None
    return height, width


def decode_image(path, exif_orientation=True):
    """Read an image file as RGB uint8 [H, W, 3], and say what was converted.

    The one image reader of the library (``read_image`` returns its first half):
    training's ``Dataset.load_image``, the samples' detect, ``export --check`` and the
    web demo all read files through it, so they see the same pixels.

    - CMYK JPEGs (also Adobe's inverted ones) are converted by Pillow, with the right
      colours.
    - 16-bit images (grayscale or RGB, PNG or TIFF) keep their high byte (``v >> 8``);
      32-bit integer images are read the same way when their values fit in 16 bits.
    - Grayscale (1-bit, 8-bit, 16-bit) is repeated to three channels.
    - Palette images take their palette colours.
    - Alpha (RGBA, gray+alpha, palette transparency) is dropped: the stored colours
      are kept, not blended onto a background, as the classic library did.
    - Float images (32-bit TIFF) must hold values in [0, 1] or [0, 255].
    - Multi-frame files (GIF, TIFF) give their first frame.
    - EXIF orientation is applied (``exif_orientation=True``, the default): the image
      comes out as viewers, browsers and the annotation tools that run in them (Label
      Studio, CVAT, VIA, Labelme, Roboflow) show it, and as detectron2's
      ``read_image`` and OpenCV's ``imread`` return it; polygons drawn in those tools
      are in that frame. Pass False when your annotations were made on the stored
      pixels (e.g. by a script that opened the file with plain PIL); ``Dataset``
      subclasses set ``exif_orientation = False`` for the same.

    Returns: (image uint8 [H, W, 3], notes): notes is a list of what was converted,
    among "grayscale", "16-bit", "palette", "transparency", "CMYK", "float",
    "EXIF orientation".
    Raises FileNotFoundError, or ValueError naming the file when it is corrupt,
    truncated, not an image, or holds values no rule above covers.
    """
    from PIL import Image
    path = os.fspath(path)
    notes = []
    try:
        with Image.open(path) as im:
            im.load()
            orientation = _orientation(im) if exif_orientation else 1
            mode = im.mode
            if mode in ("1", "L", "LA", "La"):
                notes.append("grayscale")
                if mode != "L":
                    if mode != "1":
                        notes.append("transparency")
                    im = im.convert("L")
                array = np.asarray(im)
            elif mode.startswith("I;16") or mode == "I":
                notes += ["grayscale", "16-bit"]
                array = np.asarray(im)
                if mode == "I":
                    if array.size and (array.min() < 0 or array.max() > 65535):
                        raise _Refused("a 32-bit integer image with values in [{}, {}]; "
                                       "convert it to 8 or 16 bits".format(array.min(),
                                                                           array.max()))
                array = array.astype(np.uint16)
            elif mode == "F":
                notes += ["grayscale", "float"]
                array = np.asarray(im)
            elif mode == "RGBA":
                notes.append("transparency")
                array = np.asarray(im)[:, :, :3]
            else:
                if mode == "CMYK":
                    notes.append("CMYK")
                elif mode in ("P", "PA"):
                    notes.append("palette")
                    if mode == "PA" or "transparency" in im.info:
                        notes.append("transparency")
                array = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError("image file not found: {}".format(path)) from None
    except _Refused as e:
        raise ValueError("cannot use image {}: {}".format(path, e)) from None
    except Exception as e:  # decoders raise many different types
        raise ValueError("cannot read image {}: {}: {}. The file is corrupt, truncated or "
                         "not an image; re-download or remove it from the dataset."
                         .format(path, type(e).__name__, e)) from None
    try:
        image = to_rgb_uint8(array)
    except ValueError as e:
        raise ValueError("cannot use image {}: {}".format(path, e)) from None
    if orientation != 1:
        image = np.ascontiguousarray(_apply_orientation(image, orientation))
        notes.append("EXIF orientation")
    if not image.flags.writeable:  # Pillow's buffers are read-only; callers edit in place
        image = image.copy()
    return image, notes


class _Refused(Exception):
    pass


def _apply_orientation(image, orientation):
    """Turn stored pixels [H, W, C] into the displayed ones for an EXIF orientation."""
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    if orientation == 5:
        return image.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(image, k=-1)
    if orientation == 7:
        return image[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(image, k=1)
    return image


def read_image(path, exif_orientation=True):
    """Read an image file as RGB uint8 [H, W, 3] (see ``decode_image`` for every rule:
    CMYK, 16-bit, palette, alpha, EXIF orientation).

    Raises FileNotFoundError, or ValueError naming the file when it is missing,
    truncated or not an image.
    """
    return decode_image(path, exif_orientation=exif_orientation)[0]
