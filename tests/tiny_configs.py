"""Tiny configs for the sample tests: the shapes sample's small backbone, 128 px images,
few ROIs, one or two steps per epoch (a train/evaluate/detect round trip in seconds)."""
from samples.shapes.train import small_backbone, small_backbone_shapes
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
