"""``--format``: the dataset layouts the ``mrcnn`` command reads without any Python, and
the train / val / test split.

=============  =================================================================
--format       --dataset and the options it needs
=============  =================================================================
coco           a COCO instances JSON, or a folder holding one (Label Studio, CVAT,
               Roboflow exports are found); images in ``images/`` beside it, else
               beside the JSON (``--images DIR``)
via            a VIA 1/2 region JSON, or a folder holding one; images beside it
               (``--images DIR``); several classes: ``--class-attribute NAME``
instance-png   the image folder; ``--masks DIR`` of instance-id PNGs named by
               ``--mask-name`` (default ``{stem}_mask.png``); several classes:
               ``--class-map 1=car,2=person``
mask-folders   the folder of ``<id>/images/<image>`` and ``<id>/masks/*.png``
npy            the image folder with a ``<stem>.npy`` dict (boxes, labels, masks)
               per image (``--annotations DIR`` when elsewhere); ``--classes``
               names the labels 1, 2, ...
openimages     a folder written by ``python -m openimages`` (``manifest.json``), or
               one with ``train/`` and ``validation/`` downloads in it
=============  =================================================================

Splits: ``--val PATH`` (a second dataset of the same format), else ``--val-fraction``
of the images; ``--test-fraction`` holds out a test set; ``--seed`` makes the split
(default seed 0); ``--split FILE`` applies a recorded one. ``train`` records the split
it used in ``split.json`` beside the checkpoints, and ``evaluate`` / ``calculate-ap``
with weights of that run use it (``--subset test`` is the held-out test set).
"""
import glob
import os

from ..datasets.split import (SplitError, apply_split, make_record, read_split,
                              split_dataset)
from .common import CliError, beside, split_names, weights_file

FORMATS_HELP = """\
--format      --dataset, and the options the format needs
coco          a COCO instances JSON, or a folder holding one (Label Studio, CVAT and
              Roboflow exports are found); images in images/ beside it, else beside
              the JSON, or --images DIR
via           a VIA 1/2 region JSON, or a folder holding one; images beside it, or
              --images DIR; several classes: --class-attribute NAME
instance-png  the image folder; --masks DIR of instance-id PNGs named by --mask-name
              (default {stem}_mask.png); several classes: --class-map 1=car,2=person
mask-folders  a folder of <id>/images/<image> and <id>/masks/*.png (one PNG each
              instance)
npy           the image folder, a <stem>.npy dict (boxes, labels, masks) per image
              (--annotations DIR when elsewhere); --classes names labels 1, 2, ...
openimages    a folder written by python -m openimages (manifest.json), or one
              holding train/ and validation/ downloads

Validation: --val PATH (a second dataset), else --val-fraction of the images
(seeded by --seed, default 0); --test-fraction holds out a test set. train
records the split in split.json beside the checkpoints; evaluate and
calculate-ap with that run's weights use it (--subset test: the test set)."""

FORMATS = ("coco", "via", "instance-png", "mask-folders", "npy", "openimages")
SUBSETS = ("train", "val", "test", "all")

COCO_CANDIDATES = ["annotations.json", "instances.json", "result.json",
                   os.path.join("annotations", "instances_default.json"),
                   "_annotations.coco.json"]
VIA_CANDIDATES = ["via_region_data.json", "via_project.json", "annotations.json"]


# ---------------------------------------------------------------- finding files

def find_annotation(path):
    """(COCO annotation JSON, image folder) for a --dataset value: the file itself, or in
    a folder ``annotations.json``, ``instances.json``, ``result.json`` (Label Studio),
    ``annotations/instances_default.json`` (CVAT), ``_annotations.coco.json`` (Roboflow),
    else the folder's only ``*.json`` (or ``annotations/*.json``). Images: ``images/``
    beside the JSON (beside ``annotations/`` for CVAT), else the JSON's folder."""
    if path is None:
        raise CliError("--dataset is needed: a COCO JSON file or a folder holding one")
    json_path = _find_json(path, COCO_CANDIDATES, "COCO", subfolders=("annotations",))
    base = os.path.dirname(os.path.abspath(json_path))
    if os.path.basename(base) == "annotations":  # CVAT: annotations/ next to images/
        base = os.path.dirname(base)
    images = os.path.join(base, "images")
    return json_path, images if os.path.isdir(images) else base


