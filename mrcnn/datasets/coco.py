"""COCO-format instance annotations as a ``Dataset``.

Works with any COCO instances JSON: the official COCO files, and exports from Label
Studio ("COCO" export), CVAT ("COCO 1.0"), Roboflow, or what detectron2 users pass to
``register_coco_instances``::

    from mrcnn.datasets import CocoDataset
    train = CocoDataset()
    train.load_coco("annotations/instances_train.json", "images/")
    train.prepare()

Segmentations may be polygons, compressed RLE or uncompressed RLE (counts as a list).
Crowd annotations (``iscrowd: 1``) get a negative class id, as the classic library did.
Category ids of the file (which may start at 0, have gaps, or be any integers) map to
contiguous internal ids 1..K; ``get_source_class_id(class_id, "coco")`` maps back, which
``mrcnn.evaluate`` uses when writing results.

Annotation ids must be positive and unique for pycocotools; files whose ids start at 0
(Label Studio) or repeat are renumbered 1..N when read (``read_coco``), and
``dataset.original_annotation_id(id)`` / ``annotation_id_map`` give the file's own ids
back. ``file_name`` may use either separator (``images\\x.jpg`` from Windows exports);
images are only read from inside ``image_dir``.
"""
import contextlib
import io
import json
import logging
import os

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ..dataset import Dataset
from ._common import find_named_file

log = logging.getLogger(__name__)


def read_coco(annotation):
    """A pycocotools COCO object from a path, a dict in COCO format or a COCO object,
    without pycocotools' prints, with annotation ids pycocotools can use.

    pycocotools needs annotation ids that are positive and unique: it never matches a
    ground-truth annotation whose id is 0 (Label Studio exports number them from 0, so
    a perfect detection of that one scores as a miss: segm AP 0.995 instead of 1.000),
    and it keeps only the last of annotations that share an id. When any id is
    missing, not a positive integer, or repeated, every annotation is renumbered 1..N
    in file order; ``coco.annotation_id_map`` maps the new ids back to the file's own
    (empty when nothing was renumbered). A COCO object given in is not changed: a
    renumbered copy is returned.
    """
    if isinstance(annotation, COCO):
        data = annotation.dataset
        if not _needs_new_ids(data.get("annotations") or []):
            if not hasattr(annotation, "annotation_id_map"):
                annotation.annotation_id_map = {}
            return annotation
        data = dict(data)
    elif isinstance(annotation, dict):
        data = dict(annotation)
    else:
        path = os.fspath(annotation)
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError("COCO annotation file not found: {}".format(path)) from None
        except (OSError, ValueError) as e:
            raise ValueError("cannot read COCO annotations {}: {}".format(path, e)) from None
        if not isinstance(data, dict):
            raise ValueError("{} is not a COCO annotation file (a JSON object with 'images', "
                             "'annotations' and 'categories')".format(path))
    id_map = {}
    anns = data.get("annotations") or []
    if _needs_new_ids(anns):
        renumbered = []
        for new_id, ann in enumerate(anns, start=1):
            ann = dict(ann)
            id_map[new_id] = ann.get("id")
            ann["id"] = new_id
            renumbered.append(ann)
        data["annotations"] = renumbered
        log.info("%s: annotation ids renumbered 1..%d (pycocotools needs positive, unique "
                 "ids; the file's start at %r); annotation_id_map maps them back",
                 annotation if isinstance(annotation, (str, os.PathLike)) else "COCO data",
                 len(anns), id_map.get(1))
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    coco.annotation_id_map = id_map
    return coco


def _needs_new_ids(anns):
    seen = set()
    for ann in anns:
        i = ann.get("id")
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i <= 0 or i in seen:
            return True
        seen.add(i)
    return False


_quiet_coco = read_coco  # the old private name


