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


def wanted_ids(image_ids, found, where):
    """The set of ``image_ids`` to load (None: all), after checking that each is among
    ``found`` (the ids the folder or file has); FileNotFoundError naming the unknown ones.
    A split of a dataset (``mrcnn.datasets.split``) passes its ids here."""
    if image_ids is None:
        return None
    wanted = {str(i) for i in image_ids}
    unknown = sorted(wanted - {str(f) for f in found})
    if unknown:
        raise FileNotFoundError("image ids not found in {}: {}{}".format(
            where, unknown[:5], " ..." if len(unknown) > 5 else ""))
    return wanted


def check_mask_name(mask_name, fields=("stem",)):
    """Refuse a mask-name pattern with a placeholder other than ``fields`` (a typo such
    as ``{name}`` would only fail at the first load_mask otherwise)."""
    import string
    try:
        used = [f for _, f, _, _ in string.Formatter().parse(mask_name) if f is not None]
    except ValueError as e:
        raise ValueError("mask_name {!r} is not a valid pattern ({}); write the image's name "
                         "as {{stem}}, e.g. '{{stem}}_mask.png'".format(mask_name, e)) from None
    unknown = [f for f in used if f not in fields]
    if unknown:
        raise ValueError("mask_name {!r} has the placeholder {{{}}}, which is not known; the "
                         "only one is {{stem}} (the image's file name without extension), "
                         "e.g. '{{stem}}_mask.png' or '{{stem}}.png'".format(mask_name,
                                                                           unknown[0]))


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
