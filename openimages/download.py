"""Download a class-filtered Open Images V5 subset: images plus only the masks needed.

    from openimages.download import download
    manifest = download(["Person", "Car"], split="validation", out_dir="data/oi",
                        limit_per_class=100)

Output layout (``out_dir``):

    images/<ImageID>.jpg          the images (from the S3 bucket)
    masks/<MaskPath>              instance masks (PNG), resized to their image's size
    annotations.csv               one row per instance: ImageID, ClassName, LabelName
                                  (the requested class's MID), SourceLabelName (the MID
                                  in the file, e.g. a subclass), BoxID, box (normalised
                                  and pixels), MaskPath (relative to out_dir), width, height
    manifest.json                 classes, MIDs, split, counts, bytes, shortfalls, images
                                  with boxes but no masks, skipped items
    .cache/                       metadata files and zip indexes, reused by later runs

A re-run skips images and masks already complete and verified, so an interrupted run
resumes. This module does not import TensorFlow.
"""
import hashlib
import io
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np
import pandas as pd
import requests
from PIL import Image

from . import metadata as md
from .classes import ClassCatalog
from .rangezip import RemoteZip

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """Something could not be downloaded after retries; the message names it."""


def _bar(total, desc, enabled):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="file", disable=not enabled)


def verify_jpeg(path):
    """True when the file is a complete image (decodes fully; JPEG ends with FFD9)."""
    try:
        if os.path.getsize(path) < 4:
            return False
        with open(path, "rb") as f:
            head = f.read(3)
            f.seek(-2, os.SEEK_END)
            tail = f.read(2)
        if head[:3] == b"\xff\xd8\xff" and tail != b"\xff\xd9":
            return False
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


def verify_png(path):
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


