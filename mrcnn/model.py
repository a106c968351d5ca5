"""The Mask R-CNN model: ``MaskRCNN(mode, config, model_dir)``.

This module wires the parts together and keeps the names classic scripts import from
``mrcnn.model``. The parts live in their own modules:

    backbone.py    ResNet-50/101 and the FPN          rpn.py        RPN head, ProposalLayer
    roi_align.py   PyramidROIAlign                    heads.py      classifier and mask heads
    detection.py   DetectionLayer                     molding.py    mold/unmold, image meta
    rpn_targets.py RPN targets (NumPy)                detection_targets.py  DetectionTargetLayer
    losses.py      the five losses                    training.py   train_step, callbacks
    pipeline.py    load_image_gt, tf.data input       weights.py    HDF5 weights by layer name
    graph_ops.py   TF box and meta helpers (the twins of boxes.py and molding.py)

Typical inference::

    model = MaskRCNN(mode="inference", config=InferenceConfig(), model_dir="logs")
    model.load_weights("weights/mask_rcnn_coco.h5", by_name=True)
    r = model.detect([image])[0]     # rois, class_ids, scores, masks
"""
import datetime
import functools
import glob
import logging
import numbers
import os
import re
import threading
import time
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import layers as KL

from .precision import Float32Layer, dtype_policy
from . import utils
from .anchors import compute_backbone_shapes
from .augment import check_augmentation
from .backbone import (BatchNorm, conv_block, fpn_graph, identity_block, resnet_graph,
                       resnet_style)
from .config import ConfigError
from .detection import DetectionLayer, refine_detections_graph
from .detection_targets import DetectionTargetLayer, detection_targets_graph
from .graph_ops import (apply_box_deltas_graph, box_refinement_graph, clip_boxes_graph,
                        denorm_boxes_graph, norm_boxes_graph, overlaps_graph,
                        parse_image_meta_graph, trim_zeros_graph)
from .heads import build_fpn_mask_graph, fpn_classifier_graph, roi_align_options
from .imageops import as_model_image, resize_scale
from .losses import (mrcnn_bbox_loss_graph, mrcnn_class_loss_graph, mrcnn_mask_loss_graph,
                     rpn_bbox_loss_graph, rpn_class_loss_graph, smooth_l1_loss)
from .molding import compose_image_meta, mold_image, mold_inputs, parse_image_meta, unmold_image
from .optimizer import initial_state, make_optimizer, rate_is_settable, reset_optimizer
from .pipeline import (PipelineStats, check_training_shape, data_generator, load_image_gt,
                       make_dataset, probe_batch, training_anchors)
from .roi_align import PyramidROIAlign
from .rpn import ProposalLayer, build_rpn_model, rpn_graph
from .rpn_targets import build_rpn_targets, generate_random_rois
from .training import (ClassicCheckpoint, RunHistory, SkippedImagesLogger, StepLossLogger,
                       TRACED_CONFIG, TrainingDiverged, TrainingModel, best_in_history,
                       dataset_summary, WorkerLost, XlaNotSupported, fit_scope,
                       is_collective_failure, is_xla_failure, layers_regex, worker_lost,
                       xla_not_supported, make_strategy, read_history, record_stage,
                       set_trainable, worker_place)
from .weights import (find_last_checkpoint, load_weights_by_name, save_weights_classic,
                      sha256_file)

# The public names: MaskRCNN, and the names classic scripts import from mrcnn.model
# (each defined in the module named after what it holds; see the module docstring).
__all__ = [
    "MaskRCNN", "log", "IMAGENET_WEIGHTS_NAME", "IMAGENET_WEIGHTS_URL",
    # backbone
    "BatchNorm", "identity_block", "conv_block", "resnet_graph", "fpn_graph",
    "compute_backbone_shapes",
    # region proposals, ROI pooling, heads, detection
    "rpn_graph", "build_rpn_model", "ProposalLayer", "PyramidROIAlign",
    "fpn_classifier_graph", "build_fpn_mask_graph", "DetectionLayer",
    "refine_detections_graph",
    # TensorFlow box and meta helpers
    "apply_box_deltas_graph", "box_refinement_graph", "clip_boxes_graph",
    "overlaps_graph", "trim_zeros_graph", "norm_boxes_graph", "denorm_boxes_graph",
    "parse_image_meta_graph",
    # training targets and losses
    "build_rpn_targets", "generate_random_rois", "DetectionTargetLayer",
    "detection_targets_graph", "smooth_l1_loss", "rpn_class_loss_graph",
    "rpn_bbox_loss_graph", "mrcnn_class_loss_graph", "mrcnn_bbox_loss_graph",
    "mrcnn_mask_loss_graph",
    # input pipeline, molding and image meta
    "load_image_gt", "data_generator", "make_dataset", "compose_image_meta",
    "parse_image_meta", "mold_image", "mold_inputs", "unmold_image",
    # training and checkpoints
    "TrainingDiverged", "WorkerLost", "XlaNotSupported", "find_last_checkpoint",
]

logger = logging.getLogger(__name__)

IMAGENET_WEIGHTS_NAME = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_WEIGHTS_URL = ("https://github.com/fchollet/deep-learning-models/releases/download/"
                        "v0.2/" + IMAGENET_WEIGHTS_NAME)


def log(text, array=None):
    """Print a text and, optionally, an array's shape, min, max and dtype."""
    if array is not None:
        array = np.asarray(array)
        text = text.ljust(25)
        text += ("shape: {:20}  ".format(str(array.shape)))
        if array.size:
            text += ("min: {:10.5f}  max: {:10.5f}".format(array.min(), array.max()))
        else:
            text += ("min: {:10}  max: {:10}".format("", ""))
        text += "  {}".format(array.dtype)
    print(text)


class SliceBoxes(Float32Layer):
    """[batch, N, (y1, x1, y2, x2, ...)] -> [batch, N, 4]."""

    def call(self, x):
        return x[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)


