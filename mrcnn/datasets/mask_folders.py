"""One binary PNG per instance (the nucleus / DSB2018 layout)::

    stage1_train/<id>/images/<id>.png
    stage1_train/<id>/masks/<anything>.png     one per instance, 0 / 255

    from mrcnn.datasets import MaskFolderDataset
    ds = MaskFolderDataset()
    ds.load_folder("stage1_train", class_name="nucleus")
    ds.prepare()

``image_ids`` picks a subset of the sample folders (e.g. a validation split).
Several classes: ``class_of=lambda mask_file: "a" if mask_file.startswith("a_") else "b"``
with ``class_names=["a", "b"]``.
"""
import os

import numpy as np
from PIL import Image

from ..dataset import Dataset
from ._common import add_classes, image_size, list_images


class MaskFolderDataset(Dataset):
    """Folders of ``images/`` and ``masks/``, one folder per image."""

    def load_folder(self, root, class_name="object", image_ids=None, class_of=None,
                    class_names=None, source="mask_folders"):
        if not os.path.isdir(root):
            raise FileNotFoundError("dataset folder not found: {}".format(root))
        if class_of is not None and not class_names:
            raise ValueError("class_of needs class_names=[...] (the classes it returns)")
        names = list(class_names) if class_of is not None else [class_name]
        self.source = source
        self.class_ids_by_name = add_classes(self, source, names)
        self.class_of = class_of
        folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        if image_ids is not None:
            unknown = sorted(set(image_ids) - set(folders))
            if unknown:
                raise FileNotFoundError("image ids not found under {}: {}".format(
                    root, unknown[:5]))
            folders = [d for d in folders if d in set(image_ids)]
        for sample in folders:
            image_dir = os.path.join(root, sample, "images")
            mask_dir = os.path.join(root, sample, "masks")
            if not os.path.isdir(image_dir):
                continue
            image_name = list_images(image_dir)[0]
            mask_files = list_images(mask_dir, "masks") if os.path.isdir(mask_dir) else []
            path = os.path.join(image_dir, image_name)
            h, w = image_size(path, self.exif_orientation)
            self.add_image(source, image_id=sample, path=path, height=h, width=w,
                           mask_paths=[os.path.join(mask_dir, m) for m in mask_files])
        if not self.image_info:
            raise FileNotFoundError("no <id>/images/<image> folders under {}".format(root))

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        masks = np.zeros([info["height"], info["width"], len(info["mask_paths"])], bool)
        class_ids = np.zeros([len(info["mask_paths"])], np.int32)
        for k, path in enumerate(info["mask_paths"]):
            with Image.open(path) as im:
                m = np.asarray(im.convert("L")) > 0
            if m.shape != masks.shape[:2]:
                raise ValueError("mask {} is {}x{} but its image is {}x{}".format(
                    path, m.shape[1], m.shape[0], info["width"], info["height"]))
            masks[:, :, k] = m
            name = self.class_of(os.path.basename(path)) if self.class_of else \
                next(iter(self.class_ids_by_name))
            class_ids[k] = self.class_ids_by_name[name]
        return masks, class_ids

    def image_reference(self, image_id):
        return self.image_info[image_id]["id"]
