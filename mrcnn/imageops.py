"""Image reading and resizing (NumPy / scikit-image).

Images are ``[height, width, channels]`` arrays; the library works on RGB uint8.
"""
import random
import warnings

import numpy as np
import skimage.color
import skimage.io
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

    if min_dim:
        scale = max(1, min_dim / min(h, w))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        image_max = max(h, w)
        if round(image_max * scale) > max_dim:
            scale = max_dim / image_max

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


def _pad_to_64(size):
    if size % 64 == 0:
        return 0, 0
    total = size - (size % 64) + 64 - size
    before = total // 2
    return before, total - before


def to_rgb_uint8(image):
    """Convert a decoded image to RGB uint8 [H, W, 3].

    Handles grayscale [H, W] or [H, W, 1], gray+alpha [H, W, 2], RGBA (alpha dropped),
    16-bit (scaled by 1/257), and float images in [0, 1].
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[-1] == 2:  # gray + alpha
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError("not an image: array of shape {}".format(image.shape))
    if image.shape[-1] == 4:
        image = image[:, :, :3]
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == np.uint16:
        return (image.astype(np.uint32) // 257).astype(np.uint8)
    if image.dtype == bool:
        return image.astype(np.uint8) * 255
    if image.dtype.kind == "f":
        top = 1.0 if image.size == 0 or np.nanmax(image) <= 1.0 else 255.0
        return np.clip(np.round(image / top * 255.0), 0, 255).astype(np.uint8)
    if image.dtype.kind in "iu":
        top = np.iinfo(image.dtype).max if image.max() > 255 else 255
        return np.clip(image.astype(np.float64) / top * 255.0, 0, 255).round().astype(np.uint8)
    raise ValueError("unsupported image dtype {}".format(image.dtype))


def read_image(path):
    """Read an image file as RGB uint8 [H, W, 3].

    Raises ValueError naming the file when it is missing, truncated or not an image.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = skimage.io.imread(path)
    except FileNotFoundError:
        raise FileNotFoundError("image file not found: {}".format(path)) from None
    except Exception as e:  # decoders raise many different types
        raise ValueError("cannot read image {}: {}: {}. The file is corrupt, truncated or "
                         "not an image; re-download or remove it from the dataset."
                         .format(path, type(e).__name__, e)) from None
    image = np.asarray(image)
    if image.dtype == object or image.ndim < 2:
        raise ValueError("cannot read image {}: the decoder returned no pixel array; the "
                         "file is corrupt or not an image.".format(path))
    if image.ndim == 4:  # animated GIF / multi-page TIFF: take the first frame
        image = image[0]
    return to_rgb_uint8(image)