class NormBoxes(Float32Layer):
    """Pixel boxes [batch, N, 4] to normalised ones, for the size of ``image``
    (mode: Config.BOX_NORMALIZATION)."""

    def __init__(self, mode="classic", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, inputs):
        boxes, image = inputs
        return norm_boxes_graph(tf.cast(boxes, tf.float32), tf.shape(image)[1:3], self.mode)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])


class PositiveRois(Float32Layer):
    """[batch, N, 4] -> [batch, P, 4]: the first P ROIs of each image, P the largest
    number of positive ROIs (class id > 0) in any image of the batch (at least 1)."""

    def call(self, inputs):
        rois, class_ids = inputs
        count = tf.reduce_max(tf.reduce_sum(tf.cast(class_ids > 0, tf.int32), axis=1))
        # at least one row: oneDNN's conv gradients fail on an empty batch
        return rois[:, :tf.maximum(count, 1)]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], None, input_shape[0][2])


class MaskRCNN(object):
    """Mask R-CNN, with the classic Matterport interface.

    mode: "training" or "inference".
    config: a Config subclass instance.
    model_dir: folder for training logs and checkpoints.
    strategy: (training) a tf.distribute strategy of your own to build and train under.
        Without it: MultiWorkerMirroredStrategy when the TF_CONFIG environment variable
        names a cluster (each worker process runs the same script; docs/multiworker.md),
        MirroredStrategy for GPU_COUNT > 1, else the default strategy.
    The Keras model is ``self.keras_model``.

    In a multi-worker run only the chief (TF_CONFIG's "chief", else worker 0) writes
    into the run folder; the other workers' ``log_dir`` is a scratch folder of their
    own, removed when the process ends.
    """

    def __init__(self, mode, config, model_dir, strategy=None):
        if mode not in ("training", "inference"):
            raise ValueError("MaskRCNN: mode={!r}; use 'training' or 'inference'".format(mode))
        config.validate()
        if config.NUM_CLASSES < 2:
            raise ConfigError(
                "{}.NUM_CLASSES = {}: the model needs the background plus at least one "
                "class; set NUM_CLASSES = 1 + the number of your classes."
                .format(type(config).__name__, config.NUM_CLASSES))
        if mode == "inference" and config.IMAGE_RESIZE_MODE == "crop":
            raise ConfigError(
                "{}.IMAGE_RESIZE_MODE = 'crop': random crops are for training; use 'pad64' "
                "(or 'square') in the config you build the inference model with."
                .format(type(config).__name__))
        self.mode = mode
        self.config = config
        self.model_dir = os.fspath(model_dir)
        self._anchor_cache = {}
        self._lock = threading.Lock()
        self.initial_weights = None
        self.training_datasets = None
        if mode == "training":
            self.strategy = make_strategy(config, strategy)
        # (index, count, is_chief) among the workers of a multi-worker run
        self.worker = worker_place(self.strategy) if mode == "training" else (0, 1, True)
        self._scratch = None
        self._compiled = None   # what the last train() compiled for (see _compile)
        self.set_log_dir()
        self.keras_model = self.build(mode=mode, config=config)
        self._infer = None

    # ------------------------------------------------------------------ building

    def build(self, mode, config):
        """Build the Mask R-CNN architecture (see the module docstring for the parts).

        The layers compute in config.COMPUTE_DTYPE (``mrcnn.precision``)."""
        with dtype_policy(config.COMPUTE_DTYPE):
            if mode == "training":
                if getattr(self, "strategy", None) is None:
                    self.strategy = make_strategy(config)
                with self.strategy.scope():
                    return self._build_training(config)
            return self._build_inference(config)

    def _build_inference(self, config):
        """The inference graph: proposals, heads, detections and their masks."""
        input_image = KL.Input(shape=[None, None, config.IMAGE_CHANNEL_COUNT],
                               name="input_image")
        input_image_meta = KL.Input(shape=[config.IMAGE_META_SIZE], name="input_image_meta")
        input_anchors = KL.Input(shape=[None, 4], name="input_anchors")

        feature_maps = self._feature_maps(input_image, config)
        rpn_feature_maps = feature_maps          # P2..P6
        mrcnn_feature_maps = feature_maps[:4]    # P2..P5

        rpn_class_logits, rpn_class, rpn_bbox, rpn_rois = self._rpn(
            rpn_feature_maps, input_anchors, config, config.POST_NMS_ROIS_INFERENCE,
            input_image_meta)

        mrcnn_class_logits, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
            rpn_rois, mrcnn_feature_maps, input_image_meta, config.POOL_SIZE,
            config.NUM_CLASSES, **self._classifier_options(config))
        detections = DetectionLayer(
            bbox_std_dev=config.BBOX_STD_DEV, min_confidence=config.DETECTION_MIN_CONFIDENCE,
            nms_threshold=config.DETECTION_NMS_THRESHOLD,
            max_instances=config.DETECTION_MAX_INSTANCES,
            per_class=config.DETECTION_PER_CLASS, min_size=config.DETECTION_MIN_SIZE,
            box_normalization=config.BOX_NORMALIZATION, name="mrcnn_detection")(
                [rpn_rois, mrcnn_class, mrcnn_bbox, input_image_meta])
        detection_boxes = SliceBoxes(name="detection_boxes")(detections)
        mrcnn_mask = build_fpn_mask_graph(detection_boxes, mrcnn_feature_maps,
                                          input_image_meta, config.MASK_POOL_SIZE,
                                          config.NUM_CLASSES, **self._mask_options(config))
        return keras.Model([input_image, input_image_meta, input_anchors],
                           [detections, mrcnn_class, mrcnn_bbox, mrcnn_mask,
                            rpn_rois, rpn_class, rpn_bbox], name="mask_rcnn")

    def _build_training(self, config):
        """The training graph: RPN and detection targets, heads on sampled ROIs."""
        check_training_shape(config)
        h, w = config.IMAGE_SHAPE[:2]
        input_image = KL.Input(shape=[h, w, config.IMAGE_CHANNEL_COUNT], name="input_image")
        input_image_meta = KL.Input(shape=[config.IMAGE_META_SIZE], name="input_image_meta")
        input_rpn_match = KL.Input(shape=[None, 1], name="input_rpn_match", dtype="int32")
        input_rpn_bbox = KL.Input(shape=[None, 4], name="input_rpn_bbox", dtype="float32")
        input_gt_class_ids = KL.Input(shape=[None], name="input_gt_class_ids", dtype="int32")
        input_gt_boxes = KL.Input(shape=[None, 4], name="input_gt_boxes", dtype="int32")
        mh, mw = config.MINI_MASK_SHAPE if config.USE_MINI_MASK else (h, w)
        input_gt_masks = KL.Input(shape=[mh, mw, None], name="input_gt_masks", dtype="bool")
        input_anchors = KL.Input(shape=[None, 4], name="input_anchors")
        inputs = [input_image, input_image_meta, input_rpn_match, input_rpn_bbox,
                  input_gt_class_ids, input_gt_boxes, input_gt_masks, input_anchors]
        gt_boxes = NormBoxes(config.BOX_NORMALIZATION, name="gt_boxes_normalized")(
            [input_gt_boxes, input_image])

        feature_maps = self._feature_maps(input_image, config)
        rpn_class_logits, rpn_class, rpn_bbox, rpn_rois = self._rpn(
            feature_maps, input_anchors, config, config.POST_NMS_ROIS_TRAINING,
            input_image_meta)
        if config.USE_RPN_ROIS:
            target_rois = rpn_rois
        else:
            input_rois = KL.Input(shape=[config.POST_NMS_ROIS_TRAINING, 4], name="input_roi")
            inputs.append(input_rois)
            target_rois = NormBoxes(config.BOX_NORMALIZATION, name="input_roi_normalized")(
                [input_rois, input_image])

        rois, target_class_ids, target_bbox, target_mask = DetectionTargetLayer(
            rois_per_image=config.TRAIN_ROIS_PER_IMAGE,
            positive_ratio=config.ROI_POSITIVE_RATIO, bbox_std_dev=config.BBOX_STD_DEV,
            mask_shape=config.MASK_SHAPE, use_mini_mask=config.USE_MINI_MASK,
            include_gt=config.TRAIN_ROIS_INCLUDE_GT, name="proposal_targets")(
                [target_rois, input_gt_class_ids, gt_boxes, input_gt_masks])
        mrcnn_class_logits, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
            rois, feature_maps[:4], input_image_meta, config.POOL_SIZE, config.NUM_CLASSES,
            **self._classifier_options(config))
        # Positive ROIs come first in each image, and only they have mask targets: the
        # mask head runs on the first max-positives rows alone (the classic code ran it
        # on every ROI and threw most of the result away).
        mask_rois = PositiveRois(name="positive_rois")([rois, target_class_ids])
        mrcnn_mask = build_fpn_mask_graph(mask_rois, feature_maps[:4], input_image_meta,
                                          config.MASK_POOL_SIZE, config.NUM_CLASSES,
                                          **self._mask_options(config))
        outputs = [rpn_class_logits, rpn_class, rpn_bbox, mrcnn_class_logits, mrcnn_class,
                   mrcnn_bbox, mrcnn_mask, rpn_rois, rois, target_class_ids, target_bbox,
                   target_mask]
        anchors = utils.norm_boxes(training_anchors(config), config.IMAGE_SHAPE[:2],
                                   config.BOX_NORMALIZATION)
        return TrainingModel(inputs, outputs, config=config, anchors=anchors, name="mask_rcnn")

    @staticmethod
    def _classifier_options(config):
        return dict(train_bn=config.TRAIN_BN, fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE,
                    batch_norm=config.CLASSIF_HEAD_BN, roi_align=roi_align_options(config),
                    bn_epsilon=config.BN_EPSILON)

    @staticmethod
    def _mask_options(config):
        return dict(train_bn=config.TRAIN_BN, channels=config.MASK_HEAD_CHANNELS,
                    batch_norm=config.MASK_HEAD_BN, roi_align=roi_align_options(config),
                    bn_epsilon=config.BN_EPSILON)

    @staticmethod
    def _rpn(feature_maps, anchors, config, proposal_count, image_meta=None):
        """The shared RPN on P2..P6 (outputs concatenated over levels) and the proposals."""
        rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS),
                              config.TOP_DOWN_PYRAMID_SIZE, config.RPN_HEAD_CHANNELS)
        level_outputs = [rpn([p]) for p in feature_maps]
        names = ["rpn_class_logits", "rpn_class", "rpn_bbox"]
        # float32 outputs (the losses and the ProposalLayer read them) in any COMPUTE_DTYPE
        rpn_class_logits, rpn_class, rpn_bbox = [
            KL.Concatenate(axis=1, name=n, dtype="float32")(list(o))
            for o, n in zip(zip(*level_outputs), names)]
        inputs = [rpn_class, rpn_bbox, anchors]
        if config.RPN_NMS_PER_LEVEL:
            inputs += [image_meta] + [o[1] for o in level_outputs]
        rpn_rois = ProposalLayer(
            proposal_count=proposal_count, nms_threshold=config.RPN_NMS_THRESHOLD,
            pre_nms_limit=config.PRE_NMS_LIMIT, rpn_bbox_std_dev=config.RPN_BBOX_STD_DEV,
            per_level=config.RPN_NMS_PER_LEVEL, min_size=config.RPN_MIN_SIZE,
            box_normalization=config.BOX_NORMALIZATION, name="ROI")(inputs)
        return rpn_class_logits, rpn_class, rpn_bbox, rpn_rois

    @staticmethod
    def _feature_maps(input_image, config):
        """Backbone + FPN: [P2, P3, P4, P5, P6]."""
        if callable(config.BACKBONE):
            _, C2, C3, C4, C5 = config.BACKBONE(input_image, stage5=True,
                                                train_bn=config.TRAIN_BN)
        else:
            _, C2, C3, C4, C5 = resnet_graph(input_image, config.BACKBONE, stage5=True,
                                             train_bn=config.TRAIN_BN,
                                             style=resnet_style(config))
        return fpn_graph(C2, C3, C4, C5, config.TOP_DOWN_PYRAMID_SIZE)

    # ------------------------------------------------------------------ weights and logs

    def find_last(self):
        """The last checkpoint of the latest training run of this config's NAME.

        Returns its path; raises FileNotFoundError when there is none.
        """
        return find_last_checkpoint(self.model_dir, self.config.NAME)

    def load_weights(self, filepath, by_name=False, exclude=None, allow_partial=False):
        """Load weights from a classic Keras 2 HDF5 file, a Keras 3 weights file, or a
        checkpoint of ours.

        by_name: True loads the layers the file and the model share (what you want for
            the COCO weights or fine-tuning); False requires the file to hold exactly
            the model's weight layers.
        exclude: layer names to skip, e.g. ["mrcnn_class_logits", "mrcnn_bbox_fc",
            "mrcnn_bbox", "mrcnn_mask"] when NUM_CLASSES differs from the file's.
        allow_partial: a file whose ResNet backbone differs from the model's (the
            ResNet-101 mask_rcnn_coco.h5 for a BACKBONE="resnet50" config) raises
            WeightsError with the fix; True loads the shared layers with a warning.
        A shape mismatch raises an error naming the layer, both shapes and the fix; so
        do a file that shares no layer with the model and a file holding NaN or
        infinite values. Nothing is changed unless every weight fits.
        Returns {"loaded": [...], "not_in_model": [...], "not_in_file": [...]}.
        """
        filepath = os.fspath(filepath)
        report = load_weights_by_name(self.keras_model, filepath, by_name=by_name,
                                      exclude=exclude, allow_partial=allow_partial)
        self.set_log_dir(filepath)
        # what training started from, for run.json, MLflow and the model card
        self.initial_weights = {"path": os.path.abspath(filepath),
                                "sha256": sha256_file(filepath),
                                "layers_loaded": len(report["loaded"]),
                                "excluded": sorted(exclude or [])}
        return report

    def save_weights(self, filepath):
        """Save the weights in the classic HDF5 layout (loadable by load_weights here
        and by the classic library)."""
        return save_weights_classic(self.keras_model, filepath)

    def get_imagenet_weights(self, cache_dir=None):
        """Path of the ImageNet ResNet-50 weights, downloading them when possible.

        Looks in ``cache_dir``, ``$MRCNN_WEIGHTS_DIR``, ``./weights`` and
        ``~/.keras/models``; offline, the error names where to put the file.
        """
        folders = [cache_dir, os.environ.get("MRCNN_WEIGHTS_DIR"), "weights",
                   os.path.join(os.path.expanduser("~"), ".keras", "models")]
        folders = [f for f in folders if f]
        for folder in folders:
            path = os.path.join(folder, IMAGENET_WEIGHTS_NAME)
            if os.path.isfile(path):
                return path
        target = os.path.join(folders[0], IMAGENET_WEIGHTS_NAME)
        try:
            return utils.download_trained_weights(target, verbose=0, url=IMAGENET_WEIGHTS_URL)
        except RuntimeError as e:
            raise FileNotFoundError(
                "ImageNet weights not found in {} and the download failed ({}). Download {} "
                "elsewhere and put it at {}.".format(folders, e, IMAGENET_WEIGHTS_URL,
                                                     target)) from None

    def set_log_dir(self, model_path=None):
        """Set the log directory and epoch counter.

        model_path: a checkpoint of ours; if its name carries a date and an epoch
        (<name><YYYYMMDDTHHMM>/mask_rcnn_<name>_<epoch>.h5), training continues in that
        folder from that epoch. Otherwise a new folder named after now is used.
        """
        self.epoch = 0
        now = datetime.datetime.now()
        if model_path:
            regex = (r".*[/\\][\w-]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})[/\\]"
                     r"mask\_rcnn\_[\w-]+(\d{4})\.h5")
            m = re.match(regex, model_path.replace(os.sep, "/"))
            if m:
                now = datetime.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)),
                                        int(m.group(4)), int(m.group(5)))
                # The file's epoch is 1-based: it is the number of epochs done.
                self.epoch = int(m.group(6))
                logger.info("Re-starting from epoch %d", self.epoch)
        name = (self.config.NAME or "mask_rcnn").lower()
        self.log_dir = os.path.join(self._run_root(), "{}{:%Y%m%dT%H%M}".format(name, now))
        self.checkpoint_path = os.path.join(
            self.log_dir, "mask_rcnn_{}_*epoch*.h5".format(name)).replace("*epoch*", "{epoch:04d}")

    def _run_root(self):
        """model_dir; for a worker other than the chief of a multi-worker run, a scratch
        folder of its own (removed at exit), so that it writes nothing into model_dir."""
        if getattr(self, "worker", (0, 1, True))[2]:
            return self.model_dir
        if self._scratch is None:
            import atexit
            import shutil
            import tempfile
            self._scratch = tempfile.mkdtemp(prefix="mrcnn-worker{}-".format(self.worker[0]))
            atexit.register(shutil.rmtree, self._scratch, True)
        return self._scratch

    # ------------------------------------------------------------------ training

    def set_trainable(self, layer_regex, keras_model=None, indent=0, verbose=1):
        """Make trainable the weight layers whose names fully match layer_regex (a preset
        name is accepted too); nested models (rpn_model) are searched as well. With
        Config.TRAIN_BN_AFFINE = False the batch norms stay frozen."""
        return set_trainable(keras_model or self.keras_model, layers_regex(layer_regex),
                             verbose=verbose,
                             batch_norm_affine=bool(self.config.TRAIN_BN_AFFINE))

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
              augmentation=None, custom_callbacks=None, no_augmentation_sources=None,
              seed=None, verbose=1, augment=False, save_every=1, save_best=True,
              jit_compile=None):
        """Train the model.

        train_dataset, val_dataset: prepared Datasets (val_dataset may be None).
        learning_rate: a float or a Keras schedule, for Config.OPTIMIZER (SGD with
            momentum LEARNING_MOMENTUM, or AdamW) with global-norm clipping at
            GRADIENT_CLIP_NORM.
        epochs: the epoch to train up to (cumulative: a second call with epochs=40 after
            one with epochs=20 trains 20 more epochs, and so does resuming from a
            checkpoint of epoch 20).
        layers: "heads", "3+", "4+", "5+", "all", or a regex that fully matches layer
            names (it reaches into rpn_model).
        augmentation: an imgaug augmenter, an albumentations pipeline or a callable
            f(image, mask) -> (image, mask) (see mrcnn.augment).
        custom_callbacks: more Keras callbacks.
        no_augmentation_sources: dataset sources never augmented.
        seed: makes the image order and every random choice of the input pipeline
            repeatable (not the heads' ROI sampling in the graph, nor initial weights:
            keras.utils.set_random_seed before building the model fixes those).
        verbose: 1 a progress bar with every loss, 2 one line per epoch, 0 silent.
        save_every: write the epoch's checkpoint every N epochs (and always after the
            last epoch of the call); ResNet-50 checkpoints are about 180 MB each.
        save_best: also keep <log_dir>/mask_rcnn_<name>_best.h5, the weights of the
            epoch with the lowest val_loss (loss without validation data) so far.
        jit_compile: compile the train step with XLA (default: Config.TRAIN_JIT_COMPILE,
            False). Where XLA cannot compile the graph (today: ROIAlign's
            crop_and_resize has no XLA kernel, and the proposals' NMS and the ROI
            sampling have data-dependent shapes), the first step raises
            XlaNotSupported saying so, before any weight changed.

        Each epoch runs STEPS_PER_EPOCH batches (and VALIDATION_STEPS validation
        batches), logs to TensorBoard under self.log_dir, writes every step's losses to
        <log_dir>/losses.csv, the epoch to <log_dir>/history.json and the curves to
        <log_dir>/losses.png (at most once a minute, and at the end), and saves a checkpoint
        <log_dir>/mask_rcnn_<name>_<epoch:04d>.h5. A NaN or infinite loss stops
        training and raises TrainingDiverged naming the step and the loss; a diverged
        epoch is never saved.
        Returns the Keras History.
        """
        if self.mode != "training":
            raise ValueError("train() needs a model built with mode='training'")
        config = self.config
        if self.epoch >= epochs:
            logger.warning("already at epoch %d; train(epochs=%d) has nothing to do (epochs "
                           "is the epoch to train up to)", self.epoch, epochs)
        # an augmentation that does not hand back uint8 pixels (A.Normalize) is refused
        # here, before any image is loaded
        check_augmentation(augmentation, config.IMAGE_SHAPE)
        stats = PipelineStats()
        index, count, _ = self.worker
        shard = (index, count) if count > 1 else None
        if shard is not None and seed is None:
            seed = 0  # the workers must share the image order to split it
        train_ds = make_dataset(train_dataset, config, shuffle=True, augmentation=augmentation,
                                no_augmentation_sources=no_augmentation_sources, seed=seed,
                                augment=augment, stats=stats, shard=shard)
        val_ds = None
        if val_dataset is not None:
            val_shard = shard
            if shard is not None and len(val_dataset.image_ids) < count:
                # too few to share: every worker validates on all of them (the same mean)
                logger.info("%d validation images for %d workers: each validates on all",
                            len(val_dataset.image_ids), count)
                val_shard = None
            val_ds = make_dataset(val_dataset, config, shuffle=True, seed=(seed or 0) + 1,
                                  shard=val_shard)

        # without validation data, the loss of a fixed training batch after each epoch
        # tells whether the epoch's last updates diverged (before its checkpoint)
        probe = None
        if val_dataset is None:
            batch = probe_batch(train_dataset, config)
            probe = functools.partial(self.keras_model.batch_losses, batch)

        # in a multi-worker run only the chief writes; the others check the same
        # things (a NaN loss, a diverged epoch) so that all stop together
        chief = self.worker[2]
        os.makedirs(self.log_dir, exist_ok=True)
        for stale in glob.glob(os.path.join(self.log_dir, "*.part")):
            os.remove(stale)  # a checkpoint or losses.csv cut short by a killed run
        step_logger = StepLossLogger(self.log_dir, config.STEPS_PER_EPOCH,
                                     initial_epoch=self.epoch, write=chief,
                                     loss_scaling=config.COMPUTE_DTYPE == "float16")
        earlier = [h for h in read_history(self.log_dir) if h["epoch"] <= self.epoch]
        checkpoint = ClassicCheckpoint(self.checkpoint_path, probe=probe,
                                       save_every=save_every, save_best=save_best,
                                       best=best_in_history(earlier), write=chief)
        history_logger = RunHistory(self.log_dir, layers, initial_epoch=self.epoch,
                                    checkpoint=checkpoint)
        writers = [keras.callbacks.TensorBoard(log_dir=self.log_dir, histogram_freq=0,
                                               write_graph=False)] if chief else []
        callbacks = writers + [step_logger, SkippedImagesLogger(stats), checkpoint] + \
            ([history_logger] if chief else []) + list(custom_callbacks or [])

        if verbose:
            from .callbacks import describe_learning_rate
            log("\nStarting at epoch {}. LR={}\n".format(self.epoch,
                                                        describe_learning_rate(learning_rate)))
            log("Checkpoint Path: {}".format(self.checkpoint_path))
        with self.strategy.scope():
            self.set_trainable(layers, verbose=0)
            if jit_compile is None:
                jit_compile = config.TRAIN_JIT_COMPILE
            self._compile(learning_rate, bool(jit_compile))
        started = time.time()
        # for callbacks (MLflow) that record what the run trains on
        self.training_datasets = {"train": dataset_summary(train_dataset),
                                  "val": dataset_summary(val_dataset)}
        try:
            with warnings.catch_warnings():
                # Keras warns that shuffle= is ignored for tf.data; our pipeline shuffles.
                warnings.filterwarnings("ignore", message=".*shuffle=True.*")
                history = self._fit(train_ds, val_ds, epochs, callbacks, verbose)
        except Exception as e:
            # an error of load_image / load_mask reaches us wrapped by TensorFlow's
            # iterator; raise the loader's own exception, which names the image
            for ds in (train_ds, val_ds):
                if ds is not None and ds.loader.error is not None:
                    raise ds.loader.error from None
            if jit_compile and is_xla_failure(e):
                raise xla_not_supported(e) from None
            if count > 1 and is_collective_failure(e):
                raise worker_lost(e, index, count) from None
            raise
        finally:
            for ds in (train_ds, val_ds):
                if ds is not None:
                    ds.loader.close()
            if chief:
                # Keras calls on_train_end only when fit() returns: losses.png also
                # catches up when training ends with an error or Ctrl-C (a no-op when
                # it is drawn already)
                history_logger.on_train_end()
        reason = getattr(self.keras_model, "stop_training_reason", None)
        if chief:
            record_stage(self.log_dir, self, layers, learning_rate, history, started,
                         train_dataset, val_dataset, diverged=reason)
        if reason:
            raise TrainingDiverged(reason)
        # the epochs done (a callback such as a time budget may stop before ``epochs``)
        if history is not None and history.epoch:
            self.epoch = max(self.epoch, history.epoch[-1] + 1)
        self.last_checkpoints = list(checkpoint.saved)
        return history

    def _compile(self, learning_rate, jit_compile):
        """Compile the Keras model for a train() call: a new optimizer, whose train and
        validation steps Keras traces on the first batch (seconds for a small model,
        tens of seconds for a ResNet).

        A call with the same trainable weights, jit_compile and traced Config values
        (training.TRACED_CONFIG: the losses' and the optimizer's) as the call before it,
        and a learning rate that is a number, keeps the traced steps instead: the
        optimizer is put back to a new one's state (no momentum, step 0, this call's
        rate), so its updates are the ones a new optimizer would make
        (tests/test_training.py compares them with a new optimizer's)."""
        config, km = self.config, self.keras_model
        key = None
        if isinstance(learning_rate, numbers.Real):
            key = (tuple(id(v) for v in km.trainable_variables), jit_compile,
                   tuple(repr(getattr(config, name, None)) for name in TRACED_CONFIG))
        last = self._compiled
        if key is not None and last is not None and last[0] == key and \
                km.optimizer is last[1] and km.train_function is not None and \
                rate_is_settable(km.optimizer):
            reset_optimizer(km.optimizer, learning_rate, last[2])
            return
        optimizer = make_optimizer(config, learning_rate)
        km.compile(optimizer=optimizer, jit_compile=jit_compile)
        # built before the first trace (a LossScaleOptimizer's scale is read in
        # train_step), and its new state kept for the next call
        optimizer.build(km.trainable_variables)
        self._compiled = (key, optimizer, initial_state(optimizer)) if key else None

    def _distribute(self, ds):
        """A multi-worker run's input: each worker's own shard, as it is (no automatic
        sharding), split among the worker's local replicas (IMAGES_PER_GPU each)."""
        if ds is None or not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return ds
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.OFF
        local = ds.with_options(options)
        if self.strategy.num_replicas_in_sync > self.worker[1]:
            local = local.unbatch().batch(self.config.IMAGES_PER_GPU, drop_remainder=True)
        return self.strategy.distribute_datasets_from_function(lambda context: local)

    def _fit(self, train_ds, val_ds, epochs, callbacks, verbose):
        config = self.config
        train_ds, val_ds = self._distribute(train_ds), self._distribute(val_ds)
        with fit_scope():
            return self.keras_model.fit(
                train_ds, initial_epoch=self.epoch, epochs=epochs,
                steps_per_epoch=config.STEPS_PER_EPOCH, callbacks=callbacks,
                validation_data=val_ds,
                validation_steps=config.VALIDATION_STEPS if val_ds is not None else None,
                verbose=verbose)

    # ------------------------------------------------------------------ inference

    def get_anchors(self, image_shape):
        """Normalised anchors [N, (y1, x1, y2, x2)] for a molded image shape (cached)."""
        key = tuple(int(v) for v in image_shape[:2])
        with self._lock:
            if key not in self._anchor_cache:
                backbone_shapes = compute_backbone_shapes(self.config, image_shape)
                a = utils.generate_pyramid_anchors(
                    self.config.RPN_ANCHOR_SCALES, self.config.RPN_ANCHOR_RATIOS,
                    backbone_shapes, self.config.BACKBONE_STRIDES, self.config.RPN_ANCHOR_STRIDE,
                    self.config.RPN_ANCHOR_ROUNDING)
                self.anchors = a  # pixel coordinates, kept for inspection as before
                self._anchor_cache[key] = utils.norm_boxes(a, image_shape[:2],
                                                           self.config.BOX_NORMALIZATION)
            return self._anchor_cache[key]

    def mold_inputs(self, images):
        """Resize, pad and normalise images; see ``mrcnn.molding.mold_inputs``."""
        return mold_inputs(images, self.config)

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape,
                          window):
        """Detections of one image, from the network's output to original image pixels.

        detections: [N, (y1, x1, y2, x2, class_id, score)] normalised, in the molded image.
        mrcnn_mask: [N, height, width, num_classes].
        original_image_shape: [H, W, C] before resizing; image_shape: [H, W, C] after.
        window: [y1, x1, y2, x2] pixels, the image inside the padding.
        Returns: boxes int32 [N, (y1, x1, y2, x2)], class_ids int32 [N], scores [N],
        masks bool [H, W, N] at the original size.
        """
        zero_ix = np.where(detections[:, 4] == 0)[0]
        N = zero_ix[0] if zero_ix.shape[0] > 0 else detections.shape[0]
        boxes = detections[:N, :4]
        class_ids = detections[:N, 4].astype(np.int32)
        scores = detections[:N, 5]
        masks = mrcnn_mask[np.arange(N), :, :, class_ids]

        if self.config.BOX_NORMALIZATION == "scale":
            return self._unmold_scaled(boxes, class_ids, scores, masks, original_image_shape,
                                       image_shape, window)
        # Boxes from the molded image to the original image
        window = utils.norm_boxes(window, image_shape[:2])
        wy1, wx1, wy2, wx2 = window
        shift = np.array([wy1, wx1, wy1, wx1])
        wh = wy2 - wy1
        ww = wx2 - wx1
        scale = np.array([wh, ww, wh, ww])
        boxes = np.divide(boxes - shift, scale)
        boxes = utils.denorm_boxes(boxes, original_image_shape[:2])

        # Drop boxes with no area (can happen right at the window's edge)
        exclude_ix = np.where((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) <= 0)[0]
        if exclude_ix.shape[0] > 0:
            boxes = np.delete(boxes, exclude_ix, axis=0)
            class_ids = np.delete(class_ids, exclude_ix, axis=0)
            scores = np.delete(scores, exclude_ix, axis=0)
            masks = np.delete(masks, exclude_ix, axis=0)
            N = class_ids.shape[0]

        # the classic unmold_mask per detection, without a full-size temporary each
        full_masks = utils.unmold_masks(masks, boxes, original_image_shape,
                                        self.config.DETECTION_MASK_THRESHOLD)
        return boxes, class_ids, scores, full_masks

    def _unmold_scaled(self, boxes, class_ids, scores, masks, original_image_shape,
                       image_shape, window):
        """unmold_detections for BOX_NORMALIZATION "scale" (torchvision's arithmetic):
        boxes scale back by original size / window size (torchvision's resize_boxes);
        masks are pasted with the float boxes (MASK_PASTE)."""
        h, w = image_shape[:2]
        wy1, wx1, wy2, wx2 = [float(v) for v in window]
        ry = original_image_shape[0] / max(wy2 - wy1, 1.0)
        rx = original_image_shape[1] / max(wx2 - wx1, 1.0)
        pixels = boxes * np.array([h, w, h, w], dtype=np.float32)
        pixels = (pixels - np.array([wy1, wx1, wy1, wx1], dtype=np.float32)) * \
            np.array([ry, rx, ry, rx], dtype=np.float32)
        pixels = pixels.astype(np.float32)
        keep = np.where((pixels[:, 2] > pixels[:, 0]) & (pixels[:, 3] > pixels[:, 1]))[0]
        pixels, class_ids, scores, masks = pixels[keep], class_ids[keep], scores[keep], \
            masks[keep]
        if self.config.MASK_PASTE == "torchvision":
            full_masks = utils.paste_masks_torchvision(masks, pixels, original_image_shape,
                                                       self.config.DETECTION_MASK_THRESHOLD)
        else:
            full_masks = utils.unmold_masks(masks, np.round(pixels).astype(np.int32),
                                            original_image_shape,
                                            self.config.DETECTION_MASK_THRESHOLD)
        return np.round(pixels).astype(np.int32), class_ids, scores, full_masks

    def _predict(self, molded_images, image_metas, anchors):
        """Run the compiled graph; returns (detections, mrcnn_mask) as NumPy."""
        if self._infer is None:
            with self._lock:
                if self._infer is None:
                    model = self.keras_model
                    spec = [tf.TensorSpec([None, None, None, self.config.IMAGE_CHANNEL_COUNT],
                                          tf.float32),
                            tf.TensorSpec([None, self.config.IMAGE_META_SIZE], tf.float32),
                            tf.TensorSpec([None, None, 4], tf.float32)]

                    @tf.function(input_signature=spec)
                    def infer(images, metas, anchors):
                        outputs = model([images, metas, anchors], training=False)
                        return outputs[0], outputs[3]

                    self._infer = infer
        detections, mrcnn_mask = self._infer(
            tf.constant(molded_images, tf.float32), tf.constant(image_metas, tf.float32),
            tf.constant(anchors, tf.float32))
        return detections.numpy(), mrcnn_mask.numpy()

    def detect(self, images, verbose=0):
        """Detect instances in a list of images.

        images: a list of images (or an array [N, H, W, 3] of N images), any number of
            them, processed BATCH_SIZE at a time. Each image is [H, W, 3] RGB uint8;
            grayscale [H, W], RGBA, uint16 and float images (values in [0, 1] or
            [0, 255]) are converted by the rule training uses
            (``mrcnn.imageops.as_model_image``). One image alone is not accepted: pass
            ``[image]`` (the classic API always took a list; a single [H, W, 3] array
            would otherwise be read as H images of one row each). With
            IMAGE_RESIZE_MODE "pad64" or "none", images of different sizes are run one
            size at a time.
        Returns: one dict per image, in order, with
            rois: int32 [N, (y1, x1, y2, x2)] in original image pixels,
            class_ids: int32 [N], scores: float32 [N],
            masks: bool [H, W, N] at the original image size.
        Every image is checked before any is run: a path instead of pixels, an empty
        image, one of the wrong shape or dtype, NaN pixels, or one that resizing would
        shrink to nothing raises TypeError/ValueError naming its index.
        Safe to call from several threads on one model.
        """
        if self.mode != "inference":
            raise ValueError("detect() needs a model built with mode='inference'")
        images = self._check_images(images)
        if verbose:
            log("Processing {} images".format(len(images)))
            for image in images:
                log("image", image)
        results = [None] * len(images)
        batch = max(1, int(self.config.BATCH_SIZE))
        for start in range(0, len(images), batch):
            chunk = list(range(start, min(start + batch, len(images))))
            by_shape = {}
            for i in chunk:
                by_shape.setdefault(self._molded_shape(images[i]), []).append(i)
            for ids in by_shape.values():
                for i, r in zip(ids, self._detect_same_size([images[i] for i in ids], verbose)):
                    results[i] = r
        return results

    def _molded_shape(self, image):
        if self.config.IMAGE_RESIZE_MODE == "square":
            return "square"
        return tuple(image.shape)

    def _detect_same_size(self, images, verbose=0):
        """Detect on images that mold to one size; results in original image pixels."""
        molded_images, image_metas, windows = self.mold_inputs(images)
        return self._detect_batch(molded_images, image_metas, windows,
                                  [image.shape for image in images], verbose)

    def detect_molded(self, molded_images, image_metas, verbose=0):
        """Detect on images that are already molded (e.g. from the training pipeline).

        molded_images: [N, H, W, 3] float32 (mean subtracted); image_metas: [N, META].
        Returns dicts as ``detect`` does, in molded-image coordinates.
        """
        if self.mode != "inference":
            raise ValueError("detect_molded() needs a model built with mode='inference'")
        molded_images = np.asarray(molded_images, dtype=np.float32)
        windows = [[0, 0, image.shape[0], image.shape[1]] for image in molded_images]
        return self._detect_batch(molded_images, np.asarray(image_metas), windows,
                                  [image.shape for image in molded_images], verbose)

    def _detect_batch(self, molded_images, image_metas, windows, original_shapes, verbose=0):
        """Run the network on a batch of molded images of one size and unmold each
        image's detections: ``windows[i]`` (the image inside the padding) is mapped onto
        an image of ``original_shapes[i]``. Returns one result dict per image."""
        anchors = self.get_anchors(molded_images[0].shape)
        anchors = np.broadcast_to(anchors, (len(molded_images),) + anchors.shape)
        if verbose:
            log("molded_images", molded_images)
            log("image_metas", image_metas)
            log("anchors", anchors)
        detections, mrcnn_mask = self._predict(molded_images, image_metas, anchors)
        results = []
        for i in range(len(molded_images)):
            rois, class_ids, scores, masks = self.unmold_detections(
                detections[i], mrcnn_mask[i], original_shapes[i], molded_images[i].shape,
                windows[i])
            results.append({"rois": rois, "class_ids": class_ids, "scores": scores,
                            "masks": masks})
        return results

    def _check_images(self, images):
        """The images of a detect() call, converted and checked before any work."""
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise TypeError(
                "detect() takes a list of images; got one array of shape {}. Pass "
                "[image] (a list of one image) and take results[0]; an array [N, H, W, 3] "
                "of N images is also accepted.".format(images.shape))
        if isinstance(images, (str, bytes, os.PathLike)):
            raise TypeError("detect() takes a list of images (pixel arrays); got the path "
                            "{!r}. Read it first: detect([mrcnn.utils.read_image(path)])"
                            .format(os.fspath(images)))
        try:
            images = list(images)
        except TypeError:
            raise TypeError("detect() takes a list of images (NumPy arrays [H, W, 3]); got "
                            "{}. Pass [image].".format(type(images).__name__)) from None
        config = self.config
        out = []
        for i, image in enumerate(images):
            what = "shape {}, dtype {}".format(getattr(image, "shape", None),
                                               getattr(image, "dtype", None)) \
                if hasattr(image, "shape") else type(image).__name__
            try:
                image = self._as_rgb(i, image, config.IMAGE_CHANNEL_COUNT)
                h, w = image.shape[:2]
                resize_scale(h, w, min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM,
                             min_scale=config.IMAGE_MIN_SCALE, mode=config.IMAGE_RESIZE_MODE)
                if config.IMAGE_RESIZE_MODE == "none" and isinstance(config.BACKBONE, str) \
                        and (h % 32 or w % 32):
                    raise ValueError(
                        "a {}x{} image with IMAGE_RESIZE_MODE 'none': the ResNet/FPN "
                        "network needs sides that are multiples of 32; use 'pad64' (pads "
                        "any size) or 'square'".format(h, w))
            except ValueError as e:
                raise ValueError("detect: image {} of {} ({}): {}".format(
                    i, len(images), what, e)) from None
            out.append(image)
        return out

    @staticmethod
    def _as_rgb(index, image, channels=3):
        """An input image as the network takes it (``imageops.as_model_image``); raises
        ValueError saying what is wrong with it."""
        if not isinstance(image, (str, bytes, os.PathLike)):
            image = np.asarray(image)
            if channels == 3 and image.ndim == 3 and image.shape[-1] == 3 and \
                    image.dtype == np.uint8 and image.shape[0] and image.shape[1]:
                return image
        return as_model_image(image, channels)

    # ------------------------------------------------------------------ inspection

    def get_trainable_layers(self):
        """Layers that hold weights, nested models expanded."""
        from .weights import weight_layers
        return [l for l in weight_layers(self.keras_model).values() if not hasattr(l, "layers")]

    def run_graph(self, images, outputs, image_metas=None):
        """Run the model on images and return the named intermediate tensors.

        outputs: list of (name, keras tensor) pairs from ``self.keras_model``'s graph,
        e.g. [("proposals", model.keras_model.get_layer("ROI").output)].
        Returns: an ordered dict of name -> NumPy array.
        """
        from collections import OrderedDict
        model = self.keras_model
        sub = keras.Model(model.inputs, [t for _, t in outputs])
        molded_images, metas, _ = self.mold_inputs(images)
        if image_metas is not None:
            metas = image_metas
        anchors = np.broadcast_to(self.get_anchors(molded_images[0].shape),
                                  (len(images),) + self.get_anchors(molded_images[0].shape).shape)
        values = sub([tf.constant(molded_images), tf.constant(metas, tf.float32),
                      tf.constant(anchors, tf.float32)], training=False)
        if not isinstance(values, (list, tuple)):
            values = [values]
        result = OrderedDict()
        for (name, _), v in zip(outputs, values):
            result[name] = np.asarray(v)
            log(name, result[name])
        return result
