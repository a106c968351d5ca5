"""Open Images V5 metadata: where it lives, fetching and caching it, and streaming the
(large) annotation CSVs through a filter without holding them in memory."""
import os

import pandas as pd
import requests

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


def fetch(url, path, session=None, progress=True, timeout=60):
    """Download url to path unless path exists; atomic (temp file, then rename).

    Returns the number of bytes downloaded (0 when cached).
    """
    if os.path.exists(path):
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    session = session or requests.Session()
    tmp = path + ".part"
    done = 0
    with session.get(url, stream=True, timeout=timeout) as resp:
        if resp.status_code == 404:
            raise FileNotFoundError("{} does not exist (HTTP 404)".format(url))
        resp.raise_for_status()
        total = int(resp.headers.get("Content-Length") or 0) or None
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total, unit="B", unit_scale=True,
                       desc=os.path.basename(path), leave=False)
        with open(tmp, "wb") as f:
            for chunk in resp.iter_content(1 << 20):
                f.write(chunk)
                done += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        if bar is not None:
            bar.close()
    if total is not None and done != total:
        os.remove(tmp)
        raise IOError("download of {} stopped at {} of {} bytes".format(url, done, total))
    os.replace(tmp, path)
    return done


def filter_csv(path, column, values, chunksize=200000, usecols=None):
    """Rows of a CSV whose ``column`` is in ``values``, read in chunks (the train
    segmentation CSV is 807 MB; it is never held whole)."""
    values = set(values)
    parts = []
    for chunk in pd.read_csv(path, chunksize=chunksize, dtype=str, usecols=usecols,
                             keep_default_na=False):
        hit = chunk[chunk[column].isin(values)]
        if len(hit):
            parts.append(hit)
    if not parts:
        return pd.DataFrame(columns=usecols or pd.read_csv(path, nrows=0).columns)
    return pd.concat(parts, ignore_index=True)
