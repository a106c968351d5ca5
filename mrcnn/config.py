"""Mask R-CNN configuration.

Subclass ``Config`` and override the class attributes you need, exactly as with the
classic Matterport library::

    class ShapesConfig(Config):
        NAME = "shapes"
        IMAGES_PER_GPU = 8
        NUM_CLASSES = 1 + 3

The derived attributes (BATCH_SIZE, IMAGE_SHAPE, IMAGE_META_SIZE) are computed in
``__init__``, which also validates the configuration: a wrong value raises
``ConfigError`` (a ``ValueError``) that names the attribute, the value and the fix.
If you change an attribute on an instance, call ``validate()`` again.
"""
import json

import numpy as np

RESIZE_MODES = ("none", "square", "pad64", "crop")
BACKBONES = ("resnet50", "resnet101")
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
              "mrcnn_bbox_loss", "mrcnn_mask_loss")


class ConfigError(ValueError):
    """A configuration value that cannot work; the message says which and how to fix it."""


class Config(object):
    """Base configuration class. Don't use it directly: subclass it and override."""

    # Name the configurations, e.g. "coco" or "shapes". Used in log and checkpoint names.
    NAME = None

    # Number of GPUs to use. More than 1 trains with tf.distribute.MirroredStrategy.
    GPU_COUNT = 1

    # Images per GPU per step. 12 GB of GPU memory fits about two 1024x1024 images.
    IMAGES_PER_GPU = 2

    # Training steps per epoch (an epoch here is STEPS_PER_EPOCH batches, not a pass
    # over the dataset). Validation runs VALIDATION_STEPS batches after each epoch.
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50

    # "resnet50", "resnet101", or a callable graph builder. A callable needs
    # COMPUTE_BACKBONE_SHAPE: a function (config, image_shape) -> [[h, w], ...] per level.
    BACKBONE = "resnet101"
    COMPUTE_BACKBONE_SHAPE = None

    # Strides of each level of the FPN pyramid (P2..P6), for a ResNet backbone.
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]

    # Size of the fully-connected layers in the classification graph.
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024

    # Size of the top-down layers used to build the feature pyramid.
    TOP_DOWN_PYRAMID_SIZE = 256

    # Channels of the mask head's four 3x3 convs and its deconv (not in the classic
    # config, which fixed it at 256; keep 256 to load classic weights). Most of a
    # training step on small images is the mask head: 64 makes it 16x cheaper.
    MASK_HEAD_CHANNELS = 256

    # Batch norm after each of the mask head's four convs (classic: True, and classic
    # weights need it). False drops the mrcnn_mask_bn1..4 layers, as torchvision's head
    # does: trained from scratch on the few positive ROIs of a small batch, those
    # layers' statistics are poor, and masks learn faster without them. Without batch
    # norm the convs and the deconv start at He's variance instead of Glorot's.
    MASK_HEAD_BN = True

    # ROIAlign sampling. False (classic, what mask_rcnn_coco.h5 was trained with) puts
    # the image-normalised box straight on each pyramid level, which drifts by up to
    # 3/4 of a cell across the image. True samples every pixel at its exact place on
    # the level; it matters for small objects (nuclei, 10-20 px) trained from scratch.
    ROI_ALIGN_PIXEL_ALIGNED = False

    # Number of classification classes, including the background.
    NUM_CLASSES = 1

    # Length of square anchor side in pixels, one per pyramid level.
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)

    # Anchor width/height ratios at each cell (1 = square, 0.5 = wide).
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]

    # 1: an anchor at every feature-map cell; 2: every other cell; ...
    RPN_ANCHOR_STRIDE = 1

    # NMS threshold to filter RPN proposals.
    RPN_NMS_THRESHOLD = 0.7

    # How many anchors per image to use for RPN training.
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256

    # ROIs kept after tf.nn.top_k and before non-maximum suppression.
    PRE_NMS_LIMIT = 6000

    # ROIs kept after non-maximum suppression (training and inference).
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000

    # Store instance masks at a lower resolution, inside their boxes, to save memory.
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)  # (height, width) of the mini-mask

    # Input image resizing:
    #   none:   no resizing or padding; sides must already be multiples of 64.
    #   square: scale up so the short side >= IMAGE_MIN_DIM and the long side
    #           <= IMAGE_MAX_DIM, then zero-pad to IMAGE_MAX_DIM x IMAGE_MAX_DIM.
    #   pad64:  pad width and height to multiples of 64 (scale up first if
    #           IMAGE_MIN_DIM or IMAGE_MIN_SCALE says so); IMAGE_MAX_DIM is ignored.
    #   crop:   random IMAGE_MIN_DIM x IMAGE_MIN_DIM crops (training only).
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    # Minimum scaling ratio, checked after IMAGE_MIN_DIM. 0 means no minimum.
    IMAGE_MIN_SCALE = 0
    # 3 for RGB; other values need a backbone and MEAN_PIXEL to match.
    IMAGE_CHANNEL_COUNT = 3

    # Image mean (RGB), subtracted from the input.
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])

    # ROIs per image fed to the classifier/mask heads during training.
    TRAIN_ROIS_PER_IMAGE = 200

    # Fraction of positive ROIs used to train the classifier/mask heads.
    ROI_POSITIVE_RATIO = 0.33

    # Add the GT boxes to the proposals that ROIs are sampled from (torchvision and
    # Detectron do). The heads then see positives from the first step, before the RPN
    # proposes anything useful, which matters most when training from scratch.
    # False = classic: ROIs come from the RPN's proposals only.
    TRAIN_ROIS_INCLUDE_GT = False

    # Pooled ROIs.
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14

    # Shape of the output mask. The mask head upsamples once, so it is 2 * MASK_POOL_SIZE.
    MASK_SHAPE = [28, 28]

    # Maximum number of ground-truth instances in one image.
    MAX_GT_INSTANCES = 100

    # Bounding box refinement standard deviation for RPN and final detections.
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    # Max number of final detections.
    DETECTION_MAX_INSTANCES = 100

    # Minimum probability to accept a detected instance.
    DETECTION_MIN_CONFIDENCE = 0.7

    # Non-maximum suppression threshold for detection (per class).
    DETECTION_NMS_THRESHOLD = 0.3

    # How a ROI becomes detections. False (classic): one detection, for the ROI's
    # arg-max class, and none when that is the background. True (torchvision's rule):
    # one candidate per foreground class whose score reaches DETECTION_MIN_CONFIDENCE,
    # so a ROI that is 40% background and 60% nucleus still yields a nucleus. Use it
    # with a low DETECTION_MIN_CONFIDENCE (e.g. 0.05) when recall matters (AP).
    DETECTION_PER_CLASS = False

    # A pasted mask's pixel is inside the instance where the mask head's probability is
    # at least this (classic: 0.5). Slightly lower values give fuller masks from a model
    # whose mask probabilities are still soft, e.g. early in training from scratch.
    DETECTION_MASK_THRESHOLD = 0.5

    # Learning rate and momentum. (The paper uses 0.02; that can blow up weights here.)
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9

    # Weight decay regularization.
    WEIGHT_DECAY = 0.0001

    # Loss weights for more precise optimization.
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.,
        "rpn_bbox_loss": 1.,
        "mrcnn_class_loss": 1.,
        "mrcnn_bbox_loss": 1.,
        "mrcnn_mask_loss": 1.,
    }

    # Use the RPN ROIs (True) or externally generated ROIs (False) for training the heads.
    USE_RPN_ROIS = True

    # Train or freeze batch normalization layers:
    #     None: train BN layers (normal mode)
    #     False: freeze BN layers (good with small batch sizes)
    #     True: force training mode even when predicting
    TRAIN_BN = False

    # Where the box losses (RPN and head) turn from L2 into L1, in units of the deltas
    # divided by their std dev. 1.0 is classic; torchvision uses 1/9, which keeps the L1
    # pull on small localisation errors (on the nucleus run from scratch it was much
    # worse: bench/RESULTS.md).
    SMOOTH_L1_BETA = 1.0

    # Gradient norm clipping.
    GRADIENT_CLIP_NORM = 5.0

    def __init__(self):
        """Set values of computed attributes and validate the configuration."""
        self.validate()

    def validate(self):
        """Check the configuration and (re)compute the derived attributes.

        Raises ConfigError naming the attribute, its value and the fix.
        """
        self._check()
        # Effective batch size
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        # Input image size
        if self.IMAGE_RESIZE_MODE == "crop":
            self.IMAGE_SHAPE = np.array([self.IMAGE_MIN_DIM, self.IMAGE_MIN_DIM,
                                         self.IMAGE_CHANNEL_COUNT])
        else:
            self.IMAGE_SHAPE = np.array([self.IMAGE_MAX_DIM, self.IMAGE_MAX_DIM,
                                         self.IMAGE_CHANNEL_COUNT])
        # Image meta data length: image_id(1) + original_image_shape(3) + image_shape(3)
        # + window(4) + scale(1) + active_class_ids(NUM_CLASSES).
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES
        return self

    def _check(self):
        name = type(self).__name__

        def fail(attr, value, fix):
            raise ConfigError("{}.{} = {!r}: {}".format(name, attr, value, fix))

        def positive_int(attr):
            value = getattr(self, attr)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                fail(attr, value, "must be an integer >= 1.")

        for attr in ("GPU_COUNT", "IMAGES_PER_GPU", "STEPS_PER_EPOCH", "VALIDATION_STEPS",
                     "RPN_ANCHOR_STRIDE", "RPN_TRAIN_ANCHORS_PER_IMAGE", "PRE_NMS_LIMIT",
                     "POST_NMS_ROIS_TRAINING", "POST_NMS_ROIS_INFERENCE",
                     "TRAIN_ROIS_PER_IMAGE", "MAX_GT_INSTANCES", "DETECTION_MAX_INSTANCES",
                     "POOL_SIZE", "MASK_POOL_SIZE", "IMAGE_CHANNEL_COUNT", "MASK_HEAD_CHANNELS",
                     "FPN_CLASSIF_FC_LAYERS_SIZE", "TOP_DOWN_PYRAMID_SIZE"):
            positive_int(attr)

        if not isinstance(self.NUM_CLASSES, (int, np.integer)) or self.NUM_CLASSES < 1:
            fail("NUM_CLASSES", self.NUM_CLASSES,
                 "must be an integer >= 1 and counts the background: use 1 + the number "
                 "of your classes (e.g. NUM_CLASSES = 1 + 3 for three classes).")

        mode = self.IMAGE_RESIZE_MODE
        if mode not in RESIZE_MODES:
            fail("IMAGE_RESIZE_MODE", mode,
                 "unknown mode; use one of {}.".format(", ".join(map(repr, RESIZE_MODES))))

        def divisible_by_64(attr):
            value = getattr(self, attr)
            if not isinstance(value, (int, np.integer)) or value <= 0 or value % 64:
                down = (int(value) // 64) * 64 if isinstance(value, (int, float)) else 0
                up = down + 64
                suggestion = "{} or {}".format(down, up) if down > 0 else str(up)
                fail(attr, value,
                     "with IMAGE_RESIZE_MODE={!r} it must be a positive multiple of 64 "
                     "(the backbone halves the image 6 times); use {}.".format(mode, suggestion))

        if mode == "square":
            divisible_by_64("IMAGE_MAX_DIM")
        elif mode == "crop":
            divisible_by_64("IMAGE_MIN_DIM")
        elif mode == "pad64" and self.IMAGE_MIN_DIM:
            divisible_by_64("IMAGE_MIN_DIM")

        backbone = self.BACKBONE
        if callable(backbone):
            if not callable(self.COMPUTE_BACKBONE_SHAPE):
                fail("COMPUTE_BACKBONE_SHAPE", self.COMPUTE_BACKBONE_SHAPE,
                     "a callable BACKBONE needs COMPUTE_BACKBONE_SHAPE, a function "
                     "(config, image_shape) -> [[height, width], ...] per pyramid level.")
        elif backbone not in BACKBONES:
            fail("BACKBONE", backbone,
                 "unknown backbone; use 'resnet50', 'resnet101' or a callable graph builder.")

        mean = np.asarray(self.MEAN_PIXEL)
        if mean.ndim != 1 or mean.shape[0] != self.IMAGE_CHANNEL_COUNT:
            fail("MEAN_PIXEL", self.MEAN_PIXEL,
                 "needs one value per channel; IMAGE_CHANNEL_COUNT is {}, so give {} values."
                 .format(self.IMAGE_CHANNEL_COUNT, self.IMAGE_CHANNEL_COUNT))

        if len(self.RPN_ANCHOR_SCALES) != len(self.BACKBONE_STRIDES):
            fail("RPN_ANCHOR_SCALES", self.RPN_ANCHOR_SCALES,
                 "needs one scale per pyramid level; BACKBONE_STRIDES has {} levels."
                 .format(len(self.BACKBONE_STRIDES)))

        for attr in ("MASK_HEAD_BN", "DETECTION_PER_CLASS", "ROI_ALIGN_PIXEL_ALIGNED",
                     "TRAIN_ROIS_INCLUDE_GT"):
            if not isinstance(getattr(self, attr), (bool, np.bool_)):
                fail(attr, getattr(self, attr), "use True or False.")

        if self.TRAIN_BN not in (None, False, True):
            fail("TRAIN_BN", self.TRAIN_BN, "use None (train BN), False (freeze) or True.")

        if not 0 < self.ROI_POSITIVE_RATIO <= 1:
            fail("ROI_POSITIVE_RATIO", self.ROI_POSITIVE_RATIO, "must be in (0, 1].")

        if not (isinstance(self.SMOOTH_L1_BETA, (int, float, np.floating)) and
                self.SMOOTH_L1_BETA > 0):
            fail("SMOOTH_L1_BETA", self.SMOOTH_L1_BETA, "must be a number > 0 (1.0 classic, "
                 "1/9 torchvision).")

        for attr in ("RPN_NMS_THRESHOLD", "DETECTION_NMS_THRESHOLD", "DETECTION_MIN_CONFIDENCE",
                     "DETECTION_MASK_THRESHOLD"):
            value = getattr(self, attr)
            if not 0 <= value <= 1:
                fail(attr, value, "must be in [0, 1].")

        if list(self.MASK_SHAPE) != [2 * self.MASK_POOL_SIZE, 2 * self.MASK_POOL_SIZE]:
            fail("MASK_SHAPE", self.MASK_SHAPE,
                 "the mask head upsamples MASK_POOL_SIZE={} once; set MASK_SHAPE = [{}, {}]."
                 .format(self.MASK_POOL_SIZE, 2 * self.MASK_POOL_SIZE, 2 * self.MASK_POOL_SIZE))

        unknown = sorted(set(self.LOSS_WEIGHTS) - set(LOSS_NAMES))
        if unknown:
            fail("LOSS_WEIGHTS", self.LOSS_WEIGHTS,
                 "unknown loss name(s) {}; the losses are {}.".format(unknown, list(LOSS_NAMES)))

        if self.GRADIENT_CLIP_NORM is not None and self.GRADIENT_CLIP_NORM <= 0:
            fail("GRADIENT_CLIP_NORM", self.GRADIENT_CLIP_NORM, "must be > 0, or None for no clipping.")

    def _public_attributes(self):
        for a in sorted(dir(self)):
            if a.startswith("_"):
                continue
            value = getattr(self, a)
            if callable(value) and a not in ("BACKBONE", "COMPUTE_BACKBONE_SHAPE"):
                continue
            yield a, value

    def to_dict(self):
        """All configuration values as plain Python types (arrays become lists,
        callables their qualified names), ready for JSON, MLflow or a model card."""
        out = {}
        for a, value in self._public_attributes():
            out[a] = _plain(value)
        return out

    def to_json(self, indent=2):
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def display(self):
        """Print the configuration values, one per line."""
        print("\nConfigurations:")
        for a, value in self._public_attributes():
            if callable(value):
                value = _plain(value)
            print("{:30} {}".format(a, value))
        print("\n")


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if callable(value):
        return getattr(value, "__qualname__", getattr(value, "__name__", repr(value)))
    return value


def load_config_class(spec):
    """``"module:Class"`` or ``"path/to/file.py:Class"`` -> that Config subclass.

    Used by the command-line tools' ``--config``; raises ConfigError naming the problem.
    """
    import importlib
    import importlib.util
    module_name, _, class_name = str(spec).rpartition(":")
    if not module_name or not class_name:
        raise ConfigError("--config {!r}: use module:Class, e.g. samples.traffic.traffic:"
                          "TrafficConfig or my_configs.py:MyConfig".format(spec))
    try:
        if module_name.endswith(".py"):
            loader = importlib.util.spec_from_file_location("user_config", module_name)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError, FileNotFoundError) as e:
        raise ConfigError("--config {!r}: cannot load it ({})".format(spec, e)) from None
    if not (isinstance(cls, type) and issubclass(cls, Config)):
        raise ConfigError("--config {!r} is not a Config subclass".format(spec))
    return cls