def _find_json(path, candidates, what, subfolders=()):
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise CliError("--dataset {}: no such file or folder".format(path))
    for c in candidates:
        if os.path.isfile(os.path.join(path, c)):
            return os.path.join(path, c)
    found = sorted(glob.glob(os.path.join(path, "*.json")) +
                   [p for s in subfolders for p in glob.glob(os.path.join(path, s, "*.json"))])
    if len(found) != 1:
        raise CliError("--dataset {}: {} JSON files there ({}); name the {} annotation file "
                       "itself".format(path, len(found), ", ".join(found[:5]) or "none", what))
    return found[0]


# ---------------------------------------------------------------- the loaders

def _need_folder(option, path):
    if not path:
        raise CliError("{} is needed for this --format".format(option))
    if not os.path.isdir(path):
        raise CliError("{} {}: no such folder".format(option, path))
    return path


def _single_class(args):
    names = split_names(args.classes) if getattr(args, "classes", None) else ["object"]
    if len(names) != 1:
        raise CliError("--classes {}: this --format has one class per dataset here; give "
                       "one name (several classes: {})".format(
                           args.classes, "--class-attribute for via, --class-map for "
                           "instance-png, or the coco format"))
    return names[0]


def parse_class_map(text):
    """"1=car,2=person" -> {1: "car", 2: "person"}."""
    out = {}
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        value, sep, name = part.partition("=")
        try:
            value = int(value)
        except ValueError:
            value = None
        if not sep or value is None or not name.strip():
            raise CliError("--class-map {!r}: use VALUE=NAME pairs, e.g. 1=car,2=person (the "
                           "pixel value of an instance in the mask and its class)".format(text))
        out[value] = name.strip()
    return out


def load_coco_format(path, args):
    from ..datasets import CocoDataset
    from ..datasets.coco import _quiet_coco
    json_path, image_dir = find_annotation(path)
    image_dir = getattr(args, "images", None) or image_dir
    try:
        coco = _quiet_coco(json_path)
        class_ids = None
        if getattr(args, "classes", None):
            by_name = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
            wanted = split_names(args.classes)
            unknown = [n for n in wanted if n not in by_name]
            if unknown:
                raise CliError("--classes: {} not in {} (its categories: {})".format(
                    ", ".join(unknown), json_path, ", ".join(sorted(by_name))))
            class_ids = [by_name[n] for n in wanted]
        dataset = CocoDataset()
        dataset.load_coco(coco, image_dir, class_ids=class_ids)
        dataset.annotation_path = json_path
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise CliError("--dataset {}: {}".format(path, e))
    return dataset


def load_via_format(path, args):
    from ..datasets import ViaDataset
    json_path = _find_json(path, VIA_CANDIDATES, "VIA")
    dataset = ViaDataset()
    names = split_names(args.classes) if getattr(args, "classes", None) else None
    try:
        if getattr(args, "class_attribute", None):
            dataset.load_via(json_path, image_dir=getattr(args, "images", None),
                             class_attribute=args.class_attribute, class_names=names)
        else:
            dataset.load_via(json_path, image_dir=getattr(args, "images", None),
                             class_name=_single_class(args))
    except (FileNotFoundError, ValueError) as e:
        raise CliError("--dataset {}: {}".format(path, e))
    return dataset


def load_instance_png_format(path, args):
    from ..datasets import InstancePngDataset
    image_dir = getattr(args, "images", None) or path
    _need_folder("--dataset (the image folder)", image_dir)
    mask_dir = _need_folder("--masks (the folder of instance-id mask PNGs)",
                            getattr(args, "masks", None))
    dataset = InstancePngDataset()
    mask_name = getattr(args, "mask_name", None) or "{stem}_mask.png"
    try:
        if getattr(args, "class_map", None):
            class_map = parse_class_map(args.class_map)
            names = split_names(args.classes) if getattr(args, "classes", None) else None
            dataset.load_folder(image_dir, mask_dir, mask_name=mask_name, class_map=class_map,
                                class_names=names)
        else:
            dataset.load_folder(image_dir, mask_dir, mask_name=mask_name,
                                class_name=_single_class(args))
    except (FileNotFoundError, ValueError, KeyError, IndexError) as e:
        raise CliError("--dataset {}: {}".format(path, e))
    return dataset


