"""Export a downloaded subset (annotations.csv + masks) to COCO instance JSON, so it
works with pycocotools, with mrcnn's COCO loader and with any COCO tool."""
import json
import os

import numpy as np
import pandas as pd
from PIL import Image
from pycocotools import mask as mask_utils


def export_coco(subset_dir, out_json=None):
    """Write COCO JSON for the subset in subset_dir (default: subset_dir/coco.json).

    Images are numbered 1..N in ImageID order, categories 1..K in the order of the
    manifest's classes; segmentations are compressed RLE. Returns the path.
    """
    ann = pd.read_csv(os.path.join(subset_dir, "annotations.csv"), dtype={"ImageID": str})
    with open(os.path.join(subset_dir, "manifest.json")) as f:
        manifest = json.load(f)
    classes = [c["name"] for c in manifest["classes"]]
    cat_ids = {name: i + 1 for i, name in enumerate(classes)}
    images, annotations = [], []
    for n, (image_id, rows) in enumerate(ann.groupby("ImageID", sort=True), start=1):
        width, height = int(rows["Width"].iloc[0]), int(rows["Height"].iloc[0])
        images.append({"id": n, "file_name": "{}.jpg".format(image_id), "width": width,
                       "height": height, "open_images_id": image_id})
        for _, r in rows.iterrows():
            with Image.open(os.path.join(subset_dir, r["MaskPath"])) as im:
                m = np.asarray(im.convert("L")) > 0
            if not m.any():
                continue
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            x, y, w, h = [float(v) for v in mask_utils.toBbox(rle)]
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append({"id": len(annotations) + 1, "image_id": n,
                                "category_id": cat_ids[r["ClassName"]], "segmentation": rle,
                                "area": int(m.sum()), "bbox": [x, y, w, h], "iscrowd": 0})
    data = {"info": {"description": "Open Images V5 {} subset".format(manifest["split"])},
            "images": images, "annotations": annotations,
            "categories": [{"id": i, "name": name} for name, i in cat_ids.items()]}
    out_json = out_json or os.path.join(subset_dir, "coco.json")
    with open(out_json + ".part", "w") as f:
        json.dump(data, f)
    os.replace(out_json + ".part", out_json)
    return out_json
