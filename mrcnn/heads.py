"""The classifier/box head and the mask head, on ROIs pooled by PyramidROIAlign.

The heads run on the ROIs of all images flattened into one batch (what the classic
code did with TimeDistributed layers) and keep the classic weight names:
``mrcnn_class_conv1`` (7x7 valid conv as a 1024-wide FC), ``mrcnn_class_bn1``,
``mrcnn_class_conv2``, ``mrcnn_class_bn2``, ``mrcnn_class_logits``, ``mrcnn_bbox_fc``;
``mrcnn_mask_conv1..4``, ``mrcnn_mask_bn1..4``, ``mrcnn_mask_deconv``, ``mrcnn_mask``.
"""
from keras import layers as KL

from .backbone import BatchNorm
from .roi_align import PyramidROIAlign, UnflattenRois


def roi_align_options(config):
    """PyramidROIAlign's keyword arguments from a Config (the flavour options)."""
    return {"pixel_aligned": config.ROI_ALIGN_PIXEL_ALIGNED,
            "sampling_ratio": config.ROI_ALIGN_SAMPLING_RATIO,
            "level_mapper": config.ROI_LEVEL_MAPPER,
            "box_normalization": config.BOX_NORMALIZATION}


def fpn_classifier_graph(rois, feature_maps, image_meta, pool_size, num_classes,
                         train_bn=False, fc_layers_size=1024, pixel_aligned=False,
                         batch_norm=True, roi_align=None, bn_epsilon=1e-3):
    """The classifier and box-regression head.

    rois: [batch, num_rois, (y1, x1, y2, x2)] normalised proposals.
    feature_maps: [P2, P3, P4, P5]; image_meta: [batch, IMAGE_META_SIZE].
    batch_norm: False leaves out mrcnn_class_bn1/2 (torchvision's TwoMLPHead;
    Config.CLASSIF_HEAD_BN). roi_align: PyramidROIAlign keyword arguments
    (``roi_align_options(config)``; it overrides pixel_aligned).
    Returns:
        logits: [batch, num_rois, NUM_CLASSES] classifier logits.
        probs: [batch, num_rois, NUM_CLASSES] class probabilities.
        bbox_deltas: [batch, num_rois, NUM_CLASSES, (dy, dx, log(dh), log(dw))].
    """
    roi_align = roi_align or {"pixel_aligned": pixel_aligned}
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_classifier", **roi_align)(
        [rois, image_meta] + feature_maps)
    # Two 1024-wide FC layers, written as convs (7x7 valid, then 1x1)
    x = KL.Conv2D(fc_layers_size, (pool_size, pool_size), padding="valid",
                  name="mrcnn_class_conv1")(x)
    if batch_norm:
        x = BatchNorm(train_bn=train_bn, epsilon=bn_epsilon, name="mrcnn_class_bn1")(x)
    x = KL.Activation("relu")(x)
    x = KL.Conv2D(fc_layers_size, (1, 1), name="mrcnn_class_conv2")(x)
    if batch_norm:
        x = BatchNorm(train_bn=train_bn, epsilon=bn_epsilon, name="mrcnn_class_bn2")(x)
    x = KL.Activation("relu")(x)
    shared = KL.Reshape((fc_layers_size,), name="pool_squeeze")(x)

    logits = KL.Dense(num_classes, name="mrcnn_class_logits")(shared)
    probs = KL.Activation("softmax")(logits)
    deltas = KL.Dense(num_classes * 4, activation="linear", name="mrcnn_bbox_fc")(shared)
    deltas = KL.Reshape((num_classes, 4))(deltas)

    logits = UnflattenRois(name="mrcnn_class_logits_rois")([logits, rois])
    probs = UnflattenRois(name="mrcnn_class")([probs, rois])
    deltas = UnflattenRois(name="mrcnn_bbox")([deltas, rois])
    return logits, probs, deltas


def build_fpn_mask_graph(rois, feature_maps, image_meta, pool_size, num_classes,
                         train_bn=False, channels=256, batch_norm=True,
                         pixel_aligned=False, roi_align=None, bn_epsilon=1e-3):
    """The mask head.

    rois: [batch, num_rois, (y1, x1, y2, x2)] normalised boxes.
    channels: width of the convs and the deconv (256 in the classic network).
    batch_norm: False leaves out mrcnn_mask_bn1..4 (see Config.MASK_HEAD_BN).
    pixel_aligned: see Config.ROI_ALIGN_PIXEL_ALIGNED (also for fpn_classifier_graph).
    roi_align: PyramidROIAlign keyword arguments (overrides pixel_aligned).
    Returns: [batch, num_rois, 2 * pool_size, 2 * pool_size, NUM_CLASSES] mask
    probabilities (sigmoid), one mask per class.
    """
    roi_align = roi_align or {"pixel_aligned": pixel_aligned}
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_mask", **roi_align)(
        [rois, image_meta] + feature_maps)
    # without batch norm to rescale them, the convs start at He's variance (ReLU-preserving)
    init = "glorot_uniform" if batch_norm else "he_normal"
    for i in range(1, 5):
        x = KL.Conv2D(channels, (3, 3), padding="same", name="mrcnn_mask_conv{}".format(i),
                      kernel_initializer=init)(x)
        if batch_norm:
            x = BatchNorm(train_bn=train_bn, epsilon=bn_epsilon,
                          name="mrcnn_mask_bn{}".format(i))(x)
        x = KL.Activation("relu")(x)
    x = KL.Conv2DTranspose(channels, (2, 2), strides=2, activation="relu",
                           kernel_initializer=init, name="mrcnn_mask_deconv")(x)
    x = KL.Conv2D(num_classes, (1, 1), strides=1, activation="sigmoid", name="mrcnn_mask")(x)
    return UnflattenRois(name="mrcnn_mask_rois")([x, rois])
