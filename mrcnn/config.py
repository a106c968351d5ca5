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
import os

import numpy as np

RESIZE_MODES = ("none", "square", "pad64", "crop")
BACKBONES = ("resnet50", "resnet101")
OPTIMIZERS = ("SGD", "AdamW")
BOX_NORMALIZATIONS = ("classic", "scale")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
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

    # Channels of the RPN's shared 3x3 conv (rpn_conv_shared). Classic 512 (and classic
    # weights need it; torchvision's RPN uses 256, the FPN width). On small images the
    # RPN runs on large maps and is a large share of a step.
    RPN_HEAD_CHANNELS = 512

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

    # ---- Architecture flavour. Every value below defaults to the classic network (and
    # mask_rcnn_coco.h5); TorchvisionConfig sets them to reproduce torchvision's Mask
    # R-CNN v1 (maskrcnn_resnet50_fpn) from a converted file (docs/torchvision.md).

    # ResNet stride on the 3x3 "2b" conv of each stage's first block (torchvision,
    # "ResNet v1.5") instead of the first 1x1 "2a" conv (classic, Caffe-style).
    RESNET_STRIDE_ON_3X3 = False

    # PyTorch's padding for the strided 3x3 convs and the stem's max pool: one cell on
    # every side (classic: TensorFlow's "same", which pads only after on even sizes).
    RESNET_TORCH_PADDING = False

    # Epsilon of the batch norms (classic Keras 1e-3; torchvision's FrozenBatchNorm2d
    # and BatchNorm2d use 1e-5).
    BN_EPSILON = 1e-3

    # Batch norm after the classifier head's two 1024-wide layers (classic True;
    # torchvision's TwoMLPHead has none: False drops mrcnn_class_bn1/2).
    CLASSIF_HEAD_BN = True

    # Divide the mean-subtracted pixels by this, per channel (None: classic, no
    # division). torchvision: RGB / 255, minus [0.485, 0.456, 0.406], divided by
    # [0.229, 0.224, 0.225], i.e. MEAN_PIXEL = 255 * mean and PIXEL_STD = 255 * std.
    PIXEL_STD = None

    # How pixel boxes become the normalised boxes the network works in.
    #   "classic": (y1, x1, y2 - 1, x2 - 1) / (H - 1, W - 1) (Matterport).
    #   "scale":   (y1, x1, y2, x2) / (H, W): box arithmetic (anchor deltas, sizes,
    #              ROIAlign positions) is then exactly torchvision's, in pixels.
    BOX_NORMALIZATION = "classic"

    # Round each anchor's half-width and half-height to whole pixels, as torchvision's
    # AnchorGenerator does (classic False).
    RPN_ANCHOR_ROUNDING = False

    # Proposals per pyramid level (torchvision): the PRE_NMS_LIMIT best anchors of each
    # level, and NMS within each level. Classic False: the PRE_NMS_LIMIT best overall,
    # one NMS across levels.
    RPN_NMS_PER_LEVEL = False

    # With RPN_NMS_PER_LEVEL: proposals with a side under this many pixels are dropped
    # before NMS (torchvision 1e-3; classic 0: none dropped).
    RPN_MIN_SIZE = 0

    # ROIAlign samples. 0 (classic): one bilinear sample per output cell
    # (crop_and_resize). N > 0 (torchvision: 2): the average of N x N samples per cell,
    # at torchvision's roi_align(aligned=False) positions and edge rules.
    ROI_ALIGN_SAMPLING_RATIO = 0

    # Which pyramid level a ROI is pooled from: "round" (classic:
    # round(4 + log2(sqrt(area) / 224))) or "floor" (torchvision's LevelMapper:
    # floor(4 + log2(sqrt(area) / 224) + 1e-6)); both clamped to [2, 5].
    ROI_LEVEL_MAPPER = "round"

    # Detections with a side under this many pixels (in the molded image) are dropped
    # before NMS (torchvision 1e-2; classic 0).
    DETECTION_MIN_SIZE = 0

    # How the 28x28 masks are pasted into the image. "classic": resize the mask to the
    # rounded box. "torchvision": paste_masks_in_image: the mask padded by one cell
    # and its box expanded to match, resized bilinearly (align_corners=False) to the
    # truncated expanded box. Both then threshold at DETECTION_MASK_THRESHOLD.
    MASK_PASTE = "classic"

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

    # "SGD" (classic): SGD with LEARNING_MOMENTUM, WEIGHT_DECAY as an L2 term in the loss.
    # "AdamW": Adam with decoupled weight decay WEIGHT_DECAY (the loss has no L2 term);
    # for training from scratch it converges in far fewer steps (use a learning rate
    # around 1e-3 rather than SGD's 1e-2). Both clip the global gradient norm at
    # GRADIENT_CLIP_NORM.
    OPTIMIZER = "SGD"

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

    # Whether the batch norms' scale and offset (gamma, beta) train with their layer
    # (classic True). False keeps them at their loaded values, as torchvision's
    # FrozenBatchNorm2d does; with TRAIN_BN = False training then needs less memory and
    # time (no batch-norm input is kept for the backward pass; bench/RESULTS.md).
    TRAIN_BN_AFFINE = True

    # Where the box losses (RPN and head) turn from L2 into L1, in units of the deltas
    # divided by their std dev. 1.0 is classic; torchvision uses 1/9, which keeps the L1
    # pull on small localisation errors (on the nucleus run from scratch it was much
    # worse: bench/RESULTS.md).
    SMOOTH_L1_BETA = 1.0

    # Gradient norm clipping.
    GRADIENT_CLIP_NORM = 5.0

    # The type the network computes in, for training and inference: "float32" (classic),
    # "bfloat16" or "float16" (Keras mixed precision: convolutions and dense layers in the
    # reduced type, weights, batch-norm statistics, anchors, proposals and NMS, ROIAlign,
    # the outputs and the losses in float32). float16 is for GPUs and trains with dynamic
    # loss scaling; bfloat16 pays on GPUs and on CPUs with AMX (on a CPU without it, it
    # is slower than float32). Weights are float32 in every mode, so checkpoints load
    # into a model of any COMPUTE_DTYPE.
    COMPUTE_DTYPE = "float32"

    # Compile the train step with XLA (MaskRCNN.train's jit_compile). The Mask R-CNN
    # graph does not compile today (ROIAlign's crop_and_resize has no XLA kernel, NMS
    # and ROI sampling have data-dependent shapes): True stops at the first step with
    # XlaNotSupported saying so. For graphs of your own (a custom head) that do.
    TRAIN_JIT_COMPILE = False

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
        # + window(4) + scale(1) + active_class_ids(NUM_CLASSES); the layout is
        # molding.IMAGE_META_LAYOUT.
        from .molding import image_meta_size
        self.IMAGE_META_SIZE = image_meta_size(self.NUM_CLASSES)
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
                     "RPN_HEAD_CHANNELS",
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
                     "TRAIN_ROIS_INCLUDE_GT", "RESNET_STRIDE_ON_3X3", "RESNET_TORCH_PADDING",
                     "CLASSIF_HEAD_BN", "RPN_ANCHOR_ROUNDING", "RPN_NMS_PER_LEVEL",
                     "TRAIN_BN_AFFINE"):
            if not isinstance(getattr(self, attr), (bool, np.bool_)):
                fail(attr, getattr(self, attr), "use True or False.")

        for attr, choices in (("BOX_NORMALIZATION", BOX_NORMALIZATIONS),
                              ("ROI_LEVEL_MAPPER", ("round", "floor")),
                              ("MASK_PASTE", ("classic", "torchvision"))):
            if getattr(self, attr) not in choices:
                fail(attr, getattr(self, attr), "use one of {}.".format(
                    ", ".join(map(repr, choices))))
        for attr in ("BN_EPSILON", "RPN_MIN_SIZE", "DETECTION_MIN_SIZE"):
            value = getattr(self, attr)
            if not isinstance(value, (int, float, np.integer, np.floating)) or \
                    isinstance(value, bool) or value < 0:
                fail(attr, value, "must be a number >= 0.")
        value = self.ROI_ALIGN_SAMPLING_RATIO
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            fail("ROI_ALIGN_SAMPLING_RATIO", value, "must be an integer >= 0 (0 classic, 2 "
                 "torchvision).")
        if value and self.ROI_ALIGN_PIXEL_ALIGNED:
            fail("ROI_ALIGN_PIXEL_ALIGNED", True, "ROI_ALIGN_SAMPLING_RATIO > 0 samples at "
                 "torchvision's positions; set ROI_ALIGN_PIXEL_ALIGNED = False with it.")
        if self.PIXEL_STD is not None:
            std = np.asarray(self.PIXEL_STD, dtype=np.float64)
            if std.shape != (self.IMAGE_CHANNEL_COUNT,) or not np.all(std > 0):
                fail("PIXEL_STD", self.PIXEL_STD, "None, or one value > 0 per channel "
                     "(IMAGE_CHANNEL_COUNT = {}).".format(self.IMAGE_CHANNEL_COUNT))

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

        if self.OPTIMIZER not in OPTIMIZERS:
            fail("OPTIMIZER", self.OPTIMIZER, "use one of {}.".format(
                ", ".join(map(repr, OPTIMIZERS))))

        if self.COMPUTE_DTYPE not in COMPUTE_DTYPES:
            hint = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16",
                    "half": "float16", "mixed_bfloat16": "bfloat16",
                    "mixed_float16": "float16"}.get(str(self.COMPUTE_DTYPE).lower())
            fail("COMPUTE_DTYPE", self.COMPUTE_DTYPE, "use one of {}{} (float32 is the "
                 "default; bfloat16 and float16 compute with Keras mixed precision).".format(
                     ", ".join(map(repr, COMPUTE_DTYPES)),
                     " (did you mean {!r}?)".format(hint) if hint else ""))

        if not isinstance(self.TRAIN_JIT_COMPILE, (bool, np.bool_)):
            fail("TRAIN_JIT_COMPILE", self.TRAIN_JIT_COMPILE, "use True or False.")

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


