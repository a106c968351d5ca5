"""The five Mask R-CNN losses (graph functions on batched tensors).

Each returns a scalar; a loss with nothing to average (e.g. no positive ROI in the
batch) is 0, never NaN.
"""
import numpy as np
import tensorflow as tf


def smooth_l1_loss(y_true, y_pred, beta=1.0):
    """Smooth-L1, element-wise: 0.5 * d**2 / beta below beta, d - 0.5 * beta above.

    beta=1 is the classic loss (Huber with delta 1); torchvision's Faster/Mask R-CNN
    use 1/9, which keeps the L1 pull on errors down to a ninth of a std. Shapes must match.
    """
    diff = tf.abs(y_true - y_pred)
    small = tf.cast(tf.less(diff, beta), tf.float32)
    return small * 0.5 * diff ** 2 / beta + (1 - small) * (diff - 0.5 * beta)


def _mean_or_zero(x):
    return tf.cond(tf.size(x) > 0, lambda: tf.reduce_mean(x), lambda: tf.constant(0.0))


def rpn_class_loss_graph(rpn_match, rpn_class_logits):
    """RPN anchor classifier loss: cross-entropy over positive and negative anchors.

    rpn_match: [batch, anchors, 1] 1 / -1 / 0 (neutral anchors are ignored).
    rpn_class_logits: [batch, anchors, 2] background/foreground logits.
    """
    rpn_match = tf.squeeze(rpn_match, -1)
    anchor_class = tf.cast(tf.equal(rpn_match, 1), tf.int32)
    indices = tf.where(tf.not_equal(rpn_match, 0))
    logits = tf.gather_nd(rpn_class_logits, indices)
    anchor_class = tf.gather_nd(anchor_class, indices)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=anchor_class, logits=logits)
    return _mean_or_zero(loss)


def rpn_bbox_loss_graph(target_bbox, rpn_match, rpn_bbox, beta=1.0):
    """RPN box regression loss (smooth-L1) over positive anchors.

    target_bbox: [batch, RPN_TRAIN_ANCHORS_PER_IMAGE, 4], each image's positive anchors'
        deltas first, zero-padded. rpn_match: [batch, anchors, 1].
    rpn_bbox: [batch, anchors, (dy, dx, log(dh), log(dw))].
    """
    rpn_match = tf.squeeze(rpn_match, -1)
    indices = tf.where(tf.equal(rpn_match, 1))
    rpn_bbox = tf.gather_nd(rpn_bbox, indices)
    # The targets of image i are its first count_i rows: same order as `indices`.
    counts = tf.reduce_sum(tf.cast(tf.equal(rpn_match, 1), tf.int32), axis=1)
    valid = tf.sequence_mask(counts, maxlen=tf.shape(target_bbox)[1])
    target_bbox = tf.boolean_mask(target_bbox, valid)
    return _mean_or_zero(smooth_l1_loss(target_bbox, rpn_bbox, beta))


def mrcnn_class_loss_graph(target_class_ids, pred_class_logits, active_class_ids):
    """Classifier loss: cross-entropy, ignoring predictions of classes that are not in
    the image's source dataset (active_class_ids).

    target_class_ids: [batch, num_rois] (0 for background and padding).
    pred_class_logits: [batch, num_rois, num_classes]; active_class_ids: [batch, num_classes].
    """
    target_class_ids = tf.cast(target_class_ids, tf.int64)
    pred_class_ids = tf.argmax(pred_class_logits, axis=2)
    pred_active = tf.gather(tf.cast(active_class_ids[0], tf.float32), pred_class_ids)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_class_ids,
                                                          logits=pred_class_logits)
    loss = loss * pred_active
    return tf.reduce_sum(loss) / tf.maximum(tf.reduce_sum(pred_active), 1.0)


def mrcnn_bbox_loss_graph(target_bbox, target_class_ids, pred_bbox, beta=1.0):
    """Box refinement loss (smooth-L1) of positive ROIs, on their class's deltas.

    target_bbox: [batch, num_rois, 4]; target_class_ids: [batch, num_rois];
    pred_bbox: [batch, num_rois, num_classes, 4].
    """
    target_class_ids = tf.reshape(target_class_ids, (-1,))
    target_bbox = tf.reshape(target_bbox, (-1, 4))
    pred_bbox = tf.reshape(pred_bbox, (-1, tf.shape(pred_bbox)[2], 4))
    positive_roi_ix = tf.where(target_class_ids > 0)[:, 0]
    positive_roi_class_ids = tf.cast(tf.gather(target_class_ids, positive_roi_ix), tf.int64)
    indices = tf.stack([positive_roi_ix, positive_roi_class_ids], axis=1)
    target_bbox = tf.gather(target_bbox, positive_roi_ix)
    pred_bbox = tf.gather_nd(pred_bbox, indices)
    return _mean_or_zero(smooth_l1_loss(target_bbox, pred_bbox, beta))


def mrcnn_mask_loss_graph(target_masks, target_class_ids, pred_masks):
    """Mask loss: binary cross-entropy of positive ROIs, on their class's mask.

    target_masks: [batch, num_rois, height, width] 0/1.
    target_class_ids: [batch, num_rois]; pred_masks: [batch, num_rois, h, w, num_classes].
    """
    target_class_ids = tf.reshape(target_class_ids, (-1,))
    mask_shape = tf.shape(target_masks)
    target_masks = tf.reshape(target_masks, (-1, mask_shape[2], mask_shape[3]))
    pred_shape = tf.shape(pred_masks)
    pred_masks = tf.reshape(pred_masks, (-1, pred_shape[2], pred_shape[3], pred_shape[4]))
    pred_masks = tf.transpose(pred_masks, [0, 3, 1, 2])
    positive_ix = tf.where(target_class_ids > 0)[:, 0]
    positive_class_ids = tf.cast(tf.gather(target_class_ids, positive_ix), tf.int64)
    indices = tf.stack([positive_ix, positive_class_ids], axis=1)
    y_true = tf.gather(target_masks, positive_ix)
    y_pred = tf.gather_nd(pred_masks, indices)
    eps = 1e-7
    y_pred = tf.clip_by_value(y_pred, eps, 1 - eps)
    bce = -(y_true * tf.math.log(y_pred) + (1 - y_true) * tf.math.log(1 - y_pred))
    return _mean_or_zero(bce)


def l2_weight_decay(variables, weight_decay):
    """Size-normalised L2 regularisation: sum over weights of
    weight_decay * sum(w ** 2) / size(w), skipping BN gamma and beta.

    One l2_loss op (sum(w ** 2) / 2) and one multiply by a constant per weight: the
    sizes are static, and the two ops (with their gradients) are a third of what
    square, sum, size, cast and divide built, which every train() call traces."""
    terms = [tf.nn.l2_loss(v) * (2.0 * weight_decay / max(1, int(np.prod(v.shape))))
             for v in variables
             if "gamma" not in v.name and "beta" not in v.name]
    return tf.add_n(terms) if terms else tf.constant(0.0)
