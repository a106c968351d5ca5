"""Detection-head training targets, made inside the network (TensorFlow).

Proposals with IoU >= 0.5 with a ground-truth box are positive; up to
TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO positives are sampled, with negatives (IoU < 0.5,
not touching a crowd) making up the ratio; each positive gets its box deltas and a
MASK_SHAPE mask target cut from its ground-truth mask. The RPN targets are made in the
input pipeline: ``rpn_targets.build_rpn_targets``.
"""
import keras
import numpy as np
import tensorflow as tf
from keras import layers as KL

from .precision import Float32Layer
from .graph_ops import box_refinement_graph, for_each_image, overlaps_graph, \
    trim_zeros_graph


def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, rois_per_image,
                            positive_ratio, bbox_std_dev, mask_shape, use_mini_mask,
                            include_gt=False):
    """Sample ROIs of one image and make their targets.

    proposals: [N, (y1, x1, y2, x2)] normalised, zero-padded.
    gt_class_ids: [MAX_GT_INSTANCES] int (negative = crowd, 0 = padding).
    gt_boxes: [MAX_GT_INSTANCES, (y1, x1, y2, x2)] normalised.
    gt_masks: [height, width, MAX_GT_INSTANCES] bool (mini-masks if use_mini_mask).
    Returns (zero-padded to rois_per_image):
        rois: [rois_per_image, (y1, x1, y2, x2)] normalised, positives first.
        class_ids: int32 [rois_per_image], 0 for negatives and padding.
        deltas: [rois_per_image, (dy, dx, log(dh), log(dw))] / BBOX_STD_DEV.
        masks: [rois_per_image, mask_h, mask_w] 0/1 mask targets.
    include_gt: also offer the (non-crowd) GT boxes themselves as proposals, as
        torchvision and Detectron do; the classic library did not.
    """
    proposals, _ = trim_zeros_graph(proposals)
    gt_boxes, non_zeros = trim_zeros_graph(gt_boxes)
    gt_class_ids = tf.boolean_mask(gt_class_ids, non_zeros)
    gt_masks = tf.gather(gt_masks, tf.where(non_zeros)[:, 0], axis=2)

    # Crowds: left out of the targets, and ROIs touching them are not negatives
    crowd_ix = tf.where(gt_class_ids < 0)[:, 0]
    non_crowd_ix = tf.where(gt_class_ids > 0)[:, 0]
    crowd_boxes = tf.gather(gt_boxes, crowd_ix)
    gt_class_ids = tf.gather(gt_class_ids, non_crowd_ix)
    gt_boxes = tf.gather(gt_boxes, non_crowd_ix)
    gt_masks = tf.gather(gt_masks, non_crowd_ix, axis=2)
    if include_gt:
        # Positives from the first step on, whatever the RPN proposes yet
        proposals = tf.concat([proposals, gt_boxes], axis=0)

    overlaps = overlaps_graph(proposals, gt_boxes)
    crowd_overlaps = overlaps_graph(proposals, crowd_boxes)
    crowd_iou_max = tf.reduce_max(tf.concat(
        [crowd_overlaps, tf.zeros([tf.shape(proposals)[0], 1])], axis=1), axis=1)
    no_crowd_bool = crowd_iou_max < 0.001
    roi_iou_max = tf.reduce_max(tf.concat(
        [overlaps, tf.zeros([tf.shape(proposals)[0], 1])], axis=1), axis=1)

    positive_indices = tf.where(roi_iou_max >= 0.5)[:, 0]
    negative_indices = tf.where(tf.logical_and(roi_iou_max < 0.5, no_crowd_bool))[:, 0]

    positive_count = int(rois_per_image * positive_ratio)
    positive_indices = tf.random.shuffle(positive_indices)[:positive_count]
    positive_count = tf.shape(positive_indices)[0]
    r = 1.0 / positive_ratio
    negative_count = tf.cast(r * tf.cast(positive_count, tf.float32), tf.int32) - positive_count
    negative_indices = tf.random.shuffle(negative_indices)[:negative_count]

    positive_rois = tf.gather(proposals, positive_indices)
    negative_rois = tf.gather(proposals, negative_indices)

    positive_overlaps = tf.gather(overlaps, positive_indices)
    roi_gt_box_assignment = tf.cond(
        tf.greater(tf.shape(positive_overlaps)[1], 0),
        lambda: tf.argmax(positive_overlaps, axis=1),
        lambda: tf.zeros([0], tf.int64))
    roi_gt_boxes = tf.gather(gt_boxes, roi_gt_box_assignment)
    roi_gt_class_ids = tf.cast(tf.gather(gt_class_ids, roi_gt_box_assignment), tf.int32)

    deltas = box_refinement_graph(positive_rois, roi_gt_boxes)
    deltas /= tf.constant(bbox_std_dev, tf.float32)

    transposed_masks = tf.expand_dims(tf.transpose(tf.cast(gt_masks, tf.float32), [2, 0, 1]), -1)
    roi_masks = tf.gather(transposed_masks, roi_gt_box_assignment)
    boxes = positive_rois
    if use_mini_mask:
        # Mini-masks cover the GT box: express the ROI in the GT box's frame
        y1, x1, y2, x2 = tf.split(positive_rois, 4, axis=1)
        gt_y1, gt_x1, gt_y2, gt_x2 = tf.split(roi_gt_boxes, 4, axis=1)
        gt_h = gt_y2 - gt_y1
        gt_w = gt_x2 - gt_x1
        boxes = tf.concat([(y1 - gt_y1) / gt_h, (x1 - gt_x1) / gt_w,
                           (y2 - gt_y1) / gt_h, (x2 - gt_x1) / gt_w], axis=1)
    box_ids = tf.range(0, tf.shape(roi_masks)[0])
    masks = tf.image.crop_and_resize(roi_masks, boxes, box_ids, mask_shape)
    masks = tf.round(tf.squeeze(masks, axis=3))

    rois = tf.concat([positive_rois, negative_rois], axis=0)
    N = tf.shape(negative_rois)[0]
    P = tf.maximum(rois_per_image - tf.shape(rois)[0], 0)
    rois = tf.pad(rois, [(0, P), (0, 0)])
    roi_gt_class_ids = tf.pad(roi_gt_class_ids, [(0, N + P)])
    deltas = tf.pad(deltas, [(0, N + P), (0, 0)])
    masks = tf.pad(masks, [[0, N + P], (0, 0), (0, 0)])
    return rois, roi_gt_class_ids, deltas, masks


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionTargetLayer(Float32Layer):
    """Sample proposals and build classifier, box and mask targets (training only).

    Inputs: proposals [batch, N, 4] normalised; gt_class_ids [batch, MAX_GT];
    gt_boxes [batch, MAX_GT, 4] normalised; gt_masks [batch, h, w, MAX_GT].
    Outputs: rois [batch, TRAIN_ROIS_PER_IMAGE, 4], target_class_ids [batch, TRAIN_ROIS],
    target_deltas [batch, TRAIN_ROIS, 4], target_mask [batch, TRAIN_ROIS, mask_h, mask_w].
    """

    def __init__(self, rois_per_image=200, positive_ratio=0.33,
                 bbox_std_dev=(0.1, 0.1, 0.2, 0.2), mask_shape=(28, 28), use_mini_mask=True,
                 include_gt=False, **kwargs):
        super().__init__(**kwargs)
        self.rois_per_image = int(rois_per_image)
        self.positive_ratio = float(positive_ratio)
        self.bbox_std_dev = [float(v) for v in np.asarray(bbox_std_dev).reshape(-1)]
        self.mask_shape = tuple(int(v) for v in mask_shape)
        self.use_mini_mask = bool(use_mini_mask)
        self.include_gt = bool(include_gt)

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs
        n = self.rois_per_image

        def one_image(args):
            return detection_targets_graph(*args, n, self.positive_ratio, self.bbox_std_dev,
                                           self.mask_shape, self.use_mini_mask, self.include_gt)

        signature = (tf.TensorSpec([n, 4], tf.float32), tf.TensorSpec([n], tf.int32),
                     tf.TensorSpec([n, 4], tf.float32),
                     tf.TensorSpec([n] + list(self.mask_shape), tf.float32))
        rois, class_ids, deltas, masks = for_each_image(
            one_image, (proposals, tf.cast(gt_class_ids, tf.int32), gt_boxes, gt_masks),
            fn_output_signature=signature)
        return [tf.stop_gradient(rois), tf.stop_gradient(class_ids),
                tf.stop_gradient(deltas), tf.stop_gradient(masks)]

    def compute_output_shape(self, input_shape):
        b = input_shape[0][0]
        n = self.rois_per_image
        return [(b, n, 4), (b, n), (b, n, 4), (b, n) + self.mask_shape]

    def get_config(self):
        config = super().get_config()
        config.update(rois_per_image=self.rois_per_image, positive_ratio=self.positive_ratio,
                      bbox_std_dev=self.bbox_std_dev, mask_shape=list(self.mask_shape),
                      use_mini_mask=self.use_mini_mask, include_gt=self.include_gt)
        return config