class TorchvisionConfig(Config):
    """torchvision's Mask R-CNN v1 (``maskrcnn_resnet50_fpn``): every architecture
    option set to torchvision's value, so a file written by
    ``mrcnn convert torchvision`` gives torchvision's detections (docs/torchvision.md).

    Subclass it as you would Config (NAME, NUM_CLASSES, ...). Images are not resized
    here ("pad64" without scaling pads each side to a multiple of 64): resize them
    first with ``mrcnn.convert_torchvision.torchvision_resize`` (torchvision's
    min 800 / max 1333 rule). On images whose sides are multiples of 64 (no padding)
    the detections are torchvision's; where padding is needed, the padded border
    differs (torchvision pads bottom/right to a multiple of 32 with zeros after
    normalisation), which moves results near the border slightly.
    """
    NAME = "torchvision"
    BACKBONE = "resnet50"
    NUM_CLASSES = 91
    RESNET_STRIDE_ON_3X3 = True
    RESNET_TORCH_PADDING = True
    BN_EPSILON = 1e-5
    RPN_HEAD_CHANNELS = 256
    CLASSIF_HEAD_BN = False
    MASK_HEAD_BN = False
    MEAN_PIXEL = np.array([0.485, 0.456, 0.406]) * 255.0
    PIXEL_STD = np.array([0.229, 0.224, 0.225]) * 255.0
    BOX_NORMALIZATION = "scale"
    # torchvision's aspect ratios are height / width (0.5, 1, 2); ours are width /
    # height, so the same anchors in the same order are (2, 1, 0.5)
    RPN_ANCHOR_RATIOS = [2, 1, 0.5]
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    RPN_ANCHOR_ROUNDING = True
    RPN_BBOX_STD_DEV = np.array([1.0, 1.0, 1.0, 1.0])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    RPN_NMS_PER_LEVEL = True
    PRE_NMS_LIMIT = 1000
    RPN_NMS_THRESHOLD = 0.7
    POST_NMS_ROIS_INFERENCE = 1000
    POST_NMS_ROIS_TRAINING = 2000
    RPN_MIN_SIZE = 1e-3
    ROI_ALIGN_SAMPLING_RATIO = 2
    ROI_LEVEL_MAPPER = "floor"
    DETECTION_PER_CLASS = True
    DETECTION_MIN_CONFIDENCE = 0.05
    DETECTION_NMS_THRESHOLD = 0.5
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_SIZE = 1e-2
    MASK_PASTE = "torchvision"
    DETECTION_MASK_THRESHOLD = 0.5
    IMAGE_RESIZE_MODE = "pad64"
    IMAGE_MIN_DIM = 0
    IMAGE_MAX_DIM = 1344
    TRAIN_BN = False
    TRAIN_ROIS_PER_IMAGE = 512
    ROI_POSITIVE_RATIO = 0.25
    TRAIN_ROIS_INCLUDE_GT = True


