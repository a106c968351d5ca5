"""Tiny datasets in the five layouts ``mrcnn train --format`` reads, written by the tests.

Every image is 64x64 with one square (class "square") and one disk (class "disk") on a
plain background; the layouts with one class per dataset call both "blob". Six images
per dataset, so that a 1/6 validation and a 1/6 test split leave four for training.
"""
import json
import os

import numpy as np
from PIL import Image

from tiny_configs import TinyShapesConfig

SIZE = 64
COUNT = 6


def shapes(k):
    """(image uint8 [64, 64, 3], [(class name, bool mask [64, 64])]) for image k."""
    rng = np.random.RandomState(k)
    image = np.zeros([SIZE, SIZE, 3], np.uint8)
    image[:] = rng.randint(0, 80, 3)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    y, x = 8 + rng.randint(0, 10), 6 + rng.randint(0, 10)
    square = (yy >= y) & (yy < y + 18) & (xx >= x) & (xx < x + 18)
    cy, cx = 42 + rng.randint(0, 6), 40 + rng.randint(0, 8)
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= 10 ** 2
    image[square] = (220, 60, 60)
    image[disk] = (60, 200, 220)
    return image, [("square", square), ("disk", disk)]


def stems():
    return ["img{:02d}".format(k) for k in range(COUNT)]


def _save_images(folder):
    os.makedirs(folder, exist_ok=True)
    out = []
    for k, stem in enumerate(stems()):
        image, objects = shapes(k)
        Image.fromarray(image).save(os.path.join(folder, stem + ".png"))
        out.append((stem, objects))
    return out


def _polygon(mask):
    """The outline of a square mask as a COCO / VIA polygon (x, y corners)."""
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


def _inclusive(mask):
    """The corners of a square mask as its first and last pixels (VIA, skimage)."""
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


def write_coco(root):
    """COCO JSON whose category ids AND annotation ids start at 0; squares as polygons,
    disks as uncompressed RLE. Returns the JSON path (images in images/ beside it)."""
    from pycocotools import mask as mask_utils
    objects = _save_images(os.path.join(root, "images"))
    images, annotations = [], []
    categories = [{"id": 0, "name": "square"}, {"id": 1, "name": "disk"}]
    for image_id, (stem, objs) in enumerate(objects):
        images.append({"id": image_id, "file_name": stem + ".png", "height": SIZE,
                       "width": SIZE})
        for name, mask in objs:
            ys, xs = np.nonzero(mask)
            ann = {"id": len(annotations), "image_id": image_id,
                   "category_id": 0 if name == "square" else 1, "iscrowd": 0,
                   "area": int(mask.sum()),
                   "bbox": [int(xs.min()), int(ys.min()), int(xs.ptp() + 1),
                            int(ys.ptp() + 1)]}
            if name == "square":
                ann["segmentation"] = [[float(v) for xy in _polygon(mask) for v in xy]]
            else:
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                ann["segmentation"] = {"size": [SIZE, SIZE],
                                       "counts": rle["counts"].decode("ascii")}
            annotations.append(ann)
    path = os.path.join(root, "annotations.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return path


def write_via(root):
    """VIA 2 region JSON (via_region_data.json beside the images), class in the region
    attribute "shape"; squares as polygons, disks as circles."""
    objects = _save_images(root)
    data = {}
    for stem, objs in objects:
        regions = []
        for name, mask in objs:
            if name == "square":  # VIA rasterises the vertices' pixels too
                corners = _inclusive(mask)
                shape = {"name": "polygon", "all_points_x": [int(x) for x, _ in corners],
                         "all_points_y": [int(y) for _, y in corners]}
            else:
                ys, xs = np.nonzero(mask)
                shape = {"name": "circle", "cx": float(xs.mean()), "cy": float(ys.mean()),
                         "r": 10.0}
            regions.append({"shape_attributes": shape, "region_attributes": {"shape": name}})
        size = os.path.getsize(os.path.join(root, stem + ".png"))
        data["{}.png{}".format(stem, size)] = {"filename": stem + ".png", "size": size,
                                               "regions": regions, "file_attributes": {}}
    path = os.path.join(root, "via_region_data.json")
    with open(path, "w") as f:
        json.dump(data, f)
    return path


def write_instance_png(root):
    """images/<stem>.png and masks/<stem>_mask.png (instance 1 the square, 2 the disk)."""
    objects = _save_images(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "masks"))
    for stem, objs in objects:
        ids = np.zeros([SIZE, SIZE], np.uint8)
        for value, (_, mask) in enumerate(objs, start=1):
            ids[mask] = value
        Image.fromarray(ids).save(os.path.join(root, "masks", stem + "_mask.png"))
    return os.path.join(root, "images"), os.path.join(root, "masks")