def load_mask_folders_format(path, args):
    from ..datasets import MaskFolderDataset
    _need_folder("--dataset", path)
    dataset = MaskFolderDataset()
    try:
        dataset.load_folder(path, class_name=_single_class(args))
    except (FileNotFoundError, ValueError) as e:
        raise CliError("--dataset {}: {}".format(path, e))
    return dataset


def load_npy_format(path, args):
    from ..datasets import NpyDataset
    image_dir = getattr(args, "images", None) or path
    _need_folder("--dataset (the image folder)", image_dir)
    if not getattr(args, "classes", None):
        raise CliError("--format npy needs --classes NAME,NAME,... (label 1 is the first "
                       "name, 2 the second, ...)")
    dataset = NpyDataset()
    try:
        dataset.load_folder(image_dir, split_names(args.classes),
                            annotation_dir=getattr(args, "annotations", None))
    except (FileNotFoundError, ValueError) as e:
        raise CliError("--dataset {}: {}".format(path, e))
    return dataset


def load_openimages_format(path, args):
    from openimages.dataset import OpenImagesDataset
    _need_folder("--dataset", path)
    if not os.path.isfile(os.path.join(path, "manifest.json")):
        raise CliError("--dataset {}: no manifest.json there; give a folder written by "
                       "python -m openimages (or its train/ or validation/ part)".format(path))
    dataset = OpenImagesDataset()
    names = split_names(args.classes) if getattr(args, "classes", None) else None
    try:
        dataset.load_dataset(path, class_names=names)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise CliError("--dataset {}: {}".format(path, e))
    return dataset


LOADERS = {"coco": load_coco_format, "via": load_via_format,
           "instance-png": load_instance_png_format, "mask-folders": load_mask_folders_format,
           "npy": load_npy_format, "openimages": load_openimages_format}


def load_format(path, args):
    """The whole dataset at ``path`` in ``args.format``, prepared; CliError when it
    cannot be read or holds no images."""
    fmt = getattr(args, "format", None)
    if fmt is None:
        raise CliError("--format is needed with --dataset: one of {}".format(", ".join(FORMATS)))
    if path is None:
        raise CliError("--dataset is needed")
    dataset = LOADERS[fmt](path, args)
    dataset.prepare()
    if not len(dataset.image_ids):
        raise CliError("--dataset {}: no annotated images found (--format {})".format(path, fmt))
    return dataset


# ---------------------------------------------------------------- splits

class FormatLoader(object):
    """``Sample.load_dataset`` of the installed command: the --format loader plus the
    split. Loads each path once per command."""

    def __init__(self):
        self._cache = {}
        self.record = None

    def whole(self, path, args):
        key = os.path.abspath(path) if path else None
        if key not in self._cache:
            self._cache[key] = load_format(path, args)
        return self._cache[key]

    def _openimages_parts(self, path, args):
        """{"train": folder, "val": folder} for an Open Images folder that holds
        train/ and validation/ downloads (the traffic sample's layout), else None."""
        if getattr(args, "format", None) != "openimages" or not path or \
                os.path.isfile(os.path.join(path, "manifest.json")):
            return None
        parts = {"train": os.path.join(path, "train"),
                 "val": os.path.join(path, "validation")}
        if all(os.path.isfile(os.path.join(p, "manifest.json")) for p in parts.values()):
            return parts
        return None

    def recorded_split(self, path, args):
        """The split to reuse: --split FILE, else split.json beside the weights when it
        was made on this dataset; None when there is none."""
        explicit = getattr(args, "split", None)
        if explicit:
            try:
                return read_split(explicit), explicit
            except SplitError as e:
                raise CliError(str(e))
        spec = getattr(args, "weights", None)
        if spec in (None, "none", "coco", "imagenet"):
            return None
        saved = beside(weights_file(spec, getattr(args, "_run_name", None),
                                    getattr(args, "logs", "logs")), "split.json")
        if not saved:
            return None
        import json
        with open(saved) as f:
            record = json.load(f)
        if record.get("dataset") != os.path.abspath(path):
            return None
        if record.get("val_dataset") and not getattr(args, "val", None):
            args.val = record["val_dataset"]  # trained with --val: validate on it again
        elif bool(record.get("val_dataset")) != bool(getattr(args, "val", None)):
            return None
        return read_split(saved), saved

    def __call__(self, path, subset, args):
        if subset not in SUBSETS:
            raise CliError("subset {!r}: use {}".format(subset, ", ".join(SUBSETS)))
        parts = self._openimages_parts(path, args)
        if parts is not None and not getattr(args, "val", None):
            args.val = parts["val"]
            path = parts["train"]
            args.dataset = path
        if subset == "all":
            return self.whole(path, args)
        try:
            recorded = self.recorded_split(path, args)
        except SplitError as e:
            raise CliError(str(e))
        if subset == "val" and getattr(args, "val", None):
            return self.whole(args.val, args)
        whole = self.whole(path, args)
        val_fraction = 0.0 if getattr(args, "val", None) else \
            float(getattr(args, "val_fraction", 0.0) or 0.0)
        test_fraction = float(getattr(args, "test_fraction", 0.0) or 0.0)
        seed = getattr(args, "seed", None)
        seed = 0 if seed is None else seed
        try:
            about = {"dataset": os.path.abspath(path), "format": args.format,
                     "val_dataset": os.path.abspath(args.val) if getattr(args, "val", None)
                     else None}
            if recorded is not None:
                keys, source = recorded
                chosen = apply_split(whole, {s: keys.get(s, []) for s in ("train", "val",
                                                                           "test")}, source)
                self.record = make_record(chosen, recorded=source, **about)
            else:
                chosen, record = split_dataset(whole, val_fraction, test_fraction, seed)
                self.record = dict(record, **about)
        except SplitError as e:
            raise CliError(str(e))
        dataset = chosen[subset]
        if not len(dataset.image_ids):
            if subset == "val":
                return None  # train without validation
            raise CliError("--dataset {}: the {} subset is empty (--{}-fraction is 0{}); use "
                           "--subset all, or set a fraction".format(
                               path, subset, subset, ", and the recorded split has none"
                               if recorded else ""))
        return dataset


