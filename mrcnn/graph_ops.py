"""TensorFlow versions of the box and meta helpers, used inside the network.

Boxes are normalised ``[..., (y1, x1, y2, x2)]`` unless a docstring says otherwise.
"""
import numpy as np
import tensorflow as tf


MAX_LOG_SCALE = float(np.log(1000.0 / 16))


def apply_box_deltas_graph(boxes, deltas):
    """Apply refinements to boxes.

    boxes: [N, (y1, x1, y2, x2)]; deltas: [N, (dy, dx, log(dh), log(dw))].
    Returns: [N, (y1, x1, y2, x2)].

    Unlike the classic code, non-finite deltas count as 0 and the log-scale ones are
    capped at log(1000 / 16) (as torchvision does): an untrained head can predict
    exp(d) = inf, and an inf or NaN box reaching crop_and_resize's gradient makes it
    write outside its buffer (memory corruption, then a crash far away).
    """
    deltas = tf.where(tf.math.is_finite(deltas), deltas, tf.zeros_like(deltas))
    deltas = tf.concat([deltas[:, :2], tf.minimum(deltas[:, 2:], MAX_LOG_SCALE)], axis=1)
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height
    center_x = boxes[:, 1] + 0.5 * width
    center_y += deltas[:, 0] * height
    center_x += deltas[:, 1] * width
    height *= tf.exp(deltas[:, 2])
    width *= tf.exp(deltas[:, 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=1)


def clip_boxes_graph(boxes, window):
    """Clip boxes to a window.

    boxes: [N, (y1, x1, y2, x2)]; window: [4] (y1, x1, y2, x2).
    """
    wy1, wx1, wy2, wx2 = tf.split(window, 4)
    y1, x1, y2, x2 = tf.split(boxes, 4, axis=1)
    y1 = tf.maximum(tf.minimum(y1, wy2), wy1)
    x1 = tf.maximum(tf.minimum(x1, wx2), wx1)
    y2 = tf.maximum(tf.minimum(y2, wy2), wy1)
    x2 = tf.maximum(tf.minimum(x2, wx2), wx1)
    clipped = tf.concat([y1, x1, y2, x2], axis=1)
    clipped.set_shape((clipped.shape[0], 4))
    return clipped


def norm_boxes_graph(boxes, shape):
    """Pixel boxes [..., (y1, x1, y2, x2)] to normalised ones; shape: [(height, width)]."""
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    scale = tf.concat([h, w, h, w], axis=-1) - tf.constant(1.0)
    shift = tf.constant([0., 0., 1., 1.])
    return tf.divide(boxes - shift, scale)


def denorm_boxes_graph(boxes, shape):
    """Normalised boxes back to int32 pixel boxes; shape: [(height, width)]."""
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    scale = tf.concat([h, w, h, w], axis=-1) - tf.constant(1.0)
    shift = tf.constant([0., 0., 1., 1.])
    return tf.cast(tf.round(tf.multiply(boxes, scale) + shift), tf.int32)


def parse_image_meta_graph(meta):
    """Unpack image meta tensors [batch, meta length] into a dict of tensors."""
    return {
        "image_id": meta[:, 0],
        "original_image_shape": meta[:, 1:4],
        "image_shape": meta[:, 4:7],
        "window": meta[:, 7:11],
        "scale": meta[:, 11],
        "active_class_ids": meta[:, 12:],
    }
