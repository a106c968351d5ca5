"""Helpers the folder loaders share."""
import os

from .. import imageops

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder, what="images"):
    """Sorted image files of a folder; FileNotFoundError naming it when there are none."""
    if not os.path.isdir(folder):
        raise FileNotFoundError("{} folder not found: {}".format(what, folder))
    files = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)
                   and not n.startswith("."))
    if not files:
        raise FileNotFoundError("no {} ({}) in {}".format(what, ", ".join(IMAGE_EXTENSIONS),
                                                         folder))
    return files


def image_size(path, exif_orientation=True):
    """(height, width) from the file header, without decoding the pixels, as
    ``read_image`` will return it (EXIF orientation applied unless told not to)."""
    return imageops.image_size(path, exif_orientation=exif_orientation)


def add_classes(dataset, source, names):
    """Register class names 1..K for ``source``; returns {name: id}."""
    ids = {}
    for i, name in enumerate(names, start=1):
        dataset.add_class(source, i, name)
        ids[name] = i
    return ids

