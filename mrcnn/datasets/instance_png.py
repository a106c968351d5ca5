"""Images with one instance-id mask PNG each (the PennFudan layout).

In a mask, pixel value k > 0 is instance k and 0 is the background::

    PennFudanPed/PNGImages/FudanPed00001.png
    PennFudanPed/PedMasks/FudanPed00001_mask.png

    from mrcnn.datasets import InstancePngDataset
    ds = InstancePngDataset()
    ds.load_folder("PennFudanPed/PNGImages", "PennFudanPed/PedMasks",
                   mask_name="{stem}_mask.png", class_name="pedestrian")
    ds.prepare()

Several classes: ``class_map={1: "car", 2: "person"}`` gives the class of each instance
value (the same in every image), or a callable ``class_map(image_stem, value) -> name``
(for instance reading a per-image side file). Values the map leaves out (None) are
ignored. ``class_names`` fixes the class order (default: sorted names of the map).
"""
import os

import numpy as np
from PIL import Image

from ..dataset import Dataset
from ._common import add_classes, check_mask_name, image_size, list_images, wanted_ids


def colour_mask(path):
    """The colour mode of an image file ("RGB", "RGBA", ...; read from its header), or
    None when it is a single-channel image."""
    with Image.open(path) as im:
        return im.mode if im.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV") else None


class InstancePngDataset(Dataset):
    """Instance-id mask PNGs beside an image folder."""

    def load_folder(self, image_dir, mask_dir, mask_name="{stem}_mask.png",
                    class_name="object", class_map=None, class_names=None,
                    source="instance_png", skip_missing=False, image_ids=None):
        """Add every image of ``image_dir`` that has a mask ``mask_dir/mask_name``.

        mask_name: the mask's file name, with ``{stem}`` the image name without
            extension (PennFudan: "{stem}_mask.png"; same name: "{stem}.png").
        skip_missing: leave out images without a mask (default: FileNotFoundError
            listing them).
        image_ids: load only these images (their stems), e.g. one part of a split.
        A pattern with another placeholder, or a mask folder of colour images (the image
        folder given twice), is refused here, before any mask is read.
        """
        check_mask_name(mask_name)
        if class_map is None:
            names = [class_name]
        elif callable(class_map):
            if not class_names:
                raise ValueError("a callable class_map needs class_names=[...] (the classes "
                                 "it can return, in id order)")
            names = list(class_names)
        else:
            names = list(class_names) if class_names else sorted(
                {n for n in class_map.values() if n is not None})
        self.source = source
        self.class_ids_by_name = add_classes(self, source, names)
        self.class_map = class_map
        missing = []
        names = list_images(image_dir)
        wanted = wanted_ids(image_ids, [os.path.splitext(n)[0] for n in names], image_dir)
        for name in names:
            stem = os.path.splitext(name)[0]
            if wanted is not None and stem not in wanted:
                continue
            mask_path = os.path.join(mask_dir, mask_name.format(stem=stem))
            if not os.path.isfile(mask_path):
                missing.append(mask_path)
                continue
            colour = colour_mask(mask_path)
            if colour:
                raise ValueError(
                    "{} is a colour image ({}): an instance mask is one channel of instance "
                    "ids (0 = background, k = instance k; PIL mode L, P or I). Is {} the "
                    "image folder rather than the masks?".format(mask_path, colour, mask_dir))
            path = os.path.join(image_dir, name)
            h, w = image_size(path, self.exif_orientation)
            self.add_image(source, image_id=stem, path=path, mask_path=mask_path,
                           height=h, width=w)
        if missing and not skip_missing:
            raise FileNotFoundError(
                "{} images have no mask, e.g. {} (mask_name={!r}); fix mask_name or pass "
                "skip_missing=True".format(len(missing), missing[:3], mask_name))

    def _class_of(self, stem, value):
        if self.class_map is None:
            return next(iter(self.class_ids_by_name))
        name = self.class_map(stem, value) if callable(self.class_map) \
            else self.class_map.get(value)
        if name is not None and name not in self.class_ids_by_name:
            raise ValueError("class_map gave {!r} for value {} of {}, which is not in "
                             "class_names {}".format(name, value, stem,
                                                     list(self.class_ids_by_name)))
        return name

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        with Image.open(info["mask_path"]) as im:
            if im.mode in ("RGB", "RGBA"):
                raise ValueError("{} is a colour image; an instance mask must be a single "
                                 "channel of instance ids (mode L, P or I)".format(
                                     info["mask_path"]))
            ids = np.asarray(im)
        values = [int(v) for v in np.unique(ids) if v != 0]
        masks, class_ids = [], []
        for v in values:
            name = self._class_of(info["id"], v)
            if name is None:
                continue
            masks.append(ids == v)
            class_ids.append(self.class_ids_by_name[name])
        if not masks:
            return np.zeros(ids.shape[:2] + (0,), bool), np.zeros([0], np.int32)
        return np.stack(masks, axis=-1), np.array(class_ids, np.int32)

    def image_reference(self, image_id):
        return self.image_info[image_id]["path"]