def write_mask_folders(root):
    """<stem>/images/<stem>.png and <stem>/masks/<k>.png, one binary PNG per instance."""
    for k, stem in enumerate(stems()):
        image, objs = shapes(k)
        os.makedirs(os.path.join(root, stem, "images"))
        os.makedirs(os.path.join(root, stem, "masks"))
        Image.fromarray(image).save(os.path.join(root, stem, "images", stem + ".png"))
        for j, (_, mask) in enumerate(objs):
            Image.fromarray(mask.astype(np.uint8) * 255).save(
                os.path.join(root, stem, "masks", "{}.png".format(j)))
    return root


def write_npy(root):
    """<stem>.png with <stem>.npy = {"boxes", "labels" (1 square, 2 disk), "masks" [N, H, W]}."""
    objects = _save_images(root)
    for stem, objs in objects:
        masks = np.stack([m for _, m in objs]).astype(np.uint8)
        labels = np.array([1 if n == "square" else 2 for n, _ in objs])
        boxes = []
        for m in masks:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        np.save(os.path.join(root, stem + ".npy"),
                {"boxes": np.array(boxes, np.float32), "labels": labels, "masks": masks})
    return root


def write_openimages(root, split="train"):
    """A folder as ``python -m openimages`` writes it: manifest.json, annotations.csv,
    images/<ImageID>.jpg and one mask PNG per instance in masks/."""
    import csv
    folder = os.path.join(root, split)
    os.makedirs(os.path.join(folder, "images"))
    os.makedirs(os.path.join(folder, "masks"))
    rows = []
    for k, stem in enumerate(stems()):
        image, objs = shapes(k)
        image_id = "{:016x}".format(k + (100 if split != "train" else 0))
        Image.fromarray(image).save(os.path.join(folder, "images", image_id + ".jpg"),
                                    quality=95)
        for j, (name, mask) in enumerate(objs):
            mask_path = os.path.join("masks", "{}_{}.png".format(image_id, j))
            Image.fromarray(mask.astype(np.uint8) * 255).save(os.path.join(folder, mask_path))
            rows.append([image_id, name.capitalize(), mask_path, SIZE, SIZE])
    with open(os.path.join(folder, "annotations.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageID", "ClassName", "MaskPath", "Width", "Height"])
        w.writerows(rows)
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump({"classes": [{"name": "Square"}, {"name": "Disk"}]}, f)
    return folder


def write_layout(name, root):
    """(the --format options for ``mrcnn``, class names without BG) of layout ``name``
    written under ``root``."""
    root = str(root)
    if name == "coco":
        return ["--format", "coco", "--dataset", write_coco(root)], ["square", "disk"]
    if name == "via":
        write_via(root)
        return (["--format", "via", "--dataset", root, "--class-attribute", "shape",
                 "--classes", "square,disk"], ["square", "disk"])
    if name == "instance-png":
        images, masks = write_instance_png(root)
        return (["--format", "instance-png", "--dataset", images, "--masks", masks,
                 "--mask-name", "{stem}_mask.png", "--class-map", "1=square,2=disk",
                 "--classes", "square,disk"], ["square", "disk"])
    if name == "mask-folders":
        return (["--format", "mask-folders", "--dataset", write_mask_folders(root),
                 "--classes", "blob"], ["blob"])
    if name == "npy":
        return (["--format", "npy", "--dataset", write_npy(root), "--classes", "square,disk"],
                ["square", "disk"])
    if name == "openimages":
        write_openimages(root, "train")
        write_openimages(root, "validation")
        return ["--format", "openimages", "--dataset", root], ["Square", "Disk"]
    raise ValueError(name)


LAYOUTS = ("coco", "via", "instance-png", "mask-folders", "npy")



class CliTinyConfig(TinyShapesConfig):
    """The config the CLI tests train with (``--config cli_layouts:CliTinyConfig``):
    64 px, the small backbone, one image per step, one step and one validation step per
    epoch, and a learning rate no other config uses (to see where it ends up)."""
    NAME = "clitiny"
    IMAGES_PER_GPU = 1
    STEPS_PER_EPOCH = 1
    VALIDATION_STEPS = 1
    LEARNING_RATE = 0.0125
