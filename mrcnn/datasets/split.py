"""Seeded train / validation / test splits of any prepared ``Dataset``.

Works with every loader (COCO, VIA, instance PNGs, mask folders, .npy, Open Images, your
own ``Dataset`` subclass): the split is made on the loaded dataset, by image key, so no
loader needs an ``image_ids=`` argument::

    from mrcnn.datasets.split import split_dataset
    parts, record = split_dataset(dataset, val_fraction=0.1, test_fraction=0.1, seed=0)
    train, val, test = parts["train"], parts["val"], parts["test"]
    write_split("logs/run/split.json", record)      # the image keys and references

The same dataset, fractions and seed always give the same split, whatever order the
loader listed the images in (the keys are sorted before the seeded shuffle). A recorded
split (``split.json``, or a JSON file of your own with ``{"train": [...], "val": [...],
"test": [...]}`` lists of image keys) is applied with ``apply_split``.

An image's key is ``"<source>.<id>"`` (e.g. ``"coco.139"``, ``"instance_png.FudanPed00001"``),
the same string ``Dataset.image_from_source_map`` uses.
"""
import copy
import json
import os

import numpy as np

SUBSETS = ("train", "val", "test")


class SplitError(ValueError):
    """A split that cannot be made or applied; the message names the fix."""


def image_key(dataset, image_id):
    """``"<source>.<id>"`` of an image (stable across loads of the same files)."""
    info = dataset.image_info[image_id]
    return "{}.{}".format(info["source"], info["id"])


def split_keys(keys, val_fraction=0.0, test_fraction=0.0, seed=0):
    """{"train": [...], "val": [...], "test": [...]}: ``keys`` split by a seeded shuffle.

    The counts are ``round(n * fraction)``, at least one image for a fraction above
    zero, and training keeps at least one image. Each list is sorted.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise SplitError("{} = {}: use a fraction in [0, 1), e.g. 0.1".format(name, value))
    if val_fraction + test_fraction >= 1:
        raise SplitError("val_fraction + test_fraction = {:g}: nothing is left for training; "
                         "keep their sum below 1".format(val_fraction + test_fraction))
    keys = sorted(set(str(k) for k in keys))
    n = len(keys)

    def count(fraction):
        return 0 if fraction <= 0 else max(1, int(round(n * fraction)))

    n_test, n_val = count(test_fraction), count(val_fraction)
    if n_test + n_val >= n:
        raise SplitError("{} images cannot give {} test and {} validation images and keep one "
                         "for training; lower --val-fraction/--test-fraction or add images"
                         .format(n, n_test, n_val))
    order = [keys[i] for i in np.random.RandomState(int(seed)).permutation(n)]
    return {"test": sorted(order[:n_test]), "val": sorted(order[n_test:n_test + n_val]),
            "train": sorted(order[n_test + n_val:])}


def subset(dataset, image_ids):
    """A prepared copy of ``dataset`` holding only ``image_ids`` (internal ids), in the
    order given. The copy shares the loader's state (class maps, COCO index, ...)."""
    part = copy.copy(dataset)
    part.image_info = [dataset.image_info[int(i)] for i in image_ids]
    part.prepare()
    return part


def apply_split(dataset, keys_by_subset, source="the split"):
    """{"train": Dataset, ...} for the subsets of ``keys_by_subset`` (lists of image keys).

    A key that the dataset does not hold raises SplitError naming it (the data changed
    since the split was recorded).
    """
    index = {image_key(dataset, i): i for i in dataset.image_ids}
    parts = {}
    for name, keys in keys_by_subset.items():
        missing = [k for k in keys if str(k) not in index]
        if missing:
            raise SplitError("{}: {} of the {} {} images are not in the dataset, e.g. {}; "
                             "the data changed since the split was made. Split again (leave "
                             "out the recorded split) or restore the images.".format(
                                 source, len(missing), len(keys), name, missing[:3]))
        parts[name] = subset(dataset, [index[str(k)] for k in keys])
    return parts


def split_dataset(dataset, val_fraction=0.0, test_fraction=0.0, seed=0):
    """(parts, record): ``parts`` maps "train", "val", "test" to prepared Datasets (empty
    ones for a zero fraction); ``record`` is what ``write_split`` saves."""
    keys = [image_key(dataset, i) for i in dataset.image_ids]
    if len(set(keys)) != len(keys):
        raise SplitError("the dataset holds the same image key twice (e.g. one image "
                         "listed twice); the split needs one key per image")
    by_subset = split_keys(keys, val_fraction, test_fraction, seed)
    parts = apply_split(dataset, by_subset)
    record = make_record(parts, seed=seed, val_fraction=val_fraction,
                         test_fraction=test_fraction)
    return parts, record


def make_record(parts, **about):
    """The JSON-ready description of a split: ``about`` (seed, fractions, paths, ...) and
    per subset the image keys and references."""
    record = dict(about)
    record["subsets"] = {}
    for name, ds in parts.items():
        if ds is None:
            continue
        record["subsets"][name] = {
            "count": len(ds.image_ids),
            "keys": [image_key(ds, i) for i in ds.image_ids],
            "references": [str(ds.image_reference(i)) for i in ds.image_ids],
        }
    return record


def write_split(path, record):
    """Write a split record as JSON (atomically); returns the path."""
    tmp = path + ".part"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, path)
    return path


def read_split(path):
    """{"train": [keys], "val": [...], "test": [...]} from a ``split.json`` written by
    ``write_split`` or from a plain ``{"train": [...], ...}`` file of image keys."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SplitError("cannot read the split {}: {}".format(path, e)) from None
    subsets = data.get("subsets", data) if isinstance(data, dict) else None
    if not isinstance(subsets, dict) or not set(subsets) & set(SUBSETS):
        raise SplitError("{}: expected {{\"train\": [image keys], \"val\": [...], \"test\": "
                         "[...]}} or a split.json written by mrcnn train".format(path))
    out = {}
    for name in SUBSETS:
        value = subsets.get(name)
        if value is None:
            continue
        keys = value.get("keys") if isinstance(value, dict) else value
        if not isinstance(keys, list):
            raise SplitError("{}: the {!r} entry must be a list of image keys".format(path, name))
        out[name] = [str(k) for k in keys]
    return out