def add_format_arguments(parser, command):
    """The --format options of the installed ``mrcnn`` command."""
    g = parser.add_argument_group("data (--format and what it needs)")
    g.add_argument("--format", choices=FORMATS, default=None,
                   help="the layout of --dataset: " + ", ".join(FORMATS) +
                        " (see mrcnn --help; no default: needed with --dataset)")
    g.add_argument("--images", default=None, metavar="DIR",
                   help="image folder (coco, via: default images/ beside the JSON, else the "
                        "JSON's folder; instance-png, npy: default --dataset)")
    g.add_argument("--masks", default=None, metavar="DIR",
                   help="instance-png: the folder of instance-id mask PNGs (no default: "
                        "needed for instance-png)")
    g.add_argument("--mask-name", default="{stem}_mask.png", metavar="PATTERN",
                   help="instance-png: a mask's file name, {stem} = the image's name "
                        "without extension")
    g.add_argument("--annotations", default=None, metavar="DIR",
                   help="npy: the folder of <stem>.npy files (default: the image folder)")
    g.add_argument("--classes", default=None, metavar="NAMES",
                   help="class names, comma-separated: npy: label 1, 2, ...; via, "
                        "instance-png, mask-folders: the one class (default: object); coco, "
                        "openimages: load only these; detect: names for the output")
    g.add_argument("--class-attribute", default=None, metavar="NAME",
                   help="via: the region attribute that holds the class (default: none, "
                        "every region is the one --classes class)")
    g.add_argument("--class-map", default=None, metavar="V=NAME,...",
                   help="instance-png: the class of each instance value, e.g. 1=car,2=person "
                        "(default: every instance is the one --classes class)")
    if command == "detect":
        return
    s = parser.add_argument_group("split")
    s.add_argument("--val", default=None, metavar="PATH",
                   help="a second dataset (same format and options) for validation, "
                        "instead of --val-fraction (default: none)")
    s.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of --dataset's images held out for validation")
    s.add_argument("--test-fraction", type=float, default=0.0,
                   help="fraction of --dataset's images held out as a test set (evaluate "
                        "--subset test)")
    s.add_argument("--split", default=None, metavar="FILE",
                   help="a recorded split to apply: a run's split.json, or JSON "
                        "{\"train\": [keys], \"val\": [...], \"test\": [...]} of image keys "
                        "<source>.<id> (default: the split.json beside --weights when it was "
                        "made on this --dataset, else a new seeded split)")
    if command != "train":
        s.add_argument("--seed", type=int, default=None,
                       help="the split's seed, as given to train (default: 0)")
