"""TensorFlow versions of the box and meta helpers, used inside the network.

Boxes are normalised ``[..., (y1, x1, y2, x2)]`` unless a docstring says otherwise.
Each helper with a NumPy twin follows the twin's rules (tests/test_twins.py):

    apply_box_deltas_graph  boxes.apply_box_deltas     (same MAX_LOG_SCALE cap)
    box_refinement_graph    boxes.box_refinement
    overlaps_graph          boxes.compute_overlaps
    trim_zeros_graph        boxes.trim_zeros
    norm_boxes_graph        boxes.norm_boxes           denorm_boxes_graph  boxes.denorm_boxes
    parse_image_meta_graph  molding.parse_image_meta   (molding.IMAGE_META_LAYOUT)
"""
import tensorflow as tf

from .boxes import MAX_LOG_SCALE
from .molding import IMAGE_META_LAYOUT


def apply_box_deltas_graph(boxes, deltas):
    """Apply refinements to boxes.

    boxes: [N, (y1, x1, y2, x2)]; deltas: [N, (dy, dx, log(dh), log(dw))].
    Returns: [N, (y1, x1, y2, x2)].

    Unlike the classic code, non-finite deltas count as 0 and the log-scale ones are
    capped at MAX_LOG_SCALE = log(1000 / 16) (as torchvision does): an untrained head can predict
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


def norm_boxes_graph(boxes, shape, mode="classic"):
    """Pixel boxes [..., (y1, x1, y2, x2)] to normalised ones; shape: [(height, width)];
    mode: Config.BOX_NORMALIZATION ("classic" or "scale", see boxes.norm_boxes)."""
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    if mode == "scale":
        return tf.divide(boxes, tf.concat([h, w, h, w], axis=-1))
    scale = tf.concat([h, w, h, w], axis=-1) - tf.constant(1.0)
    shift = tf.constant([0., 0., 1., 1.])
    return tf.divide(boxes - shift, scale)


def denorm_boxes_graph(boxes, shape):
    """Normalised boxes back to int32 pixel boxes; shape: [(height, width)]."""
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    scale = tf.concat([h, w, h, w], axis=-1) - tf.constant(1.0)
    shift = tf.constant([0., 0., 1., 1.])
    return tf.cast(tf.round(tf.multiply(boxes, scale) + shift), tf.int32)


def box_refinement_graph(box, gt_box):
    """Deltas [N, (dy, dx, log(dh), log(dw))] that turn box into gt_box.

    box, gt_box: [N, (y1, x1, y2, x2)] float32.
    """
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


def overlaps_graph(boxes1, boxes2):
    """IoU matrix [N1, N2] of two sets of [N, (y1, x1, y2, x2)] boxes.

    A pair whose union is empty (two empty boxes) has IoU 0.
    """
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


def parse_image_meta_graph(meta):
    """Unpack image meta tensors [batch, meta length] into a dict of tensors (the fields
    of molding.IMAGE_META_LAYOUT)."""
    return {name: meta[:, where] for name, where in IMAGE_META_LAYOUT.items()}


# The largest batch whose per-image graph for_each_image writes out image by image (as
# the classic utils.batch_slice did); larger batches, and batches of a size unknown when
# the graph is traced (detect()'s graph, which serves any number of images, and an
# exported model's), run in a tf.map_fn loop. Written out, a batch of 1 or 2 traces
# faster (no while loop to build, nor its gradient); from 4 images on, the copies cost
# more than the loop (bench/RESULTS.md#per-image-graphs).
UNROLL_MAX_IMAGES = 2


def for_each_image(fn, elems, fn_output_signature):
    """``fn`` on each image of a batch, the results stacked: tf.map_fn's contract (elems a
    tuple of tensors sharing their first dimension; fn_output_signature a TensorSpec or a
    nest of them) with the same numbers either way."""
    batch = elems[0].shape[0]
    if batch is None or not 0 < batch <= UNROLL_MAX_IMAGES:
        return tf.map_fn(fn, elems, fn_output_signature=fn_output_signature)
    specs = tf.nest.flatten(fn_output_signature)
    per_image = []
    for i in range(batch):
        outputs = tf.nest.flatten(fn(tuple(e[i] for e in elems)))
        for output, spec in zip(outputs, specs):
            output.set_shape(spec.shape)
        per_image.append(outputs)
    stacked = [tf.stack(parts) for parts in zip(*per_image)]
    return tf.nest.pack_sequence_as(fn_output_signature, stacked)
