"""Tiny configs for the sample tests: the shapes sample's small backbone, 128 px images,
few ROIs, one or two steps per epoch (a train/evaluate/detect round trip in seconds)."""
from mrcnn.config import Config
from samples.shapes.train import ShapesTrainConfig, small_backbone, small_backbone_shapes
from samples.coco.coco import CocoSampleConfig
from samples.traffic.traffic import TrafficConfig


class TinyMixin(object):
    BACKBONE = staticmethod(small_backbone)
    COMPUTE_BACKBONE_SHAPE = staticmethod(small_backbone_shapes)
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    MASK_HEAD_CHANNELS = 64
    RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    POST_NMS_ROIS_TRAINING = 64
    POST_NMS_ROIS_INFERENCE = 32
    TRAIN_ROIS_PER_IMAGE = 16
    MAX_GT_INSTANCES = 10
    DETECTION_MIN_CONFIDENCE = 0.0
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1


class TinyTrafficConfig(TinyMixin, TrafficConfig):
    NAME = "tinytraffic"


class TinyCocoConfig(TinyMixin, CocoSampleConfig):
    NAME = "tinycoco"


class TinyShapesConfig(TinyMixin, ShapesTrainConfig):
    """The shapes sample at 64 px, for the export and demo tests (square mode)."""
    NAME = "tinyshapes"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    IMAGES_PER_GPU = 2
    STEPS_PER_EPOCH = 6
    DETECTION_MAX_INSTANCES = 20
    DETECTION_MIN_CONFIDENCE = 0.0


class TinyShapesDemoConfig(TinyShapesConfig):
    """The browser test's model: a candidate per class per ROI, so that even the tiny,
    barely trained model always shows detections at the slider's floor."""
    DETECTION_PER_CLASS = True


class TinyPad64Config(Config):
    """ResNet-50, pad64: the export's in-graph anchors and any-size input."""
    NAME = "tinypad64"
    NUM_CLASSES = 1 + 3
    BACKBONE = "resnet50"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "pad64"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 256
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    MASK_HEAD_CHANNELS = 32
    POST_NMS_ROIS_INFERENCE = 50
    DETECTION_MAX_INSTANCES = 12
    DETECTION_MIN_CONFIDENCE = 0.0


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
