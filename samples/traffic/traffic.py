"""Traffic scenes from Open Images: Person, Car, Traffic light, Traffic sign.

    from samples.traffic.traffic import TrafficConfig, load_traffic
    train = load_traffic("data/traffic", "train")      # data/traffic/train
    val = load_traffic("data/traffic", "val")          # data/traffic/validation
"""
import os

from mrcnn.config import Config, inference_config_class
from openimages.dataset import OpenImagesDataset

from mrcnn.cli import SampleError

CLASSES = ["Person", "Car", "Traffic light", "Traffic sign"]
CLASS_NAMES = ["BG"] + CLASSES
SUBSET_FOLDERS = {"train": "train", "val": "validation", "validation": "validation"}


class TrafficConfig(Config):
    """Fine-tuning from COCO weights on the four traffic classes."""
    NAME = "traffic"
    NUM_CLASSES = 1 + len(CLASSES)
    BACKBONE = "resnet50"
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 640
    IMAGE_MAX_DIM = 640
    STEPS_PER_EPOCH = 500
    VALIDATION_STEPS = 50
    DETECTION_MIN_CONFIDENCE = 0.7
    # Open Images masks are not exhaustive: few ROIs per image keeps the
    # unlabelled instances from swamping the background class.
    TRAIN_ROIS_PER_IMAGE = 128
    MAX_GT_INSTANCES = 50


# detection: one image per batch (the command line's one rule, mrcnn.config)
TrafficInferenceConfig = inference_config_class(TrafficConfig)


def load_traffic(dataset_dir, subset, args=None):
    """The train ("train"), validation ("val"), "test" or "all" (train and validation)
    part of a folder written by ``python -m samples.traffic.train download``
    (``<dir>/train``, ``<dir>/validation``, ``<dir>/test``)."""
    if not dataset_dir:
        raise SampleError("--dataset is needed: the folder the download command wrote")
    parts = ["train", "val"] if subset == "all" else [subset]
    dataset = OpenImagesDataset()
    for part in parts:
        folder = os.path.join(dataset_dir, SUBSET_FOLDERS.get(part, part))
        if not os.path.isfile(os.path.join(folder, "manifest.json")):
            raise SampleError("--dataset {}: no {} subset there ({} has no manifest.json). "
                              "Download it first: python -m samples.traffic.train download "
                              "--out {}".format(dataset_dir, part, folder, dataset_dir))
        dataset.load_dataset(folder, class_names=CLASSES, source="traffic")
    dataset.prepare()
    if not len(dataset.image_ids):
        raise SampleError("--dataset {}: the {} subset holds no images with masks of {}"
                          .format(dataset_dir, subset, ", ".join(CLASSES)))
    return dataset
