"""Open Images V5 metadata: where it lives, fetching and caching it, and streaming the
(large) annotation CSVs through a filter without holding them in memory."""
import os

import pandas as pd
import requests

from .net import ShortRead, check_status, with_retries
from .partfiles import part_path, remove_quietly

DEFAULT_METADATA_URL = "https://storage.googleapis.com/openimages/v5"
DEFAULT_MASKS_URL = "https://storage.googleapis.com/openimages/v5"
DEFAULT_BUCKET = "open-images-dataset"
SPLITS = ("train", "validation", "test")

# File names under the metadata URL.
CLASS_DESCRIPTIONS = "class-descriptions-boxable.csv"
HIERARCHY = "bbox_labels_600_hierarchy.json"
SEGMENTATION_CLASSES = "classes-segmentation.txt"
SEGMENTATION_COLUMNS = ["MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax",
                        "BoxYMin", "BoxYMax", "PredictedIoU", "Clicks"]


def segmentation_csv_name(split):
    return "{}-annotations-object-segmentation.csv".format(split)


def bbox_csv_name(split):
    return "{}-annotations-bbox.csv".format(split)


def masks_zip_url(masks_url, split, prefix):
    """.../{split}-masks/{split}-masks-{h}.zip, h the first hex digit of the ImageID."""
    return "{}/{}-masks/{}-masks-{}.zip".format(masks_url.rstrip("/"), split, split, prefix)


def fetch(url, path, session=None, progress=True, timeout=60, retries=4, backoff=0.5):
    """Download url to path unless path exists; atomic (temp file, then rename).

    Transient failures are tried again (see openimages.net); what still fails raises
    DownloadError naming the URL (status 404 when the file is not there).
    Returns the number of bytes downloaded (0 when cached).
    """
    if os.path.exists(path):
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    session = session or requests.Session()
    tmp = part_path(path)

    def attempt():
        done = 0
        with session.get(url, stream=True, timeout=timeout) as resp:
            check_status(resp)
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=total, unit="B", unit_scale=True,
                           desc=os.path.basename(path), leave=False)
            try:
                with open(tmp, "wb") as f:
                    for chunk in resp.iter_content(1 << 20):
                        f.write(chunk)
                        done += len(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
        if total is not None and done != total:
            raise ShortRead("the body stopped at {} of {} bytes".format(done, total))
        return done

    try:
        done = with_retries(attempt, url, retries=retries, backoff=backoff)
        os.replace(tmp, path)
    finally:
        remove_quietly(tmp)
    return done


def filter_csv(path, column, values, chunksize=200000, usecols=None, line_numbers=False):
    """Rows of a CSV whose ``column`` is in ``values``, read in chunks (the train
    segmentation CSV is 807 MB; it is never held whole). line_numbers: add a column
    ``_line``, each row's line in the file (the header is line 1)."""
    values = set(values)
    parts = []
    for chunk in pd.read_csv(path, chunksize=chunksize, dtype=str, usecols=usecols,
                             keep_default_na=False):
        hit = chunk[chunk[column].isin(values)]
        if len(hit):
            if line_numbers:
                hit = hit.assign(_line=hit.index + 2)
            parts.append(hit)
    if not parts:
        columns = list(usecols or pd.read_csv(path, nrows=0).columns)
        return pd.DataFrame(columns=columns + (["_line"] if line_numbers else []))
    return pd.concat(parts, ignore_index=True)
