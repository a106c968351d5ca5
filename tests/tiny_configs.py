"""The tests' tiny configs, all made by one factory: ``tiny_config(name, backbone, **overrides)``
(an instance) or ``tiny_config_class(...)`` (the class, to subclass or to name in
``--config tiny_configs:Class``).

backbone="small": ``mrcnn.backbone.small_backbone`` with 64-channel FPN and heads, 128 px
    images, anchors 16..256 px, few ROIs, no confidence floor: a train/evaluate/detect
    round trip in seconds. For the samples' and the CLI's tests.
backbone="resnet50" (or "resnet101"): the classic ResNet with its classic layer names, 64 px
    images, anchors 8..128 px, 4 classes: for the tests of weight files, layer freezing and
    the network's layers.
Both train with few anchors and ROIs, two steps per epoch and one validation step.

base: the Config subclass to start from (a sample's config, to test that sample); the
preset's values replace the base's, then ``overrides`` replace both.
sizes="base": keep the base's image size, anchors and ROI counts (only the network, the
    steps and the overrides change): a sample's own training with a narrower network.
"""
from mrcnn.backbone import small_backbone, small_backbone_shapes
from mrcnn.config import Config
from samples.coco.coco import CocoSampleConfig
from samples.shapes.train import ShapesTrainConfig
from samples.traffic.traffic import TrafficConfig

# what every tiny run shares: few anchors and ROIs, two steps and one validation step
TINY_TRAINING = dict(
    IMAGES_PER_GPU=1,
    RPN_TRAIN_ANCHORS_PER_IMAGE=32,
    POST_NMS_ROIS_TRAINING=64,
    TRAIN_ROIS_PER_IMAGE=16,
    STEPS_PER_EPOCH=2,
    VALIDATION_STEPS=1,
)

PRESETS = {
    "small": dict(
        TINY_TRAINING,
        BACKBONE=staticmethod(small_backbone),
        COMPUTE_BACKBONE_SHAPE=staticmethod(small_backbone_shapes),
        TOP_DOWN_PYRAMID_SIZE=64,
        FPN_CLASSIF_FC_LAYERS_SIZE=64,
        MASK_HEAD_CHANNELS=64,
        IMAGE_MIN_DIM=128,
        IMAGE_MAX_DIM=128,
        RPN_ANCHOR_SCALES=(16, 32, 64, 128, 256),
        POST_NMS_ROIS_INFERENCE=32,
        MAX_GT_INSTANCES=10,
        DETECTION_MIN_CONFIDENCE=0.0,
    ),
    "resnet": dict(
        TINY_TRAINING,
        IMAGE_MIN_DIM=64,
        IMAGE_MAX_DIM=64,
        RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128),
        MAX_GT_INSTANCES=5,
        MINI_MASK_SHAPE=(28, 28),
    ),
}

# the preset values that sizes="base" leaves to the base class
SIZES = ("IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "RPN_ANCHOR_SCALES", "RPN_TRAIN_ANCHORS_PER_IMAGE",
         "POST_NMS_ROIS_TRAINING", "POST_NMS_ROIS_INFERENCE", "TRAIN_ROIS_PER_IMAGE",
         "MAX_GT_INSTANCES", "MINI_MASK_SHAPE", "DETECTION_MIN_CONFIDENCE")

# the number of classes when the base does not say (Config's 1 builds no model)
DEFAULT_NUM_CLASSES = 4


def tiny_config_class(name="tiny", backbone="small", base=Config, sizes="tiny", **overrides):
    """A tiny Config subclass of ``base`` named ``name`` (see the module docstring)."""
    if backbone == "small":
        attrs = dict(PRESETS["small"])
    elif backbone in ("resnet50", "resnet101"):
        attrs = dict(PRESETS["resnet"], BACKBONE=backbone)
    else:
        raise ValueError("tiny_config: backbone={!r}; use 'small', 'resnet50' or 'resnet101'"
                         .format(backbone))
    if sizes == "base":
        attrs = {k: v for k, v in attrs.items() if k not in SIZES}
    elif sizes != "tiny":
        raise ValueError("tiny_config: sizes={!r}; use 'tiny' or 'base'".format(sizes))
    if base.NUM_CLASSES < 2:
        attrs["NUM_CLASSES"] = DEFAULT_NUM_CLASSES
    attrs["NAME"] = name
    for key, value in overrides.items():
        if key in ("BACKBONE", "COMPUTE_BACKBONE_SHAPE") and callable(value):
            value = staticmethod(value)  # a plain function would become a method
        attrs[key] = value
    class_name = "".join(part.capitalize() for part in name.split("_")) + "Config"
    return type(class_name, (base,), attrs)


def tiny_config(name="tiny", backbone="small", base=Config, sizes="tiny", **overrides):
    """An instance of ``tiny_config_class(...)``."""
    return tiny_config_class(name, backbone, base, sizes, **overrides)()


# ---------------------------------------------------------------- named configs
# (named so that ``--config tiny_configs:<Class>`` finds them)

class TinyTrafficConfig(tiny_config_class("tinytraffic", base=TrafficConfig)):
    """The traffic sample's config, tiny."""


class TinyCocoConfig(tiny_config_class("tinycoco", base=CocoSampleConfig,
                                        DETECTION_MAX_INSTANCES=20)):
    """The COCO sample's config, tiny; 20 detections per image (of 100 by default: the
    barely trained model's are noise, and the whole-set evaluation pastes, matches and
    encodes each of them)."""


class TinyShapesConfig(tiny_config_class(
        "tinyshapes", base=ShapesTrainConfig, IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64,
        IMAGES_PER_GPU=2, STEPS_PER_EPOCH=6, DETECTION_MAX_INSTANCES=20)):
    """The shapes sample at 64 px, for the export and demo tests (square mode)."""


class TinyShapesDemoConfig(TinyShapesConfig):
    """The browser test's model: a candidate per class per ROI, so that even the tiny,
    barely trained model always shows detections at the slider's floor."""
    DETECTION_PER_CLASS = True


class TinyPad64Config(tiny_config_class(
        "tinypad64", backbone="resnet50", NUM_CLASSES=1 + 3, IMAGE_RESIZE_MODE="pad64",
        IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=256, TOP_DOWN_PYRAMID_SIZE=64,
        FPN_CLASSIF_FC_LAYERS_SIZE=64, MASK_HEAD_CHANNELS=32, POST_NMS_ROIS_INFERENCE=50,
        DETECTION_MAX_INSTANCES=12, DETECTION_MIN_CONFIDENCE=0.0)):
    """ResNet-50, pad64: the export's in-graph anchors and any-size input."""


def train_tiny_shapes(out_dir, seed=0):
    """Train TinyShapesConfig for one short epoch; returns the checkpoint path (with
    class_names.json beside it, as the samples' train command writes)."""
    import json
    import os
    import keras
    from mrcnn import model as modellib
    from samples.shapes.shapes import ShapesDataset
    keras.utils.set_random_seed(seed)
    train = ShapesDataset()
    train.load_shapes(24, 64, 64, seed=seed)
    train.prepare()
    model = modellib.MaskRCNN("training", TinyShapesConfig(), out_dir)
    model.train(train, None, 0.02, 1, "all", seed=seed, verbose=0)
    weights = model.find_last()
    with open(os.path.join(os.path.dirname(weights), "class_names.json"), "w") as f:
        json.dump(train.class_names, f)
    return weights