# The settings TorchvisionConfig changes from Config: what ``convert torchvision``
# writes in its JSON (with NUM_CLASSES).
TORCHVISION_SETTINGS = (
    "BACKBONE", "RESNET_STRIDE_ON_3X3", "RESNET_TORCH_PADDING", "BN_EPSILON",
    "RPN_HEAD_CHANNELS", "CLASSIF_HEAD_BN", "MASK_HEAD_BN", "MEAN_PIXEL", "PIXEL_STD",
    "BOX_NORMALIZATION", "RPN_ANCHOR_RATIOS", "RPN_ANCHOR_SCALES", "RPN_ANCHOR_ROUNDING",
    "RPN_BBOX_STD_DEV", "BBOX_STD_DEV", "RPN_NMS_PER_LEVEL", "PRE_NMS_LIMIT",
    "RPN_NMS_THRESHOLD", "POST_NMS_ROIS_INFERENCE", "RPN_MIN_SIZE",
    "ROI_ALIGN_SAMPLING_RATIO", "ROI_LEVEL_MAPPER", "DETECTION_PER_CLASS",
    "DETECTION_MIN_CONFIDENCE", "DETECTION_NMS_THRESHOLD", "DETECTION_MAX_INSTANCES",
    "DETECTION_MIN_SIZE", "MASK_PASTE", "DETECTION_MASK_THRESHOLD", "IMAGE_RESIZE_MODE",
    "IMAGE_MIN_DIM", "IMAGE_MAX_DIM")


