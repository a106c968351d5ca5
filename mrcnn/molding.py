"""Image molding and image meta data (NumPy side of the input pipeline).

A *molded* image is resized and padded as the config says, then has MEAN_PIXEL
subtracted (so padding ends up at -MEAN_PIXEL). The *image meta* vector travels with
each image through the network; IMAGE_META_LAYOUT below is its one definition, read by
``parse_image_meta`` here and ``graph_ops.parse_image_meta_graph`` in the network:

    [image_id, original_image_shape (3), image_shape (3), window (4, y1, x1, y2, x2 in
     image_shape pixels), scale, active_class_ids (NUM_CLASSES)]
"""
import numpy as np

from .imageops import resize_image

# Where each field sits in the image meta vector: an index (one number) or a slice.
IMAGE_META_LAYOUT = {
    "image_id": 0,
    "original_image_shape": slice(1, 4),
    "image_shape": slice(4, 7),
    "window": slice(7, 11),
    "scale": 11,
    "active_class_ids": slice(12, None),
}
# The length of the meta vector without active_class_ids (which has NUM_CLASSES values).
IMAGE_META_FIXED_SIZE = 12
_META_DTYPES = {"image_id": np.int32, "original_image_shape": np.int32,
                "image_shape": np.int32, "window": np.int32, "scale": np.float32,
                "active_class_ids": np.int32}


def image_meta_size(num_classes):
    """The length of the image meta vector for a model of ``num_classes`` classes."""
    return IMAGE_META_FIXED_SIZE + int(num_classes)


def compose_image_meta(image_id, original_image_shape, image_shape, window, scale,
                       active_class_ids):
    """Pack the image attributes into one 1-D array (see the module docstring).

    image_id: int; original_image_shape: [H, W, C] before resizing/padding;
    image_shape: [H, W, C] after; window: (y1, x1, y2, x2) of the real image inside the
    padded one; scale: the resize factor; active_class_ids: [NUM_CLASSES] 1/0 flags of
    the classes of the image's source dataset.
    """
    return np.array(
        [image_id] +
        list(original_image_shape) +
        list(image_shape) +
        list(window) +
        [scale] +
        list(active_class_ids)
    )


def parse_image_meta(meta):
    """Unpack image meta arrays [batch, meta length] into a dict of arrays (the fields
    of IMAGE_META_LAYOUT; int32, scale float32)."""
    meta = np.asarray(meta)
    return {name: meta[:, where].astype(_META_DTYPES[name])
            for name, where in IMAGE_META_LAYOUT.items()}


def mold_image(images, config):
    """Subtract the mean pixel (and divide by PIXEL_STD when set) and cast to float32.
    images: [..., H, W, C] RGB."""
    molded = images.astype(np.float32) - config.MEAN_PIXEL
    std = getattr(config, "PIXEL_STD", None)
    if std is not None:
        molded = molded / np.asarray(std)
    return molded.astype(np.float32)


def unmold_image(normalized_images, config):
    """Undo ``mold_image``: add the mean pixel back, as uint8."""
    std = getattr(config, "PIXEL_STD", None)
    if std is not None:
        normalized_images = normalized_images * np.asarray(std)
    return (normalized_images + config.MEAN_PIXEL).astype(np.uint8)


def mold_inputs(images, config):
    """Resize, pad and normalise a list of images for the network.

    images: list of [H, W, 3] images (any size; RGB).
    Returns:
        molded_images: float32 [N, h, w, 3].
        image_metas: [N, IMAGE_META_SIZE].
        windows: int32 [N, (y1, x1, y2, x2)] of the real image in each molded image.
    """
    molded_images, image_metas, windows = [], [], []
    for image in images:
        molded, window, scale, padding, crop = resize_image(
            image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
            max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
        molded = mold_image(molded, config)
        meta = compose_image_meta(0, image.shape, molded.shape, window, scale,
                                  np.zeros([config.NUM_CLASSES], dtype=np.int32))
        molded_images.append(molded)
        windows.append(window)
        image_metas.append(meta)
    shapes = {m.shape for m in molded_images}
    if len(shapes) > 1:
        raise ValueError("mold_inputs: images molded to different sizes {}; with "
                         "IMAGE_RESIZE_MODE={!r} pass images of one size per call"
                         .format(sorted(shapes), config.IMAGE_RESIZE_MODE))
    return (np.stack(molded_images).astype(np.float32), np.stack(image_metas),
            np.array(windows, dtype=np.int32))