def _atomic_write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "{}.part-{}".format(path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def make_s3_client(endpoint_url=None, max_attempts=5):
    """An unsigned boto3 S3 client (the bucket is public), with standard retries."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config as BotoConfig
    config = BotoConfig(signature_version=UNSIGNED,
                        retries={"max_attempts": max_attempts, "mode": "standard"},
                        max_pool_connections=64)
    return boto3.client("s3", endpoint_url=endpoint_url, config=config,
                        region_name="us-east-1")


class Downloader(object):
    """The subset downloader (see the module docstring).

    classes: class names (exact, case-insensitive) or MIDs.
    split: "train", "validation" or "test".
    limit_per_class: images per requested class (None: all).
    subclasses: expand classes through the hierarchy's Subcategory links.
    seed: makes the image selection repeatable.
    metadata_url, masks_url: base URLs (the official ones by default).
    s3_endpoint, bucket: where the images are (the official bucket by default).
    workers: parallel downloads. with_boxes: also read the box CSV to report boxes of
    the wanted classes that have no mask. progress: show progress bars.
    """

    def __init__(self, classes, split, out_dir, limit_per_class=None, subclasses=True,
                 seed=0, metadata_url=md.DEFAULT_METADATA_URL, masks_url=md.DEFAULT_MASKS_URL,
                 s3_endpoint=None, bucket=md.DEFAULT_BUCKET, workers=16, with_boxes=False,
                 progress=True, retries=4, session=None):
        if split not in md.SPLITS:
            raise ValueError("split {!r}: use one of {}".format(split, ", ".join(md.SPLITS)))
        if not classes:
            raise ValueError("give at least one class name or MID")
        self.classes = list(classes)
        self.split = split
        self.out_dir = os.fspath(out_dir)
        self.limit = limit_per_class
        self.subclasses = subclasses
        self.seed = seed
        self.metadata_url = metadata_url.rstrip("/")
        self.masks_url = masks_url.rstrip("/")
        self.s3_endpoint = s3_endpoint
        self.bucket = bucket
        self.workers = max(1, int(workers))
        self.with_boxes = with_boxes
        self.progress = progress
        self.retries = retries
        self.session = session or requests.Session()
        adapter = requests.adapters.HTTPAdapter(
            pool_maxsize=self.workers,
            max_retries=requests.adapters.Retry(total=retries, backoff_factor=0.5,
                                                status_forcelist=[429, 500, 502, 503, 504]))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.cache_dir = os.path.join(self.out_dir, ".cache")
        self.bytes = {"metadata": 0, "images": 0, "masks": 0}
        self.skipped = []
        self.warnings = []

    # ----------------------------------------------------------------- metadata
    def _meta(self, name, optional=False):
        path = os.path.join(self.cache_dir, name)
        try:
            self.bytes["metadata"] += md.fetch("{}/{}".format(self.metadata_url, name), path,
                                               self.session, progress=self.progress)
        except FileNotFoundError:
            if optional:
                return None
            raise
        return path

    def catalog(self):
        return ClassCatalog.from_files(self._meta(md.CLASS_DESCRIPTIONS),
                                       self._meta(md.HIERARCHY, optional=True),
                                       self._meta(md.SEGMENTATION_CLASSES, optional=True))

    # ----------------------------------------------------------------- selection
    def select(self, catalog):
        """Resolve the classes, filter the segmentation CSV, pick the images.

        Returns (class table, rows DataFrame of the chosen images' masks, shortfall).
        """
        table = []
        mid_owner = {}
        for c in self.classes:
            mid = catalog.resolve(c)
            expanded = catalog.expand(mid, self.subclasses)
            table.append({"name": catalog.name(mid), "mid": mid,
                          "expanded": [{"mid": m, "name": catalog.name(m)} for m in expanded]})
            for m in expanded:
                mid_owner.setdefault(m, mid)
            if not any(catalog.has_masks(m) for m in expanded):
                msg = ("class {!r} ({}) has no segmentation masks in Open Images "
                       "(classes-segmentation.txt); it will have no instances"
                       .format(catalog.name(mid), mid))
                log.warning(msg)
                self.warnings.append(msg)
        csv_path = self._meta(md.segmentation_csv_name(self.split))
        rows = md.filter_csv(csv_path, "LabelName", set(mid_owner))
        rows["ClassMID"] = rows["LabelName"].map(mid_owner)
        rng = np.random.RandomState(self.seed)
        chosen, shortfall = set(), {}
        for entry in table:
            ids = sorted(rows.loc[rows["ClassMID"] == entry["mid"], "ImageID"].unique())
            order = rng.permutation(len(ids))
            picked = [ids[i] for i in order[:self.limit]] if self.limit else ids
            entry["images_available"] = len(ids)
            entry["images_selected"] = len(picked)
            if self.limit and len(picked) < self.limit:
                shortfall[entry["name"]] = {"wanted": self.limit, "available": len(picked)}
            chosen.update(picked)
        rows = rows[rows["ImageID"].isin(chosen)].sort_values(["ImageID", "MaskPath"])
        return table, rows.reset_index(drop=True), shortfall

    # ----------------------------------------------------------------- images
    def _image_path(self, image_id):
        return os.path.join(self.out_dir, "images", "{}.jpg".format(image_id))

    def download_images(self, image_ids):
        todo = [i for i in image_ids if not (os.path.exists(self._image_path(i)) and
                                              verify_jpeg(self._image_path(i)))]
        done_already = len(image_ids) - len(todo)
        client = make_s3_client(self.s3_endpoint, max_attempts=self.retries + 1)
        failed = []

        def get(image_id):
            key = "{}/{}.jpg".format(self.split, image_id)
            last = None
            for attempt in range(self.retries + 1):
                try:
                    body = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    path = self._image_path(image_id)
                    _atomic_write(path, body)
                    if not verify_jpeg(path):
                        os.remove(path)
                        raise IOError("incomplete image data")
                    return len(body)
                except Exception as e:  # botocore and IO errors
                    last = e
                    time.sleep(min(0.2 * 2 ** attempt, 5))
            raise DownloadError("s3://{}/{}: {}".format(self.bucket, key, last))

        with _bar(len(image_ids), "images", self.progress) as bar:
            bar.update(done_already)
            with ThreadPoolExecutor(self.workers) as pool:
                futures = {pool.submit(get, i): i for i in todo}
                for f in as_completed(futures):
                    try:
                        self.bytes["images"] += f.result()
                    except DownloadError as e:
                        failed.append(str(e))
                    bar.update(1)
        return done_already, failed

    # ----------------------------------------------------------------- masks
    def _mask_path(self, mask_path):
        return os.path.join(self.out_dir, "masks", mask_path)

    def download_masks(self, rows, sizes):
        """Fetch the wanted members of each zip, resize them to their image, save."""
        need = np.array([not (os.path.exists(self._mask_path(m)) and
                              verify_png(self._mask_path(m))) for m in rows["MaskPath"]],
                        dtype=bool)
        todo = rows.loc[need] if len(rows) else rows
        done_already = len(rows) - len(todo)
        zips = {}
        stats = []
        with _bar(len(rows), "masks", self.progress) as bar:
            bar.update(done_already)
            for prefix, group in todo.groupby(todo["ImageID"].str[0].str.lower()):
                url = md.masks_zip_url(self.masks_url, self.split, prefix)
                z = RemoteZip(url, self.session, cache_dir=os.path.join(self.cache_dir, "zips"))
                zips[prefix] = z
                names = list(group["MaskPath"])
                image_of = dict(zip(group["MaskPath"], group["ImageID"]))
                # fetch in slices so that progress shows and memory stays bounded
                for start in range(0, len(names), 200):
                    part = names[start:start + 200]
                    data = z.read_members(part)
                    for name in part:
                        self._save_mask(name, data[name], sizes.get(image_of[name]))
                        bar.update(1)
                stats.append({"zip": url, "zip_bytes": z.size, "fetched_bytes": z.bytes_fetched,
                              "requests": z.requests, "whole_zip": z.used_whole_zip,
                              "members": len(names)})
                self.bytes["masks"] += z.bytes_fetched
        return done_already, stats

    def _save_mask(self, name, png_bytes, size):
        with Image.open(io.BytesIO(png_bytes)) as im:
            im = im.convert("L")
            if size is not None and im.size != size:
                im = im.resize(size, Image.NEAREST)   # masks usually differ from the image
            arr = (np.asarray(im) > 0).astype(np.uint8) * 255
        buf = io.BytesIO()
        Image.fromarray(arr).convert("1").save(buf, format="PNG")
        _atomic_write(self._mask_path(name), buf.getvalue())

    # ----------------------------------------------------------------- boxes
    def boxes_without_masks(self, rows, mids):
        """{ImageID: boxes of the wanted classes minus masks} where boxes outnumber masks."""
        path = self._meta(md.bbox_csv_name(self.split))
        boxes = md.filter_csv(path, "ImageID", set(rows["ImageID"]),
                              usecols=["ImageID", "LabelName"])
        boxes = boxes[boxes["LabelName"].isin(mids)]
        box_counts = boxes.groupby("ImageID").size()
        mask_counts = rows.groupby("ImageID").size()
        out = {}
        for image_id, n in box_counts.items():
            extra = int(n) - int(mask_counts.get(image_id, 0))
            if extra > 0:
                out[image_id] = extra
        return out

    # ----------------------------------------------------------------- all
    def run(self):
        t0 = time.time()
        os.makedirs(self.out_dir, exist_ok=True)
        catalog = self.catalog()
        table, rows, shortfall = self.select(catalog)
        image_ids = sorted(rows["ImageID"].unique())
        have, failed_images = self.download_images(image_ids)
        sizes = {}
        for i in image_ids:
            p = self._image_path(i)
            if os.path.exists(p):
                with Image.open(p) as im:
                    sizes[i] = im.size
        rows = rows[rows["ImageID"].isin(sizes)]
        masks_have, zip_stats = self.download_masks(rows, sizes)
        self.write_annotations(rows, sizes, catalog)
        mids = {e["mid"] for t in table for e in t["expanded"]}
        no_masks = self.boxes_without_masks(rows, mids) if self.with_boxes else None
        manifest = {
            "split": self.split,
            "classes": table,
            "subclasses": self.subclasses,
            "seed": self.seed,
            "limit_per_class": self.limit,
            "counts": {
                "images": len(sizes),
                "masks": int(len(rows)),
                "per_class": {t["name"]: {
                    "images": int(rows.loc[rows["ClassMID"] == t["mid"], "ImageID"].nunique()),
                    "masks": int((rows["ClassMID"] == t["mid"]).sum())} for t in table},
                "images_already_present": have,
                "masks_already_present": masks_have,
            },
            "bytes_downloaded": dict(self.bytes, total=sum(self.bytes.values())),
            "mask_zips": zip_stats,
            "shortfall": shortfall,
            "images_with_boxes_without_masks": no_masks,
            "failed_images": failed_images,
            "warnings": self.warnings,
            "seconds": round(time.time() - t0, 1),
        }
        tmp = os.path.join(self.out_dir, "manifest.json.part")
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=2)
        os.replace(tmp, os.path.join(self.out_dir, "manifest.json"))
        if self.progress:
            print(summary_text(manifest))
        if failed_images:
            raise DownloadError("{} images could not be downloaded (first: {}); run the same "
                                "command again to retry them".format(len(failed_images),
                                                                      failed_images[0]))
        return manifest

    def write_annotations(self, rows, sizes, catalog):
        out = pd.DataFrame({
            "ImageID": rows["ImageID"],
            "ClassName": [catalog.name(m) for m in rows["ClassMID"]],
            "LabelName": rows["ClassMID"],
            "SourceLabelName": rows["LabelName"],
            "BoxID": rows["BoxID"],
            "BoxXMin": rows["BoxXMin"], "BoxXMax": rows["BoxXMax"],
            "BoxYMin": rows["BoxYMin"], "BoxYMax": rows["BoxYMax"],
            "MaskPath": ["masks/" + m for m in rows["MaskPath"]],
            "Width": [sizes[i][0] for i in rows["ImageID"]],
            "Height": [sizes[i][1] for i in rows["ImageID"]],
        })
        w = out["Width"].astype(float)
        h = out["Height"].astype(float)
        out["X1"] = (out["BoxXMin"].astype(float) * w).round().astype(int)
        out["X2"] = (out["BoxXMax"].astype(float) * w).round().astype(int)
        out["Y1"] = (out["BoxYMin"].astype(float) * h).round().astype(int)
        out["Y2"] = (out["BoxYMax"].astype(float) * h).round().astype(int)
        path = os.path.join(self.out_dir, "annotations.csv")
        out.to_csv(path + ".part", index=False)
        os.replace(path + ".part", path)
        return path


def summary_text(m):
    b = m["bytes_downloaded"]
    zip_bytes = sum(z["zip_bytes"] or 0 for z in m["mask_zips"])
    lines = ["Open Images {} subset: {} images, {} masks in {:.0f} s".format(
        m["split"], m["counts"]["images"], m["counts"]["masks"], m["seconds"])]
    for name, c in m["counts"]["per_class"].items():
        lines.append("  {:<20} {:>6} images {:>7} masks".format(name, c["images"], c["masks"]))
    lines.append("  downloaded: images {:.1f} MB, masks {:.2f} MB (of zips totalling {:.1f} MB), "
                 "metadata {:.1f} MB".format(b["images"] / 1e6, b["masks"] / 1e6,
                                             zip_bytes / 1e6, b["metadata"] / 1e6))
    for name, s in m["shortfall"].items():
        lines.append("  shortfall: {} has {} of the {} images asked for".format(
            name, s["available"], s["wanted"]))
    if m["counts"]["images_already_present"] or m["counts"]["masks_already_present"]:
        lines.append("  already present (skipped): {} images, {} masks".format(
            m["counts"]["images_already_present"], m["counts"]["masks_already_present"]))
    for w in m["warnings"]:
        lines.append("  warning: " + w)
    return "\n".join(lines)


def download(classes, split, out_dir, **kwargs):
    """Download a subset; see Downloader for the arguments. Returns the manifest."""
    return Downloader(classes, split, out_dir, **kwargs).run()