DERIVED = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")
# attributes that may be None (the others keep their kind: number, text, list, ...)
NULLABLE = ("NAME", "PIXEL_STD", "TRAIN_BN", "GRADIENT_CLIP_NORM", "COMPUTE_BACKBONE_SHAPE",
            "IMAGE_MIN_DIM", "IMAGE_MAX_DIM")


def config_keys(config_class):
    """The settable configuration names of a Config class (upper case, not derived)."""
    return sorted(a for a in dir(config_class)
                  if a.isupper() and not a.startswith("_") and a not in DERIVED)


def parse_value(text):
    """A ``--set`` value: a Python or JSON literal (``4``, ``0.5``, ``[1, 2]``, ``True``,
    ``true``, ``None``, ``null``, ``"text"``), else the text itself (``pad64``)."""
    import ast
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def _kind(value):
    if value is None:
        return "None"
    if isinstance(value, (bool, np.bool_)):
        return "True or False"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "a number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "a list"
    if isinstance(value, dict):
        return "a dict"
    if callable(value):
        return "a function"
    return type(value).__name__


def _coerce(config_class, key, value):
    """``value`` in the kind of the class's current value; ConfigError when it is not."""
    current = getattr(config_class, key)
    name = config_class.__name__
    if value is None:
        if current is None or key in NULLABLE:
            return None
        raise ConfigError("--set {}=None: {}.{} cannot be None (it is {}, now {!r})".format(
            key, name, key, _kind(current), _plain(current)))
    if current is None or callable(current) and not isinstance(current, type):
        return value
    kind, new = _kind(current), _kind(value)
    if kind == "a number" and new == "a number":
        return value
    if kind == new == "a list":
        value = list(value)
        if isinstance(current, np.ndarray):
            return np.array(value)
        return tuple(value) if isinstance(current, tuple) else value
    if kind == new == "a dict":
        merged = dict(current)
        merged.update(value)
        return merged
    if kind == new:
        return value
    if key == "TRAIN_BN" and new == "True or False":
        return value
    raise ConfigError("--set {}={!r}: {}.{} is {} (now {!r}); give {}".format(
        key, _plain(value), name, key, kind, _plain(current), kind))


