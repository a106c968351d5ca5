"""Helpers the folder loaders share."""
import os
import posixpath
import re

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


def find_named_file(folder, name):
    """Where a file named by an annotation file (a COCO ``file_name``, a VIA
    ``filename``) is read from. Always inside ``folder``: never a path outside it.

    name: as the annotation tool wrote it, with ``/`` or ``\\`` (Windows exports, e.g.
    Label Studio's ``images\\x.jpg``). A relative name is looked up as given, then by its
    base name (``images/x.jpg`` -> ``folder/x.jpg``). A name that is absolute, has a
    drive letter, or climbs out of the folder with ``..`` is looked up by its base name
    only, inside the folder.

    Returns: (path or None when no such file is in the folder, outside), outside being
    True when the name pointed outside the folder.
    Raises ValueError when name is not a non-empty string.
    """
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise ValueError("{!r} is not a file name".format(name))
    posix = name.replace("\\", "/")
    base = posixpath.basename(posix.rstrip("/"))
    outside = posix.startswith("/") or bool(re.match(r"^[A-Za-z]:", posix))
    candidates = []
    if not outside:
        relative = posixpath.normpath(posix)
        if relative == ".." or relative.startswith("../"):
            outside = True
        else:
            candidates.append(os.path.join(folder, *relative.split("/")))
    if base not in ("", ".", ".."):
        candidates.append(os.path.join(folder, base))
    for path in candidates:
        if os.path.isfile(path):
            return path, outside
    return None, outside
