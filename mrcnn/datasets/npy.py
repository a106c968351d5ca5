"""Per-image ``.npy`` annotation files (the torchvision target dict)::

    data/0001.jpg   data/0001.npy  ->  {"boxes": [N, 4] x1 y1 x2 y2, "labels": [N],
                                        "masks": [N, H, W] (or [H, W, N]) 0/1}

    from mrcnn.datasets import NpyDataset
    ds = NpyDataset()
    ds.load_folder("data", class_names=["cat", "dog"])   # label 1 = cat, 2 = dog
    ds.prepare()

Labels are 1-based indices into ``class_names`` (0 is the background, as in
torchvision). Boxes are not needed: Mask R-CNN derives them from the masks, but a file
whose boxes disagree with its masks by more than ``box_tolerance`` pixels is reported.
The annotation folder may differ from the image folder (``annotation_dir``).
"""
import os

import numpy as np

from ..dataset import Dataset
from ..boxes import extract_bboxes
from ._common import add_classes, image_size, list_images, wanted_ids


class NpyDataset(Dataset):
    """Images with a ``<stem>.npy`` dict of boxes, labels and masks each."""

    def load_folder(self, image_dir, class_names, annotation_dir=None, source="npy",
                    box_tolerance=None, image_ids=None):
        annotation_dir = annotation_dir or image_dir
        self.source = source
        add_classes(self, source, class_names)
        self.num_names = len(class_names)
        self.box_tolerance = box_tolerance
        missing = []
        names = list_images(image_dir)
        wanted = wanted_ids(image_ids, [os.path.splitext(n)[0] for n in names], image_dir)
        for name in names:
            stem = os.path.splitext(name)[0]
            if wanted is not None and stem not in wanted:
                continue
            ann = os.path.join(annotation_dir, stem + ".npy")
            if not os.path.isfile(ann):
                missing.append(ann)
                continue
            path = os.path.join(image_dir, name)
            h, w = image_size(path, self.exif_orientation)
            self.add_image(source, image_id=stem, path=path, annotation=ann, height=h,
                           width=w)
        if missing:
            raise FileNotFoundError("{} images have no .npy annotation, e.g. {}".format(
                len(missing), missing[:3]))

    def _read(self, path):
        try:
            data = np.load(path, allow_pickle=True)
        except (OSError, ValueError) as e:
            raise ValueError("cannot read {}: {}".format(path, e)) from None
        if isinstance(data, np.ndarray) and data.dtype == object and data.shape == ():
            data = data.item()
        if not isinstance(data, dict) or not {"labels", "masks"} <= set(data):
            raise ValueError("{} must hold a dict with 'labels' and 'masks' (and optionally "
                             "'boxes'); it holds {}".format(path, type(data).__name__))
        return data

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        data = self._read(info["annotation"])
        labels = np.asarray(data["labels"]).astype(np.int64).reshape(-1)
        masks = np.asarray(data["masks"])
        h, w = info["height"], info["width"]
        if masks.ndim == 3 and masks.shape[1:] == (h, w) and masks.shape[0] == len(labels):
            masks = np.moveaxis(masks, 0, -1)  # [N, H, W] -> [H, W, N]
        if masks.ndim != 3 or masks.shape[:2] != (h, w) or masks.shape[-1] != len(labels):
            raise ValueError("{}: masks have shape {}, expected [N, {}, {}] or [{}, {}, N] "
                             "with N = {} labels".format(info["annotation"], masks.shape, h,
                                                         w, h, w, len(labels)))
        bad = labels[(labels < 1) | (labels > self.num_names)]
        if bad.size:
            raise ValueError("{}: labels {} are outside 1..{} (class_names has {} names; 0 is "
                             "the background)".format(info["annotation"], sorted(set(bad)),
                                                      self.num_names, self.num_names))
        masks = masks > 0
        if self.box_tolerance is not None and "boxes" in data and len(labels):
            boxes = np.asarray(data["boxes"], np.float64).reshape(-1, 4)
            derived = extract_bboxes(masks)[:, [1, 0, 3, 2]]  # -> x1 y1 x2 y2
            worst = np.abs(boxes - derived).max()
            if worst > self.box_tolerance:
                raise ValueError("{}: boxes differ from the masks' extents by up to {:.0f} px"
                                 .format(info["annotation"], worst))
        return masks, labels.astype(np.int32)

    def image_reference(self, image_id):
        return self.image_info[image_id]["path"]
