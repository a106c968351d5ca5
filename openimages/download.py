"""Download a class-filtered Open Images V5 subset: images plus only the masks needed.

    from openimages.download import download
    manifest = download(["Person", "Car"], split="validation", out_dir="data/oi",
                        limit_per_class=100)

Output layout (``out_dir``):

    images/<ImageID>.jpg          the images (from the S3 bucket)
    masks/<MaskPath>              instance masks (PNG), resized to their image's size
    annotations.csv               one row per instance whose image and mask are on disk:
                                  ImageID, ClassName, LabelName (the requested class's
                                  MID), SourceLabelName (the MID in the file, e.g. a
                                  subclass), BoxID, box (normalised and pixels), MaskPath
                                  (relative to out_dir), width, height
    manifest.json                 what is on disk and what each run did (see below)
    .cache/                       metadata files and zip indexes, reused by later runs

Resuming: every file is written under a temporary name (``.part-<pid>``) and renamed when
complete, so a file under its final name is whole. Running the same download again
skips images and masks already on disk and verified, fetches the rest, and removes the
temporary files that killed runs left. Ctrl-C stops within about a second
(DownloadInterrupted, a KeyboardInterrupt); a network failure raises DownloadError naming
the URL. Both write manifest.json first.

manifest.json: ``status`` ("complete"; "incomplete": some files failed; "failed": stopped
by an error; "interrupted": stopped by Ctrl-C; "empty": nothing matched), ``counts``
(``images``/``masks``: of the selection, on disk now, whichever run fetched them;
``*_downloaded``: fetched by the last run; ``*_already_present``: found on disk by it;
``*_selected``: what the selection holds), ``bytes_on_disk`` (the images and masks on
disk), ``bytes_downloaded`` (network bytes of every run into this folder that wrote a
manifest; a killed run writes none) and ``bytes_downloaded_this_run``, ``runs``,
``rejected_rows`` (metadata rows refused because their names are not Open Images names:
see openimages.names), shortfalls, warnings.

This module does not import TensorFlow.
"""
import io
import json
import logging
import os
import queue
import threading
import time

import numpy as np
import pandas as pd
import requests
from PIL import Image

from . import metadata as md
from .classes import ClassCatalog
from .names import check_image_id, check_mask_path, inside
from .net import DownloadError, ShortRead, Stopped, with_retries
from .partfiles import atomic_write, part_path, remove_orphans, remove_quietly
from .rangezip import RemoteZip, ZipFormatError

log = logging.getLogger(__name__)

__all__ = ["DownloadError", "DownloadInterrupted", "Downloader", "EmptySubsetError",
           "download", "summary_text"]


class EmptySubsetError(DownloadError):
    """No image of the split has a mask of the requested classes; the message says why."""


class DownloadInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the download; the message says what is on disk and how to resume."""


class CorruptImage(IOError):
    """The bucket served bytes that are not a whole image."""


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


def make_s3_client(endpoint_url=None, max_attempts=5):
    """An unsigned boto3 S3 client (the bucket is public), with standard retries
    (the downloader passes max_attempts=1 and retries itself: see openimages.net)."""
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
    retries: tries after the first for transient network failures (refused or dropped
    connections, timeouts, HTTP 429 and 5xx), waiting retry_backoff * 2**k seconds;
    permanent ones (404, 403, ...) are not tried again.
    stop_grace: seconds Ctrl-C waits for the image downloads in flight to give up.
    """

    def __init__(self, classes, split, out_dir, limit_per_class=None, subclasses=True,
                 seed=0, metadata_url=md.DEFAULT_METADATA_URL, masks_url=md.DEFAULT_MASKS_URL,
                 s3_endpoint=None, bucket=md.DEFAULT_BUCKET, workers=16, with_boxes=False,
                 progress=True, retries=4, session=None, retry_backoff=0.5, stop_grace=1.0):
        if split not in md.SPLITS:
            raise ValueError("split {!r}: use one of {}".format(split, ", ".join(md.SPLITS)))
        if not classes:
            raise ValueError("give at least one class name or MID")
        if int(retries) < 0:
            raise ValueError("retries={}: give 0 or more".format(retries))
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
        self.retries = int(retries)
        self.backoff = float(retry_backoff)
        self.stop_grace = float(stop_grace)
        self.session = session or requests.Session()
        # no retries in the adapter: openimages.net retries transient failures only
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=self.workers)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.cache_dir = os.path.join(self.out_dir, ".cache")
        self.images_dir = os.path.join(self.out_dir, "images")
        self.masks_dir = os.path.join(self.out_dir, "masks")
        self.bytes = {"metadata": 0, "images": 0, "masks": 0}
        self.skipped = []
        self.warnings = []
        self.rejected = []
        self._stop = threading.Event()
        # what the run knows so far (a stopped run writes its manifest from these)
        self.table = None
        self.rows = None
        self.shortfall = {}
        self.done = {"images_downloaded": 0, "masks_downloaded": 0,
                     "images_already_present": 0, "masks_already_present": 0}
        self.failed_images = []
        self.failed_zips = []
        self.zip_stats = []
        self.removed_parts = []
        self.previous = None
        self._finished = False
        self._t0 = time.time()

    # ----------------------------------------------------------------- metadata
    def _meta(self, name, optional=False):
        path = os.path.join(self.cache_dir, name)
        try:
            self.bytes["metadata"] += md.fetch("{}/{}".format(self.metadata_url, name), path,
                                               self.session, progress=self.progress,
                                               retries=self.retries, backoff=self.backoff)
        except DownloadError as e:
            if optional and e.status == 404:
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

        Rows whose ImageID or MaskPath is not an Open Images name are skipped, each
        named (CSV file and line) in ``self.rejected``: names become paths.
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
                self._warn("class {!r} ({}) has no segmentation masks in Open Images "
                           "(classes-segmentation.txt); it will have no instances"
                           .format(catalog.name(mid), mid))
        csv_name = md.segmentation_csv_name(self.split)
        rows = md.filter_csv(self._meta(csv_name), "LabelName", set(mid_owner),
                             line_numbers=True)
        rows = self._refuse_bad_names(rows, csv_name)
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
            if not ids and any(catalog.has_masks(e["mid"]) for e in entry["expanded"]):
                self._warn("class {!r} ({}) has no instance with a mask in {}".format(
                    entry["name"], entry["mid"], csv_name))
            chosen.update(picked)
        rows = rows[rows["ImageID"].isin(chosen)].sort_values(["ImageID", "MaskPath"])
        rows = rows.drop(columns=["_line"]).reset_index(drop=True)
        self.table, self.rows, self.shortfall = table, rows, shortfall
        return table, rows, shortfall

    def _refuse_bad_names(self, rows, csv_name):
        keep = np.ones(len(rows), dtype=bool)
        for k, (image_id, mask_path, line) in enumerate(zip(rows["ImageID"], rows["MaskPath"],
                                                            rows["_line"])):
            why = check_image_id(image_id) or check_mask_path(mask_path, image_id)
            if why:
                keep[k] = False
                self.rejected.append("{} line {}: {}".format(csv_name, line, why))
        if not keep.all():
            self._warn("skipped {} rows of {} whose names are not Open Images names (first: "
                       "{}); nothing was written for them (manifest.json: rejected_rows)"
                       .format(int((~keep).sum()), csv_name, self.rejected[0]))
        return rows[keep].copy()

    def _warn(self, msg):
        if msg not in self.warnings:
            self.warnings.append(msg)

    # ----------------------------------------------------------------- images
    def _image_path(self, image_id):
        return inside(self.images_dir, "{}.jpg".format(image_id))

    def download_images(self, image_ids):
        """Fetch the images not on disk yet with ``workers`` threads.

        Ctrl-C (KeyboardInterrupt) stops the workers within ``stop_grace`` seconds: the
        downloads in flight give up and remove their temporary files, the queued ones
        never start. Returns (images already present, failure messages)."""
        todo = [i for i in image_ids if not (os.path.exists(self._image_path(i)) and
                                              verify_jpeg(self._image_path(i)))]
        done_already = len(image_ids) - len(todo)
        self.done["images_already_present"] = done_already
        if not todo:
            return done_already, []
        os.makedirs(self.images_dir, exist_ok=True)
        client = make_s3_client(self.s3_endpoint, max_attempts=1)
        jobs = queue.Queue()
        for i in todo:
            jobs.put(i)
        results = queue.Queue()

        def worker():
            while not self._stop.is_set():
                try:
                    image_id = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    results.put((image_id, self._fetch_image(client, image_id), None))
                except Stopped:
                    return
                except DownloadError as e:
                    results.put((image_id, None, e))
                except BaseException as e:      # a bug, a full disk: the main thread raises
                    results.put((image_id, None, e))
                    return

        threads = [threading.Thread(target=worker, name="oi-image-{}".format(k), daemon=True)
                   for k in range(min(self.workers, len(todo)))]
        with _bar(len(image_ids), "images", self.progress) as bar:
            bar.update(done_already)
            for t in threads:
                t.start()
            try:
                for _ in range(len(todo)):
                    image_id, n, error = results.get()
                    if isinstance(error, DownloadError):
                        self.failed_images.append(str(error))
                    elif error is not None:
                        raise error
                    else:
                        self.bytes["images"] += n
                        self.done["images_downloaded"] += 1
                    bar.update(1)
            except BaseException:
                self._stop.set()
                deadline = time.monotonic() + self.stop_grace
                for t in threads:
                    t.join(max(0.0, deadline - time.monotonic()))
                raise
        return done_already, list(self.failed_images)

    def _fetch_image(self, client, image_id):
        """One image from the bucket, streamed to a temporary file, verified, renamed."""
        key = "{}/{}.jpg".format(self.split, image_id)
        path = self._image_path(image_id)
        tmp = part_path(path)

        def attempt():
            if self._stop.is_set():
                raise Stopped()
            resp = client.get_object(Bucket=self.bucket, Key=key)
            body, expected, got = resp["Body"], resp.get("ContentLength"), 0
            try:
                with open(tmp, "wb") as f:
                    while True:
                        if self._stop.is_set():
                            raise Stopped()
                        chunk = body.read(65536)
                        if not chunk:
                            break
                        f.write(chunk)
                        got += len(chunk)
            finally:
                body.close()
            if expected is not None and got != expected:
                raise ShortRead("the image stopped at {} of {} bytes".format(got, expected))
            if not verify_jpeg(tmp):
                raise CorruptImage("the bucket's bytes are not a whole image")
            return got

        try:
            n = with_retries(attempt, "s3://{}/{}".format(self.bucket, key),
                             retries=self.retries, backoff=self.backoff, stop=self._stop)
            os.replace(tmp, path)
            return n
        finally:
            remove_quietly(tmp)

    # ----------------------------------------------------------------- masks
    def _mask_path(self, mask_path):
        return inside(self.masks_dir, mask_path)

    def download_masks(self, rows, sizes):
        """Fetch the wanted members of each zip, resize them to their image, save.

        A zip that fails for good (404, a corrupt or incomplete zip) is noted and the
        others are read; a transient failure that outlasts the retries stops the run.
        Returns (masks already present, per-zip statistics)."""
        need = np.array([not (os.path.exists(self._mask_path(m)) and
                              verify_png(self._mask_path(m))) for m in rows["MaskPath"]],
                        dtype=bool)
        todo = rows.loc[need] if len(rows) else rows
        done_already = len(rows) - len(todo)
        self.done["masks_already_present"] = done_already
        with _bar(len(rows), "masks", self.progress) as bar:
            bar.update(done_already)
            for prefix, group in todo.groupby(todo["ImageID"].str[0]):
                url = md.masks_zip_url(self.masks_url, self.split, prefix)
                z = RemoteZip(url, self.session, cache_dir=os.path.join(self.cache_dir, "zips"),
                              retries=self.retries, backoff=self.backoff)
                names = list(group["MaskPath"])
                image_of = dict(zip(group["MaskPath"], group["ImageID"]))
                try:
                    # fetch in slices so that progress shows and memory stays bounded
                    for start in range(0, len(names), 200):
                        part = names[start:start + 200]
                        data = z.read_members(part)
                        for name in part:
                            self._save_mask(name, data[name], sizes.get(image_of[name]))
                            self.done["masks_downloaded"] += 1
                            bar.update(1)
                except DownloadError as e:
                    self.failed_zips.append(str(e))
                    if not e.permanent:
                        raise
                except (ZipFormatError, KeyError) as e:
                    self.failed_zips.append("{}: {}".format(url, str(e).strip("'\"")))
                finally:
                    self.bytes["masks"] += z.bytes_fetched
                    self.zip_stats.append({"zip": url, "zip_bytes": z.size,
                                           "fetched_bytes": z.bytes_fetched,
                                           "requests": z.requests,
                                           "whole_zip": z.used_whole_zip,
                                           "members": len(names)})
        return done_already, self.zip_stats

    def _save_mask(self, name, png_bytes, size):
        with Image.open(io.BytesIO(png_bytes)) as im:
            im = im.convert("L")
            if size is not None and im.size != size:
                im = im.resize(size, Image.NEAREST)   # masks usually differ from the image
            arr = (np.asarray(im) > 0).astype(np.uint8) * 255
        buf = io.BytesIO()
        Image.fromarray(arr).convert("1").save(buf, format="PNG")
        atomic_write(self._mask_path(name), buf.getvalue())

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
        """Download; returns the manifest. Raises DownloadError (failures: what was
        fetched stays, run again to resume), EmptySubsetError (nothing matched) or
        DownloadInterrupted (Ctrl-C), each after writing manifest.json."""
        self._t0 = time.time()
        os.makedirs(self.out_dir, exist_ok=True)
        self.removed_parts = remove_orphans(self.out_dir)
        self.previous = self._read_previous_manifest()
        try:
            return self._run()
        except KeyboardInterrupt:
            self._stop.set()
            m = self._write_manifest("interrupted", "stopped by Ctrl-C")
            raise DownloadInterrupted("{}; run the same command again to resume".format(
                _on_disk(m, self.out_dir))) from None
        except DownloadError as e:
            if self._finished:          # the manifest says it already
                raise
            m = self._write_manifest("failed", str(e))
            raise DownloadError("could not download {}; {} (manifest.json)".format(
                e, _on_disk(m, self.out_dir)), url=e.url, status=e.status,
                permanent=e.permanent) from e

    def _run(self):
        catalog = self.catalog()
        table, rows, shortfall = self.select(catalog)
        image_ids = sorted(rows["ImageID"].unique())
        self.download_images(image_ids)
        sizes = {}
        for i in image_ids:
            p = self._image_path(i)
            if os.path.exists(p):
                with Image.open(p) as im:
                    sizes[i] = im.size
        rows = rows[rows["ImageID"].isin(sizes)]
        self.download_masks(rows, sizes)
        rows = rows[np.array([os.path.exists(self._mask_path(m)) for m in rows["MaskPath"]],
                             dtype=bool)]
        self.write_annotations(rows, sizes, catalog)
        mids = {e["mid"] for t in table for e in t["expanded"]}
        no_masks = self.boxes_without_masks(rows, mids) if self.with_boxes else None
        status = "complete"
        if self.failed_images or self.failed_zips:
            status = "incomplete"
        elif not image_ids:
            status = "empty"
        manifest = self._write_manifest(status, None, no_masks)
        self._finished = True
        if self.progress:
            print(summary_text(manifest))
        else:
            for w in self.warnings:
                log.warning(w)
        failures = self.failed_images + self.failed_zips
        if failures:
            what = []
            if self.failed_images:
                what.append("{} of {} images".format(len(self.failed_images), len(image_ids)))
            if self.failed_zips:
                what.append("the masks of {} zips".format(len(self.failed_zips)))
            raise DownloadError("{} could not be downloaded (first: {}); {} (manifest.json)"
                                .format(" and ".join(what), failures[0],
                                        _on_disk(manifest, self.out_dir)),
                                url=None, permanent=True)
        if status == "empty":
            raise EmptySubsetError("nothing to download: no image of the {} split has a mask "
                                   "of {}{}".format(self.split,
                                                    ", ".join(t["name"] for t in table),
                                                    "".join("; " + w for w in self.warnings)),
                                   permanent=True)
        return manifest

    # ----------------------------------------------------------------- manifest
    def _read_previous_manifest(self):
        path = os.path.join(self.out_dir, "manifest.json")
        try:
            with open(path) as f:
                previous = json.load(f)
            return previous if isinstance(previous, dict) else None
        except (OSError, ValueError):
            return None

    def _present(self):
        """(image ids, mask paths) of the selection on disk; the whole folders' files when
        the selection is not known yet."""
        if self.rows is None:
            return _listing(self.images_dir, ".jpg"), _listing(self.masks_dir, ".png")
        images = [i for i in self.rows["ImageID"].unique()
                  if os.path.exists(self._image_path(i))]
        have = set(images)
        masks = [m for i, m in zip(self.rows["ImageID"], self.rows["MaskPath"])
                 if i in have and os.path.exists(self._mask_path(m))]
        return images, masks

    def manifest(self, status, error=None, no_masks=None):
        images, masks = self._present()
        if self.rows is None:
            image_files = [os.path.join(self.images_dir, i + ".jpg") for i in images]
            mask_files = [os.path.join(self.masks_dir, m) for m in masks]
        else:
            image_files = [self._image_path(i) for i in images]
            mask_files = [self._mask_path(m) for m in masks]
        on_disk = {"images": _size(image_files), "masks": _size(mask_files)}
        on_disk["total"] = on_disk["images"] + on_disk["masks"]
        this_run = dict(self.bytes, total=sum(self.bytes.values()))
        prev = self.previous or {}
        before = prev.get("bytes_downloaded") if isinstance(prev.get("bytes_downloaded"),
                                                            dict) else {}
        all_runs = {k: int(before.get(k, 0) or 0) + v for k, v in this_run.items()}
        per_class = {}
        table = self.table if self.table is not None else prev.get("classes", [])
        if self.rows is not None:
            have = set(masks)
            rows = self.rows[self.rows["MaskPath"].isin(have)]
            per_class = {t["name"]: {
                "images": int(rows.loc[rows["ClassMID"] == t["mid"], "ImageID"].nunique()),
                "masks": int((rows["ClassMID"] == t["mid"]).sum())} for t in table}
        selected = self.rows is not None
        return {
            "status": status,
            "error": error,
            "split": self.split,
            "classes": table,
            "subclasses": self.subclasses,
            "seed": self.seed,
            "limit_per_class": self.limit,
            "counts": dict({
                "images": len(images),
                "masks": len(masks),
                "images_selected": int(self.rows["ImageID"].nunique()) if selected else None,
                "masks_selected": int(len(self.rows)) if selected else None,
                "per_class": per_class,
                "images_failed": len(self.failed_images),
            }, **self.done),
            "bytes_on_disk": on_disk,
            "bytes_downloaded": all_runs,
            "bytes_downloaded_this_run": this_run,
            "runs": int(prev.get("runs", 1) or 1) + 1 if self.previous else 1,
            "mask_zips": self.zip_stats,
            "shortfall": self.shortfall,
            "images_with_boxes_without_masks": no_masks,
            "failed_images": self.failed_images,
            "failed_mask_zips": self.failed_zips,
            "rejected_rows": {"count": len(self.rejected), "rows": self.rejected[:100]},
            "removed_part_files": len(self.removed_parts),
            "warnings": self.warnings,
            "seconds": round(time.time() - self._t0, 1),
        }

    def _write_manifest(self, status, error=None, no_masks=None):
        m = self.manifest(status, error, no_masks)
        path = os.path.join(self.out_dir, "manifest.json")
        atomic_write(path, json.dumps(m, indent=2).encode("utf8"))
        return m

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
        atomic_write(path, out.to_csv(index=False).encode("utf8"))
        return path