def parse_overrides(items):
    """["KEY=VALUE", ...] -> {KEY: value} (values parsed by ``parse_value``)."""
    out = {}
    for item in items or []:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("--set {!r}: use KEY=VALUE, e.g. --set IMAGES_PER_GPU=4".format(
                item))
        out[key] = parse_value(text)
    return out


def apply_overrides(config_class, overrides):
    """A subclass of ``config_class`` with ``overrides`` ({KEY: value} or ["KEY=VALUE"])
    applied, checked like the Config itself: an unknown key is refused with the close
    names, a value of the wrong kind with the kind expected, and the result must pass
    ``validate()``. Returns the class (the same one when there is nothing to apply)."""
    import difflib
    if not isinstance(overrides, dict):
        overrides = parse_overrides(overrides)
    if not overrides:
        return config_class
    keys = config_keys(config_class)
    attrs = {}
    for key, value in overrides.items():
        if key in DERIVED:
            raise ConfigError("--set {}: {} is computed from the other values (BATCH_SIZE = "
                              "IMAGES_PER_GPU x GPU_COUNT, IMAGE_SHAPE from the image "
                              "dimensions); set those instead".format(key, key))
        if key not in keys:
            close = difflib.get_close_matches(key.upper(), keys, n=4, cutoff=0.5)
            raise ConfigError("--set {}: {} has no such setting; {}".format(
                key, config_class.__name__, "did you mean {}?".format(", ".join(close))
                if close else "every setting is listed in docs/config.md (or print "
                "Config().display())"))
        attrs[key] = _coerce(config_class, key, value)
    cls = type(config_class.__name__, (config_class,), attrs)
    cls.__module__ = config_class.__module__
    cls._overrides = dict(getattr(config_class, "_overrides", {}), **attrs)
    cls()  # validate
    return cls


def inference_config_class(config_class):
    """The config class for detection from a training one: one image per batch, and a
    training config that takes random crops ("crop") detects on whole images padded to
    a multiple of 64 ("pad64"). The one rule the command line uses for every sample."""
    if getattr(config_class, "_inference", False):
        return config_class
    attrs = {"GPU_COUNT": 1, "IMAGES_PER_GPU": 1, "_inference": True}
    if config_class.IMAGE_RESIZE_MODE == "crop":
        attrs.update(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=64,
                     IMAGE_MAX_DIM=max(2048, config_class.IMAGE_MAX_DIM or 0))
    name = config_class.__name__.replace("Config", "") + "InferenceConfig"
    cls = type(name, (config_class,), attrs)
    cls.__module__ = config_class.__module__
    return cls


def class_spec(config_class):
    """``"module:Class"`` of the first class of ``config_class``'s MRO that can be
    imported by that name (classes made at run time, e.g. by ``apply_overrides``, are
    skipped), or None."""
    import importlib
    for cls in config_class.__mro__:
        if cls is object:
            break
        if "_file_spec" in vars(cls):  # loaded from file.py:Class
            return cls._file_spec
        try:
            module = importlib.import_module(cls.__module__)
        except ImportError:
            continue
        if cls.__module__ == "__main__":
            continue
        obj = module
        for part in cls.__qualname__.split("."):
            obj = getattr(obj, part, None)
        if obj is cls:
            return "{}:{}".format(cls.__module__, cls.__qualname__)
    return None


