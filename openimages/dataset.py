"""``OpenImagesDataset``: a downloaded subset as an ``mrcnn.utils.Dataset``.

    from openimages.dataset import OpenImagesDataset
    train = OpenImagesDataset()
    train.load_dataset("data/oi", "train", ["Person", "Car"])
    train.prepare()

Image ids are the dataset's own numeric ids (0..N-1), so ``class_ids[_idx]`` style code
works; ``image_reference`` returns the Open Images ImageID. This module imports mrcnn
(and so may be used beside TensorFlow); the downloader itself does not.
"""
import json
import os

import numpy as np
import pandas as pd
from PIL import Image

from mrcnn import utils


class OpenImagesDataset(utils.Dataset):
    """Instances from annotations.csv and the mask PNGs of a downloaded subset."""

    def load_dataset(self, dataset_dir, subset=None, class_names=None, source="openimages",
                     image_ids=None):
        """Add the images and classes of a subset.

        dataset_dir: the download folder, or its parent when ``subset`` names a sub-folder
            (e.g. "train" or "validation").
        class_names: which classes to load (default: all classes of the manifest),
            matched case-insensitively.
        image_ids: load only these Open Images ImageIDs (e.g. one part of a split).
        """
        folder = os.path.join(dataset_dir, subset) if subset and \
            os.path.isdir(os.path.join(dataset_dir, subset)) else dataset_dir
        manifest_path = os.path.join(folder, "manifest.json")
        if not os.path.exists(manifest_path):
            raise FileNotFoundError("no manifest.json in {}: download the subset there first "
                                    "(python -m openimages download ...)".format(folder))
        with open(manifest_path) as f:
            manifest = json.load(f)
        known = [c["name"] for c in manifest["classes"]]
        if class_names is None:
            class_names = known
        lookup = {k.lower(): k for k in known}
        missing = [c for c in class_names if c.lower() not in lookup]
        if missing:
            raise ValueError("classes {} are not in {} (it has {})".format(missing, folder, known))
        names = [lookup[c.lower()] for c in class_names]
        self.source = source
        for i, name in enumerate(names, start=1):
            self.add_class(source, i, name)
        ann = pd.read_csv(os.path.join(folder, "annotations.csv"), dtype={"ImageID": str})
        ann = ann[ann["ClassName"].isin(names)]
        class_index = {name: i for i, name in enumerate(names, start=1)}
        if image_ids is not None:
            wanted = {str(i) for i in image_ids}
            unknown = sorted(wanted - set(ann["ImageID"]))
            if unknown:
                raise FileNotFoundError("image ids not found in {} (for {}): {}".format(
                    folder, names, unknown[:5]))
            ann = ann[ann["ImageID"].isin(wanted)]
        for image_id, rows in ann.groupby("ImageID", sort=True):
            path = os.path.join(folder, "images", "{}.jpg".format(image_id))
            if not os.path.exists(path):
                continue
            self.add_image(source, image_id=image_id, path=path,
                           width=int(rows["Width"].iloc[0]), height=int(rows["Height"].iloc[0]),
                           masks=[os.path.join(folder, p) for p in rows["MaskPath"]],
                           class_ids=[class_index[c] for c in rows["ClassName"]])
        self.folder = folder
        self.manifest = manifest

    def load_mask(self, image_id):
        """One bool mask per instance at the image size, int32 class ids.

        Where masks overlap, the later instance keeps the pixels (the classic sample's
        occlusion handling); instances left empty are dropped.
        """
        info = self.image_info[image_id]
        h, w = info["height"], info["width"]
        masks = np.zeros((h, w, len(info["masks"])), dtype=bool)
        for k, path in enumerate(info["masks"]):
            with Image.open(path) as im:
                if im.size != (w, h):
                    im = im.resize((w, h), Image.NEAREST)
                masks[:, :, k] = np.asarray(im.convert("L")) > 0
        class_ids = np.array(info["class_ids"], dtype=np.int32)
        if masks.shape[-1]:
            occlusion = np.logical_not(masks[:, :, -1])
            for k in range(masks.shape[-1] - 2, -1, -1):
                masks[:, :, k] &= occlusion
                occlusion &= np.logical_not(masks[:, :, k])
        keep = masks.any(axis=(0, 1))
        return masks[:, :, keep], class_ids[keep]

    def image_reference(self, image_id):
        return self.image_info[image_id]["id"]
