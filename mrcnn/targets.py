"""Training targets: RPN targets (NumPy, in the input pipeline) and detection targets
(the DetectionTargetLayer, in the graph).

RPN targets: an anchor is positive when its IoU with a ground-truth box is >= 0.7 or it
is the best anchor of some ground-truth box; negative when its best IoU is < 0.3 and it
does not touch a crowd region; at most half of RPN_TRAIN_ANCHORS_PER_IMAGE are positive
and the rest of that many are negative; the others are neutral (0).

Detection targets: proposals with IoU >= 0.5 with a ground-truth box are positive; up to
TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO positives are sampled, with negatives (IoU < 0.5,
not touching a crowd) making up the ratio; each positive gets its box deltas and a
MASK_SHAPE mask target cut from its ground-truth mask.
"""
import keras
import numpy as np
import tensorflow as tf
from keras import layers as KL

from .boxes import compute_overlaps


############################################################
#  RPN targets (NumPy)
############################################################

def build_rpn_targets(image_shape, anchors, gt_class_ids, gt_boxes, config, rng=None):
    """Anchor labels and box deltas for the RPN.

    image_shape: [H, W, C] of the molded image (unused, kept for the classic signature).
    anchors: [num_anchors, (y1, x1, y2, x2)] in pixels.
    gt_class_ids: [num_gt] int (negative = crowd); gt_boxes: [num_gt, (y1, x1, y2, x2)].
    rng: a numpy RandomState for the subsampling (default: the global one).
    Returns:
        rpn_match: int32 [num_anchors], 1 positive, -1 negative, 0 neutral.
        rpn_bbox: [RPN_TRAIN_ANCHORS_PER_IMAGE, (dy, dx, log(dh), log(dw))], the deltas of
            the positive anchors in anchor order, divided by RPN_BBOX_STD_DEV, zero-padded.
    """
    rng = rng if rng is not None else np.random
    rpn_match = np.zeros([anchors.shape[0]], dtype=np.int32)
    rpn_bbox = np.zeros((config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4))
    gt_class_ids = np.asarray(gt_class_ids)
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)

    # Crowd boxes: anchors touching them are never negative
    crowd_ix = np.where(gt_class_ids < 0)[0]
    if crowd_ix.shape[0] > 0:
        non_crowd_ix = np.where(gt_class_ids > 0)[0]
        crowd_boxes = gt_boxes[crowd_ix]
        gt_class_ids = gt_class_ids[non_crowd_ix]
        gt_boxes = gt_boxes[non_crowd_ix]
        crowd_overlaps = compute_overlaps(anchors, crowd_boxes)
        no_crowd_bool = np.amax(crowd_overlaps, axis=1) < 0.001
    else:
        no_crowd_bool = np.ones([anchors.shape[0]], dtype=bool)

    if gt_boxes.shape[0] == 0:
        # No objects: every anchor away from crowds is a negative candidate
        rpn_match[no_crowd_bool] = -1
    else:
        overlaps = compute_overlaps(anchors, gt_boxes)
        anchor_iou_argmax = np.argmax(overlaps, axis=1)
        anchor_iou_max = overlaps[np.arange(overlaps.shape[0]), anchor_iou_argmax]
        # 1. negatives first, so that positives below can override them
        rpn_match[(anchor_iou_max < 0.3) & no_crowd_bool] = -1
        # 2. the best anchor(s) of each GT box (only where they overlap it at all)
        gt_max = np.max(overlaps, axis=0)
        best = np.argwhere((overlaps == gt_max) & (gt_max > 0))[:, 0]
        rpn_match[best] = 1
        # 3. anchors with high overlap
        rpn_match[anchor_iou_max >= 0.7] = 1

    # Balance: at most half positives, the rest negatives
    ids = np.where(rpn_match == 1)[0]
    extra = len(ids) - (config.RPN_TRAIN_ANCHORS_PER_IMAGE // 2)
    if extra > 0:
        rpn_match[rng.choice(ids, extra, replace=False)] = 0
    ids = np.where(rpn_match == -1)[0]
    extra = len(ids) - (config.RPN_TRAIN_ANCHORS_PER_IMAGE - np.sum(rpn_match == 1))
    if extra > 0:
        rpn_match[rng.choice(ids, extra, replace=False)] = 0

    # Deltas of the positive anchors to their GT boxes
    ids = np.where(rpn_match == 1)[0]
    if ids.size:
        gt = gt_boxes[anchor_iou_argmax[ids]].astype(np.float64)
        a = anchors[ids].astype(np.float64)
        gt_h = gt[:, 2] - gt[:, 0]
        gt_w = gt[:, 3] - gt[:, 1]
        gt_cy = gt[:, 0] + 0.5 * gt_h
        gt_cx = gt[:, 1] + 0.5 * gt_w
        a_h = a[:, 2] - a[:, 0]
        a_w = a[:, 3] - a[:, 1]
        a_cy = a[:, 0] + 0.5 * a_h
        a_cx = a[:, 1] + 0.5 * a_w
        deltas = np.stack([(gt_cy - a_cy) / a_h, (gt_cx - a_cx) / a_w,
                           np.log(gt_h / a_h), np.log(gt_w / a_w)], axis=1)
        rpn_bbox[:len(ids)] = deltas / config.RPN_BBOX_STD_DEV
    return rpn_match, rpn_bbox


def generate_random_rois(image_shape, count, gt_class_ids, gt_boxes, rng=None):
    """Random ROIs for training the heads without the RPN (USE_RPN_ROIS = False).

    90% are scattered around the ground-truth boxes, the rest over the whole image.
    Returns: int32 [count, (y1, x1, y2, x2)] pixels.
    """
    rng = rng if rng is not None else np.random
    rois = np.zeros((count, 4), dtype=np.int32)
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    n_gt = gt_boxes.shape[0]
    rois_per_box = int(0.9 * count / n_gt) if n_gt else 0

    def random_boxes(n, y_lo, y_hi, x_lo, x_hi):
        out = np.zeros((0, 4), dtype=np.int32)
        for _ in range(20):
            ys = rng.randint(y_lo, max(y_hi, y_lo + 1), (n * 2, 2))
            xs = rng.randint(x_lo, max(x_hi, x_lo + 1), (n * 2, 2))
            ys.sort(axis=1)
            xs.sort(axis=1)
            keep = (ys[:, 1] - ys[:, 0] >= 1) & (xs[:, 1] - xs[:, 0] >= 1)
            boxes = np.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]], axis=1)[keep]
            out = np.concatenate([out, boxes])
            if out.shape[0] >= n:
                return out[:n]
        return np.resize(out, (n, 4)) if out.size else np.tile([[0, 0, 1, 1]], (n, 1))

    for i in range(n_gt):
        gt_y1, gt_x1, gt_y2, gt_x2 = gt_boxes[i]
        h, w = gt_y2 - gt_y1, gt_x2 - gt_x1
        rois[rois_per_box * i:rois_per_box * (i + 1)] = random_boxes(
            rois_per_box, max(gt_y1 - h, 0), min(gt_y2 + h, image_shape[0]),
            max(gt_x1 - w, 0), min(gt_x2 + w, image_shape[1]))
    rest = count - rois_per_box * n_gt
    rois[-rest:] = random_boxes(rest, 0, image_shape[0], 0, image_shape[1])
    return rois