class CocoDataset(Dataset):
    """A Dataset over a COCO-format annotation file."""

    def load_coco(self, annotation_json, image_dir, class_ids=None, source="coco",
                  skip_missing=False, return_coco=False, image_ids=None):
        """Add the images and classes of a COCO annotation file.

        annotation_json: path to the JSON file, a dict in COCO format, or a COCO object.
        image_dir: folder holding the images named by ``file_name`` (a ``file_name``
            with folders in it, ``/`` or Windows ``\\``, is also looked up by its base
            name). Images are only ever read from inside image_dir: an absolute
            ``file_name`` or one climbing out with ``..`` is looked up there by its base
            name (with a warning), never followed.
        class_ids: COCO category ids to load (default: all); with it, only images that
            hold one of those categories are added.
        source: the source name used in "source.id" keys.
        skip_missing: if True, images whose file is missing are skipped with a warning;
            if False (default), missing files raise FileNotFoundError listing them.
        return_coco: also return the pycocotools COCO object.
        image_ids: COCO image ids to load (default: all), e.g. one part of a split.
        """
        wanted = None if image_ids is None else [int(i) for i in image_ids]
        coco = read_coco(annotation_json)
        self.coco = coco
        self.annotation_id_map = coco.annotation_id_map
        self.coco_source = source
        self.image_dir = os.fspath(image_dir)

        all_cats = sorted(coco.getCatIds())
        if class_ids is None:
            class_ids = all_cats
        else:
            class_ids = [int(c) for c in class_ids]
            unknown = sorted(set(class_ids) - set(all_cats))
            if unknown:
                raise ValueError("load_coco: category ids {} are not in {}; the file has {}"
                                 .format(unknown, annotation_json, all_cats))
            class_ids = sorted(set(class_ids))

        if class_ids != all_cats:
            image_ids = set()
            for cid in class_ids:
                image_ids.update(coco.getImgIds(catIds=[cid]))
            image_ids = sorted(image_ids)
        else:
            image_ids = sorted(coco.imgs.keys())
        if wanted is not None:
            unknown = sorted(set(wanted) - set(coco.imgs))
            if unknown:
                raise ValueError("load_coco: image ids {} are not in {}".format(
                    unknown[:10], annotation_json))
            image_ids = [i for i in image_ids if i in set(wanted)]

        for cid in class_ids:
            self.add_class(source, cid, coco.loadCats(cid)[0]["name"])

        missing, outside = [], []
        for iid in image_ids:
            info = coco.imgs[iid]
            try:
                path, escapes = find_named_file(self.image_dir, info.get("file_name"))
            except ValueError as e:
                raise ValueError("load_coco: image id {} of {} has no usable file_name: {}"
                                 .format(iid, annotation_json, e)) from None
            if escapes:
                outside.append(info["file_name"])
            if path is None:
                missing.append(info["file_name"])
                continue
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[iid], catIds=class_ids, iscrowd=None))
            self.add_image(source, image_id=iid, path=path,
                           width=info.get("width"), height=info.get("height"),
                           annotations=anns, coco_url=info.get("coco_url"))
        if outside:
            log.warning("load_coco: %d file_name(s) in %s point outside %s (e.g. %r); only "
                        "files inside it are read, looked up by their base name",
                        len(outside), annotation_json, image_dir, outside[0])
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            message = ("load_coco: {} of {} image files named in {} are missing from {}: {}"
                       .format(len(missing), len(image_ids), annotation_json, image_dir, shown))
            if outside:
                message += (" ({} of the names point outside the folder, absolute or with "
                            "'..'; images are only read from inside it, by base name)"
                            .format(len(set(outside) & set(missing))))
            if not skip_missing:
                raise FileNotFoundError(message + ". Put the images there, point image_dir "
                                        "at them, or pass skip_missing=True to leave them out.")
            log.warning("%s (skipped)", message)
        self.missing_images = missing
        if return_coco:
            return coco

    def _find_image(self, file_name):
        """The image file for a ``file_name``, inside image_dir (see
        ``_common.find_named_file``), or None."""
        return find_named_file(self.image_dir, file_name)[0]

    def original_annotation_id(self, annotation_id):
        """The annotation id of the file for an id of ``self.coco`` (they differ when
        ``read_coco`` renumbered ids starting at 0 or repeated)."""
        return self.annotation_id_map.get(annotation_id, annotation_id)

    def load_mask(self, image_id):
        """Instance masks of an image: (bool [H, W, N], int32 class_ids [N]).

        Crowd regions get negative class ids. Annotations whose mask has no pixel are
        skipped (tiny polygons can rasterise to nothing).
        """
        info = self.image_info[image_id]
        if info["source"] != self.coco_source:
            return super().load_mask(image_id)
        height, width = self._image_size(image_id)
        masks, class_ids = [], []
        for ann in info["annotations"]:
            class_id = self.map_source_class_id("{}.{}".format(self.coco_source,
                                                               ann["category_id"]))
            m = ann_to_mask(ann, height, width)
            if m.max() < 1:
                continue
            if ann.get("iscrowd"):
                class_id *= -1
            masks.append(m.astype(bool))
            class_ids.append(class_id)
        if not masks:
            return np.zeros([height, width, 0], dtype=bool), np.zeros([0], dtype=np.int32)
        return np.stack(masks, axis=2), np.array(class_ids, dtype=np.int32)

    def _image_size(self, image_id):
        info = self.image_info[image_id]
        if info.get("height") and info.get("width"):
            return int(info["height"]), int(info["width"])
        image = self.load_image(image_id)
        info["height"], info["width"] = image.shape[:2]
        return image.shape[:2]

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        return info.get("coco_url") or info["path"]


def ann_to_rle(ann, height, width):
    """The annotation's segmentation as compressed RLE.

    Handles polygons (list of [x1, y1, x2, y2, ...]), uncompressed RLE (counts a list)
    and compressed RLE (counts a string)."""
    segm = ann["segmentation"]
    if isinstance(segm, list):
        polygons = [p for p in segm if len(p) >= 6]
        if not polygons:
            return mask_utils.encode(np.zeros((height, width), dtype=np.uint8, order="F"))
        rles = mask_utils.frPyObjects(polygons, height, width)
        return mask_utils.merge(rles)
    if isinstance(segm, dict) and isinstance(segm.get("counts"), list):
        return mask_utils.frPyObjects(segm, segm["size"][0], segm["size"][1])
    return segm


def ann_to_mask(ann, height, width):
    """The annotation's segmentation as a uint8 [height, width] mask.

    A mask whose stored size differs from (height, width) is resized with nearest
    neighbour (crowd masks of odd size: the classic library filled them instead)."""
    m = mask_utils.decode(ann_to_rle(ann, height, width))
    if m.shape != (height, width):
        from ..imageops import resize
        m = resize(m, (height, width), order=0, preserve_range=True).astype(np.uint8)
    return m


def load_coco(annotation_json, image_dir, class_ids=None, **kwargs):
    """Convenience: a prepared CocoDataset for a COCO annotation file."""
    dataset = CocoDataset()
    dataset.load_coco(annotation_json, image_dir, class_ids=class_ids, **kwargs)
    dataset.prepare()
    return dataset