def save_config(config, path):
    """Write a Config instance as JSON: every value (``to_dict``) plus ``"_class"``, the
    importable class it derives from, so that ``load_config_class(path)`` rebuilds it."""
    data = config.to_dict()
    data["_class"] = class_spec(type(config))
    tmp = path + ".part"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def config_class_from_json(path):
    """A Config class from a ``config.json`` (``save_config``, or any JSON object of
    settings): the recorded ``_class`` (or Config) with the file's values on top."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError("--config {}: cannot read it as JSON ({})".format(path, e)) from None
    if not isinstance(data, dict):
        raise ConfigError("--config {}: expected a JSON object of settings".format(path))
    base = Config
    spec = data.get("_class")
    if spec:
        try:
            base = load_config_class(spec)
        except ConfigError:
            base = Config  # the class is not importable here: the values alone
    attrs = {}
    for key, value in data.items():
        if not key.isupper() or key in DERIVED:
            continue
        current = getattr(base, key, None)
        if callable(current) and not isinstance(current, type) and isinstance(value, str):
            if value == _plain(current):
                continue  # the same function, by name: keep the class's
            raise ConfigError("--config {}: {} is the function {!r}, which this file cannot "
                              "hold; give --config module:Class of the config that defines "
                              "it".format(path, key, value))
        if key == "BACKBONE" and isinstance(value, str) and value not in BACKBONES:
            raise ConfigError("--config {}: BACKBONE is the function {!r}, which this file "
                              "cannot hold; give --config module:Class of the config that "
                              "defines it (the run was trained with {})".format(
                                  path, value, spec or "an unknown class"))
        if isinstance(current, np.ndarray) and isinstance(value, list):
            value = np.array(value)
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        attrs[key] = value
    cls = type(base.__name__, (base,), attrs)
    cls.__module__ = base.__module__
    cls._source = path
    cls()  # validate
    return cls


def load_config_class(spec):
    """``"module:Class"``, ``"path/to/file.py:Class"``, ``"path/to/file.py"`` (its one
    Config subclass) or ``"path/to/config.json"`` (a run's saved configuration) -> that
    Config subclass.

    Used by the command-line tools' ``--config``; raises ConfigError naming the problem.
    """
    import importlib
    import importlib.util
    spec = os.fspath(spec) if not isinstance(spec, str) else spec
    if spec.endswith(".json"):
        return config_class_from_json(spec)
    if spec.endswith(".py") and os.path.isfile(spec):
        module_name, class_name = spec, ""
    else:
        module_name, _, class_name = str(spec).rpartition(":")
    if not module_name or (not class_name and not module_name.endswith(".py")):
        raise ConfigError("--config {!r}: use module:Class, file.py:Class, file.py or a "
                          "config.json, e.g. samples.traffic.traffic:TrafficConfig or "
                          "my_configs.py:MyConfig".format(spec))
    try:
        if module_name.endswith(".py"):
            loader = importlib.util.spec_from_file_location("user_config", module_name)
            if loader is None:
                raise FileNotFoundError("no such file: {}".format(module_name))
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
        if class_name:
            cls = module
            for part in class_name.split("."):
                cls = getattr(cls, part)
        else:
            found = [v for v in vars(module).values() if isinstance(v, type) and
                     issubclass(v, Config) and v.__module__ == module.__name__]
            if len(found) != 1:
                raise ConfigError("--config {!r}: the file defines {} Config classes ({}); "
                                  "name one as file.py:Class".format(
                                      spec, len(found), ", ".join(c.__name__ for c in found)
                                      or "none"))
            cls = found[0]
    except (ImportError, AttributeError, FileNotFoundError) as e:
        raise ConfigError("--config {!r}: cannot load it ({})".format(spec, e)) from None
    if not (isinstance(cls, type) and issubclass(cls, Config)):
        raise ConfigError("--config {!r} is not a Config subclass".format(spec))
    if module_name.endswith(".py"):
        cls._file_spec = "{}:{}".format(os.path.abspath(module_name), cls.__qualname__)
    return cls