############################################################
#  Detection targets (graph)
############################################################

def overlaps_graph(boxes1, boxes2):
    """IoU matrix [N1, N2] of two sets of [N, (y1, x1, y2, x2)] boxes."""
    b1 = tf.reshape(tf.tile(tf.expand_dims(boxes1, 1), [1, 1, tf.shape(boxes2)[0]]), [-1, 4])
    b2 = tf.tile(boxes2, [tf.shape(boxes1)[0], 1])
    b1_y1, b1_x1, b1_y2, b1_x2 = tf.split(b1, 4, axis=1)
    b2_y1, b2_x1, b2_y2, b2_x2 = tf.split(b2, 4, axis=1)
    y1 = tf.maximum(b1_y1, b2_y1)
    x1 = tf.maximum(b1_x1, b2_x1)
    y2 = tf.minimum(b1_y2, b2_y2)
    x2 = tf.minimum(b1_x2, b2_x2)
    intersection = tf.maximum(x2 - x1, 0) * tf.maximum(y2 - y1, 0)
    union = (b1_y2 - b1_y1) * (b1_x2 - b1_x1) + (b2_y2 - b2_y1) * (b2_x2 - b2_x1) - intersection
    iou = intersection / tf.maximum(union, 1e-12)
    return tf.reshape(iou, [tf.shape(boxes1)[0], tf.shape(boxes2)[0]])


def trim_zeros_graph(boxes):
    """Drop all-zero rows: returns (boxes, bool [N] of the kept rows)."""
    non_zeros = tf.cast(tf.reduce_sum(tf.abs(boxes), axis=1), tf.bool)
    return tf.boolean_mask(boxes, non_zeros), non_zeros


def box_refinement_graph(box, gt_box):
    """Deltas [N, (dy, dx, log(dh), log(dw))] that turn box into gt_box."""
    height = box[:, 2] - box[:, 0]
    width = box[:, 3] - box[:, 1]
    center_y = box[:, 0] + 0.5 * height
    center_x = box[:, 1] + 0.5 * width
    gt_height = gt_box[:, 2] - gt_box[:, 0]
    gt_width = gt_box[:, 3] - gt_box[:, 1]
    gt_center_y = gt_box[:, 0] + 0.5 * gt_height
    gt_center_x = gt_box[:, 1] + 0.5 * gt_width
    return tf.stack([(gt_center_y - center_y) / height, (gt_center_x - center_x) / width,
                     tf.math.log(gt_height / height), tf.math.log(gt_width / width)], axis=1)


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
class DetectionTargetLayer(KL.Layer):
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
        rois, class_ids, deltas, masks = tf.map_fn(
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
