"""VGG Image Annotator (VIA) region JSON, versions 1 and 2 (the classic balloon sample's
format)::

    balloon/train/via_region_data.json       (regions: a dict in VIA 1, a list in VIA 2,
    balloon/train/*.jpg                        or a whole VIA 2 project file)

    from mrcnn.datasets import ViaDataset
    ds = ViaDataset()
    ds.load_via("balloon/train/via_region_data.json", class_name="balloon")
    ds.prepare()

Regions may be polygons, polylines, rectangles, circles or ellipses. With several
classes, name the region attribute that holds the class: ``class_attribute="name"``
(a text attribute, or a checkbox/dropdown attribute whose true keys are the classes).
Images without regions are left out, as the classic sample did (``include_empty=True``
keeps them as images without instances). Images are only read from inside the image
folder: a filename with ``/`` or ``\\`` in it is also looked up by its base name, and an
absolute one or one climbing out with ``..`` only by its base name.
"""
import json
import logging
import os

import numpy as np
import skimage.draw

from ..dataset import Dataset
from ._common import add_classes, find_named_file, image_size, wanted_ids

log = logging.getLogger(__name__)


def read_via_json(path):
    """The per-image entries of a VIA 1 or 2 file (a list of dicts with 'filename' and
    'regions' as a list)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError("cannot read VIA annotations {}: {}".format(path, e)) from None
    if isinstance(data, dict) and "_via_img_metadata" in data:
        data = data["_via_img_metadata"]  # a VIA 2 project file
    elif isinstance(data, dict) and "project" in data and "metadata" in data:
        raise ValueError("{} is a VIA 3 project; export it from VIA 3 as 'COCO' and use "
                         "CocoDataset, or save the annotations in VIA 2 format".format(path))
    if not isinstance(data, dict):
        raise ValueError("{}: expected a VIA JSON object keyed by image".format(path))
    entries = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or "filename" not in entry:
            raise ValueError("{}: entry {!r} has no 'filename'; not a VIA region file"
                             .format(path, key))
        regions = entry.get("regions") or []
        if isinstance(regions, dict):  # VIA 1: {"0": region, "1": region}
            regions = [regions[k] for k in sorted(regions, key=lambda k: int(k)
                                                  if str(k).isdigit() else k)]
        entries.append({"filename": entry["filename"], "regions": regions})
    return entries


def region_pixels(shape, height, width):
    """(rows, cols) of a VIA region's shape_attributes, clipped to the image."""
    kind = shape.get("name")
    size = (height, width)
    if kind in ("polygon", "polyline"):
        return skimage.draw.polygon(np.asarray(shape["all_points_y"], float),
                                    np.asarray(shape["all_points_x"], float), shape=size)
    if kind == "rect":
        x, y, w, h = (float(shape[k]) for k in ("x", "y", "width", "height"))
        rr, cc = skimage.draw.rectangle((y, x), (y + h - 1, x + w - 1), shape=size)
        return rr.ravel(), cc.ravel()
    if kind == "circle":
        return skimage.draw.disk((float(shape["cy"]), float(shape["cx"])), float(shape["r"]),
                                 shape=size)
    if kind == "ellipse":
        return skimage.draw.ellipse(float(shape["cy"]), float(shape["cx"]), float(shape["ry"]),
                                    float(shape["rx"]), shape=size,
                                    rotation=-float(shape.get("theta", 0.0)))
    return None


def _region_classes(region, class_attribute):
    value = (region.get("region_attributes") or {}).get(class_attribute)
    if isinstance(value, dict):  # checkbox: {"balloon": true}
        return [k for k, v in value.items() if v]
    if value in (None, ""):
        return []
    return [str(value)]


class ViaDataset(Dataset):
    """Instances from a VIA 1/2 region JSON; images next to it (or in image_dir)."""

    def load_via(self, annotation_json, image_dir=None, class_name="object",
                 class_attribute=None, class_names=None, include_empty=False, source="via",
                 image_ids=None):
        image_dir = image_dir or os.path.dirname(os.path.abspath(annotation_json))
        entries = read_via_json(annotation_json)
        # image_ids: only these images (their filenames), e.g. one part of a split
        wanted = wanted_ids(image_ids, [e["filename"] for e in entries], annotation_json)
        if wanted is not None:
            entries = [e for e in entries if str(e["filename"]) in wanted]
        if class_attribute is None:
            names = [class_name]
        else:
            found = sorted({c for e in entries for r in e["regions"]
                            for c in _region_classes(r, class_attribute)})
            names = list(class_names) if class_names else found
            unknown = sorted(set(found) - set(names))
            if unknown:
                raise ValueError("{}: regions have classes {} that are not in class_names {}"
                                 .format(annotation_json, unknown, names))
        self.source = source
        self.class_ids_by_name = add_classes(self, source, names)
        self.class_attribute = class_attribute
        missing, outside = [], []
        for k, entry in enumerate(entries):
            if not entry["regions"] and not include_empty:
                continue
            try:
                path, escapes = find_named_file(image_dir, entry["filename"])
            except ValueError as e:
                raise ValueError("{}: entry {} has an unusable filename: {}; give the image's "
                                 "file name".format(annotation_json, k, e)) from None
            if escapes:
                outside.append(entry["filename"])
            if path is None:
                missing.append(os.path.join(image_dir, entry["filename"]) if not escapes
                               else entry["filename"])
                continue
            h, w = image_size(path, self.exif_orientation)
            self.add_image(source, image_id=entry["filename"], path=path, height=h, width=w,
                           regions=entry["regions"])
        if outside:
            log.warning("%s: %d filename(s) point outside %s (e.g. %r); only files inside "
                        "it are read, looked up by their base name", annotation_json,
                        len(outside), image_dir, outside[0])
        if missing:
            raise FileNotFoundError(
                "{} images of {} are missing, e.g. {}; pass image_dir= where they are{}"
                .format(len(missing), annotation_json, missing[:3],
                        " (images are only read from inside image_dir {}, by base name for "
                        "names that are absolute or climb out with '..')".format(image_dir)
                        if outside else ""))

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        h, w = info["height"], info["width"]
        masks, class_ids = [], []
        for k, region in enumerate(info["regions"]):
            shape = region.get("shape_attributes") or {}
            if self.class_attribute is None:
                classes = [next(iter(self.class_ids_by_name))]
            else:
                classes = _region_classes(region, self.class_attribute)
                if not classes:
                    log.warning("%s region %d has no %r attribute; left out", info["id"], k,
                                self.class_attribute)
                    continue
            pixels = region_pixels(shape, h, w)
            if pixels is None:
                log.warning("%s region %d: shape %r has no area; left out", info["id"], k,
                            shape.get("name"))
                continue
            m = np.zeros([h, w], bool)
            m[pixels] = True
            for c in classes[:1]:
                masks.append(m)
                class_ids.append(self.class_ids_by_name[c])
        if not masks:
            return np.zeros([h, w, 0], bool), np.zeros([0], np.int32)
        return np.stack(masks, axis=-1), np.array(class_ids, np.int32)

    def image_reference(self, image_id):
        return self.image_info[image_id]["path"]
