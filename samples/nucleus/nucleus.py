"""Nuclei in microscopy images (Kaggle Data Science Bowl 2018, BBBC038, CC0).

The data is the usual nucleus layout, ``<dir>/<id>/images/<id>.png`` and
``<dir>/<id>/masks/*.png`` (one binary PNG per nucleus), as in
``../shared/data/nucleus_dsb2018/stage1_test`` (65 images, 4,152 nuclei).

Fixed split: the image ids sorted, every fifth one (positions 0, 5, ..., 60) is
validation -- the 13 ids of ``VAL_IDS`` -- and the other 52 are training.

Training uses random 256x256 crops (``IMAGE_RESIZE_MODE = "crop"``); inference runs on
the whole image padded to a multiple of 64 (``"pad64"``), as the classic sample did.
"""
import os

from mrcnn.config import Config
from mrcnn.datasets import MaskFolderDataset

from mrcnn.cli import SampleError

VAL_IDS = [
    "0114f484a16c152baa2d82fdd43740880a762c93f436c8988ac461c5c9dbe7d5",
    "0f1f896d9ae5a04752d3239c690402c022db4d72c0d2c087d73380896f72c466",
    "1962d0c5faf3e85cda80e0578e0cb7aca50826d781620e5c1c4cc586bc69f81a",
    "295682d9eb5acb5c1976a460c085734bfaf38482b0a3f02591c2bfdcd4128549",
    "432f367a4c5b5674de2e2977744d10289a064e5704b21af6607b4975be47c580",
    "4be73d68f433869188fe5e7f09c7f681ed51003da6aa5d19ce368726d8e271ee",
    "52b267e20519174e3ce1e1994b5d677804b16bc670aa5f6ffb6344a0fdf63fde",
    "697a05c6fe4a07c601d46da80885645ad574ea19b47ee795ccff216c9f1f1808",
    "8922a6ac8fd0258ec27738ca101867169b20d90a60fc84f93df77acd5bf7c80b",
    "a4816cc1fb76cb3c5e481186833fc0ae9cf426a1406a2607e974e65e9cddba4f",
    "bdc789019cee8ddfae20d5f769299993b4b330b2d38d1218646cf89e77fbbd4d",
    "d8d4bf68a76e4e4c5f21de7ac613451f7115a04db686151e78b8ec0b6a22022b",
    "eea70a7948d25a9a791dbcb39228af4ea4049fe5ebdee9c04884be8cca3da835",
]
DEFAULT_DIR = os.path.join("..", "shared", "data", "nucleus_dsb2018", "stage1_test")


class NucleusConfig(Config):
    """From scratch on a CPU: ResNet-50 FPN on 256x256 crops."""
    NAME = "nucleus"
    NUM_CLASSES = 1 + 1
    BACKBONE = "resnet50"
    IMAGES_PER_GPU = 2
    IMAGE_RESIZE_MODE = "crop"
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 256
    IMAGE_MIN_SCALE = 0
    TRAIN_BN = None                # from scratch: batch norm learns
    # From scratch on small objects (see bench/RESULTS.md, nucleus record): no batch
    # norm in the mask head, exact ROIAlign sampling, one candidate per class per ROI,
    # GT boxes among the training proposals (positives before the RPN learns), and a
    # 128-channel mask head (nuclei are simple blobs; most of a step is the mask head).
    MASK_HEAD_BN = False
    ROI_ALIGN_PIXEL_ALIGNED = True
    DETECTION_PER_CLASS = True
    TRAIN_ROIS_INCLUDE_GT = True
    MASK_HEAD_CHANNELS = 128
    # nuclei are small and many
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 128
    RPN_NMS_THRESHOLD = 0.9
    POST_NMS_ROIS_TRAINING = 1000
    POST_NMS_ROIS_INFERENCE = 2000
    TRAIN_ROIS_PER_IMAGE = 128
    ROI_POSITIVE_RATIO = 0.25       # torchvision's: 32 positives of 128
    MAX_GT_INSTANCES = 200
    DETECTION_MAX_INSTANCES = 400
    DETECTION_MIN_CONFIDENCE = 0.5
    MINI_MASK_SHAPE = (56, 56)
    MEAN_PIXEL = [43.53, 39.56, 48.22]
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 5
    LEARNING_RATE = 0.01


class NucleusInferenceConfig(NucleusConfig):
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "pad64"    # whole images, padded to a multiple of 64
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 2048
    RPN_NMS_THRESHOLD = 0.7


def load_nucleus(dataset_dir, subset, args=None):
    """The "train" (52 images) or "val" (13 images) part of the fixed split; "all"
    gives the 65."""
    dataset_dir = dataset_dir or DEFAULT_DIR
    if not os.path.isdir(dataset_dir):
        raise SampleError("--dataset {}: no such folder (it should hold <id>/images/ and "
                          "<id>/masks/ folders, e.g. {})".format(dataset_dir, DEFAULT_DIR))
    ids = sorted(d for d in os.listdir(dataset_dir)
                 if os.path.isdir(os.path.join(dataset_dir, d, "images")))
    if not ids:
        raise SampleError("--dataset {}: no <id>/images/ folders there".format(dataset_dir))
    if subset == "val":
        ids = [i for i in ids if i in set(VAL_IDS)] or ids[::5]
    elif subset == "train":
        val = set(VAL_IDS) if set(VAL_IDS) & set(ids) else set(ids[::5])
        ids = [i for i in ids if i not in val]
    elif subset != "all":
        raise SampleError("subset {!r}: use train, val or all".format(subset))
    dataset = MaskFolderDataset()
    dataset.load_folder(dataset_dir, class_name="nucleus", image_ids=ids, source="nucleus")
    dataset.prepare()
    return dataset
