"""The name forms of Open Images V5, checked before a name from remote metadata becomes
part of a path (the metadata and mask URLs are options, so a mirror may serve anything).

    ImageID    16 lowercase hex digits                 000cc62f167d9fa4
    MaskPath   <ImageID>_<mid>_<BoxID>.png             000cc62f167d9fa4_m0663v_37f318a2.png
               mid: the class MID without slashes, "m0" then lowercase letters, digits
               or "_" (/m/01_5g -> m01_5g); BoxID: 8 lowercase hex digits

Each check returns None for a good name, else why it is refused (one line).
"""
import os
import re

IMAGE_ID = re.compile(r"[0-9a-f]{16}")
MASK_PATH = re.compile(r"([0-9a-f]{16})_m0[0-9a-z_]+_[0-9a-f]{8}\.png")


def check_image_id(image_id):
    if not isinstance(image_id, str) or not IMAGE_ID.fullmatch(image_id):
        return "ImageID {!r} is not 16 lowercase hex digits".format(image_id)
    return None


def check_mask_path(mask_path, image_id):
    if not isinstance(mask_path, str):
        return "MaskPath {!r} is not a name".format(mask_path)
    m = MASK_PATH.fullmatch(mask_path)
    if not m:
        return "MaskPath {!r} is not <ImageID>_<mid>_<8 hex>.png".format(mask_path)
    if m.group(1) != image_id:
        return "MaskPath {!r} does not start with its row's ImageID {!r}".format(
            mask_path, image_id)
    return None


def inside(folder, name):
    """folder/name, refusing (ValueError) a name that would land outside folder: the last
    guard before a write, behind the checks above."""
    root = os.path.abspath(folder)
    path = os.path.normpath(os.path.join(root, name))
    if not name or os.path.isabs(name) or os.path.dirname(path) != root or "\0" in name:
        raise ValueError("refusing to write {!r}: the name must be a plain file name inside "
                         "{}".format(name, folder))
    return os.path.join(folder, name)