def _listing(folder, ext):
    try:
        return sorted(n[:-len(ext)] if ext == ".jpg" else n for n in os.listdir(folder)
                      if n.endswith(ext))
    except OSError:
        return []


def _size(paths):
    total = 0
    for p in paths:
        try:
            total += os.path.getsize(p)
        except OSError:
            pass
    return total


def _on_disk(m, out_dir):
    c = m["counts"]
    if c["images_selected"] is None:
        return "{} images and {} masks are on disk in {}".format(c["images"], c["masks"],
                                                                 out_dir)
    return "{} of {} images and {} of {} masks are on disk in {}".format(
        c["images"], c["images_selected"], c["masks"], c["masks_selected"], out_dir)


def _mb(n):
    return "{:.1f} MB".format(n / 1e6) if n >= 1e5 or n == 0 else "{:.2f} MB".format(n / 1e6)


def summary_text(m):
    """What the manifest says, for people: what is on disk, what this run did."""
    c = m["counts"]
    this_run = m.get("bytes_downloaded_this_run", m["bytes_downloaded"])
    total = m["bytes_downloaded"]
    zip_bytes = sum(z["zip_bytes"] or 0 for z in m["mask_zips"])
    lines = ["Open Images {} subset: {} images, {} masks{}".format(
        m["split"], c["images"], c["masks"],
        "" if m.get("status", "complete") == "complete" else " ({})".format(m["status"]))]
    for name, pc in c["per_class"].items():
        lines.append("  {:<20} {:>6} images {:>7} masks".format(name, pc["images"], pc["masks"]))
    if "images_downloaded" in c:
        lines.append("  this run: downloaded {} images and {} masks; {} images and {} masks "
                     "were already there ({:.0f} s)".format(
                         c["images_downloaded"], c["masks_downloaded"],
                         c["images_already_present"], c["masks_already_present"],
                         m["seconds"]))
    lines.append("  network this run: images {}, masks {}{}, metadata {}".format(
        _mb(this_run["images"]), _mb(this_run["masks"]),
        " (of zips totalling {})".format(_mb(zip_bytes)) if zip_bytes else "",
        _mb(this_run["metadata"])))
    if m.get("runs", 1) > 1:
        lines.append("  network over {} runs: {}".format(m["runs"], _mb(total["total"])))
    if "bytes_on_disk" in m:
        lines.append("  on disk: images {}, masks {}".format(
            _mb(m["bytes_on_disk"]["images"]), _mb(m["bytes_on_disk"]["masks"])))
    for name, s in m["shortfall"].items():
        lines.append("  Open Images has only {} {} images with masks in the {} split ({} asked "
                     "for)".format(s["available"], name, m["split"], s["wanted"]))
    for f in m.get("failed_images", [])[:3] + m.get("failed_mask_zips", [])[:3]:
        lines.append("  failed: " + f)
    for w in m["warnings"]:
        lines.append("  warning: " + w)
    return "\n".join(lines)


def download(classes, split, out_dir, **kwargs):
    """Download a subset; see Downloader for the arguments. Returns the manifest."""
    return Downloader(classes, split, out_dir, **kwargs).run()
