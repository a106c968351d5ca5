"""Any COCO-format instance dataset: COCO itself, Label Studio, CVAT, Roboflow exports.

``--dataset`` is a COCO JSON file or a folder holding one. In a folder these are tried
in order: ``annotations.json``, ``instances.json``, ``result.json`` (Label Studio),
``annotations/instances_default.json`` (CVAT "COCO 1.0"), ``_annotations.coco.json``
(Roboflow), then the folder's only ``*.json`` (or ``annotations/*.json``). Images are
looked up in ``images/`` beside the JSON, else beside the JSON itself (``--images``
overrides).

Validation: ``--val-dataset`` (another JSON or folder) when given; otherwise a fixed
split of the one file, every tenth image (in image-id order) for validation
(``--val-every``). ``evaluate`` scores the whole given set unless ``--subset val``.
"""
from mrcnn.cli import SampleError
from mrcnn.cli.data import COCO_CANDIDATES as CANDIDATES  # noqa: F401  (the old names)
from mrcnn.cli.data import find_annotation
from mrcnn.config import Config
from mrcnn.datasets import CocoDataset


class CocoSampleConfig(Config):
    """Fine-tuning from the COCO weights on a custom COCO-format dataset. NUM_CLASSES is
    set from the annotation file at run time (1 + its categories)."""
    NAME = "coco_custom"
    NUM_CLASSES = 1 + 80
    BACKBONE = "resnet50"
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 512
    IMAGE_MAX_DIM = 512
    STEPS_PER_EPOCH = 500
    VALIDATION_STEPS = 20
    DETECTION_MIN_CONFIDENCE = 0.5


def load_coco_sample(dataset_dir, subset, args=None):
    """"train", "val" or "all" of a COCO-format dataset (see the module docstring)."""
    from mrcnn.datasets.coco import _quiet_coco
    if subset not in ("train", "val", "all"):
        raise SampleError("subset {!r}: use train, val or all".format(subset))
    val_path = getattr(args, "val_dataset", None)
    every = getattr(args, "val_every", None) or 10
    path = val_path if (subset == "val" and val_path) else dataset_dir
    json_path, image_dir = find_annotation(path)
    image_dir = getattr(args, "images", None) or image_dir
    try:
        coco = _quiet_coco(json_path)
        keep = None
        if subset in ("train", "val") and not val_path:
            ids = sorted(coco.imgs)
            val = set(ids[::every])
            keep = [i for i in ids if (i in val) == (subset == "val")]
        dataset = CocoDataset()
        dataset.load_coco(coco, image_dir, image_ids=keep)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise SampleError("--dataset {}: {}".format(path, e))
    dataset.prepare()
    if not len(dataset.image_ids):
        raise SampleError("--dataset {}: no images in the {} subset".format(path, subset))
    return dataset
