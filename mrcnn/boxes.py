"""Bounding-box helpers (NumPy).

Boxes are ``[N, (y1, x1, y2, x2)]``; in pixel coordinates (y2, x2) lie just outside
the box. Normalised boxes divide by (height - 1, width - 1) after shifting the far
corner in by one pixel (see ``norm_boxes``).

Box deltas are ``[N, (dy, dx, log(dh), log(dw))]``: the centre shift in units of the
box's height and width, and the log of the scale change. ``box_refinement`` computes
them and ``apply_box_deltas`` applies them; ``graph_ops`` holds the TensorFlow twins of
both (and of ``compute_overlaps``), with the same rules, checked against these in
tests/test_twins.py.
"""
import numpy as np

# The largest log-scale delta applied (dh, dw up to 1000 / 16, as torchvision caps it):
# an untrained head can predict exp(d) = inf. One constant for both backends.
MAX_LOG_SCALE = float(np.log(1000.0 / 16))


def extract_bboxes(mask):
    """Tight boxes around instance masks.

    mask: [height, width, num_instances], any dtype; non-zero pixels belong to the instance.
    Returns: int32 [num_instances, (y1, x1, y2, x2)], y2/x2 exclusive. An empty mask
    gives the box (0, 0, 0, 0).
    """
    mask = np.asarray(mask)
    boxes = np.zeros([mask.shape[-1], 4], dtype=np.int32)
    for i in range(mask.shape[-1]):
        m = mask[:, :, i]
        cols = np.where(np.any(m, axis=0))[0]
        rows = np.where(np.any(m, axis=1))[0]
        if cols.shape[0]:
            x1, x2 = cols[[0, -1]]
            y1, y2 = rows[[0, -1]]
            boxes[i] = np.array([y1, x1, y2 + 1, x2 + 1])
    return boxes


def compute_iou(box, boxes, box_area, boxes_area):
    """IoU of one box against many.

    box: [(y1, x1, y2, x2)]; boxes: [N, (y1, x1, y2, x2)].
    box_area: float, the area of ``box``; boxes_area: [N] areas of ``boxes``
    (passed in so that callers computing many IoUs compute areas once).
    Returns: [N] IoU values.
    """
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + boxes_area[:] - intersection[:]
    return intersection / union


def compute_overlaps(boxes1, boxes2):
    """IoU overlaps between two sets of boxes.

    boxes1: [N1, (y1, x1, y2, x2)]; boxes2: [N2, (y1, x1, y2, x2)].
    Returns: [N1, N2] IoU matrix.
    """
    boxes1 = np.asarray(boxes1)
    boxes2 = np.asarray(boxes2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    overlaps = np.zeros((boxes1.shape[0], boxes2.shape[0]))
    for i in range(overlaps.shape[1]):
        overlaps[:, i] = compute_iou(boxes2[i], boxes1, area2[i], area1)
    return overlaps


def non_max_suppression(boxes, scores, threshold):
    """Greedy non-maximum suppression.

    boxes: [N, (y1, x1, y2, x2)]; scores: [N]; threshold: boxes whose IoU with a kept,
    higher-scoring box is above this are dropped.
    Returns: int32 indices of the kept boxes, highest score first.
    """
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    if boxes.shape[0] == 0:
        return np.zeros([0], dtype=np.int32)
    if boxes.dtype.kind != "f":
        boxes = boxes.astype(np.float32)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = scores.argsort()[::-1]
    keep = []
    while len(order) > 0:
        i = order[0]
        keep.append(i)
        iou = compute_iou(boxes[i], boxes[order[1:]], area[i], area[order[1:]])
        suppressed = np.where(iou > threshold)[0] + 1
        order = np.delete(order, suppressed)
        order = np.delete(order, 0)
    return np.array(keep, dtype=np.int32)


def apply_box_deltas(boxes, deltas):
    """Apply refinements to boxes.

    boxes: [N, (y1, x1, y2, x2)]; deltas: [N, (dy, dx, log(dh), log(dw))].
    Returns: [N, (y1, x1, y2, x2)] float.

    Unlike the classic code (and as ``graph_ops.apply_box_deltas_graph`` does), non-finite
    deltas count as 0 and log(dh), log(dw) are capped at MAX_LOG_SCALE.
    """
    boxes = np.asarray(boxes).astype(np.float32)
    deltas = np.asarray(deltas)
    deltas = np.where(np.isfinite(deltas), deltas, 0)
    deltas = np.concatenate([deltas[:, :2], np.minimum(deltas[:, 2:], MAX_LOG_SCALE)], axis=1)
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height
    center_x = boxes[:, 1] + 0.5 * width
    center_y += deltas[:, 0] * height
    center_x += deltas[:, 1] * width
    height *= np.exp(deltas[:, 2])
    width *= np.exp(deltas[:, 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=1)


def box_refinement(box, gt_box, dtype=np.float32):
    """The deltas that turn ``box`` into ``gt_box``.

    box, gt_box: [N, (y1, x1, y2, x2)], y2/x2 outside the box.
    dtype: the precision of the computation (float32 as in the classic code; the RPN
        targets use float64).
    Returns: [N, (dy, dx, log(dh), log(dw))] of ``dtype``.
    """
    box = np.asarray(box).astype(dtype)
    gt_box = np.asarray(gt_box).astype(dtype)
    height = box[:, 2] - box[:, 0]
    width = box[:, 3] - box[:, 1]
    center_y = box[:, 0] + 0.5 * height
    center_x = box[:, 1] + 0.5 * width
    gt_height = gt_box[:, 2] - gt_box[:, 0]
    gt_width = gt_box[:, 3] - gt_box[:, 1]
    gt_center_y = gt_box[:, 0] + 0.5 * gt_height
    gt_center_x = gt_box[:, 1] + 0.5 * gt_width
    dy = (gt_center_y - center_y) / height
    dx = (gt_center_x - center_x) / width
    dh = np.log(gt_height / height)
    dw = np.log(gt_width / width)
    return np.stack([dy, dx, dh, dw], axis=1)


def trim_zeros(x):
    """Drop all-zero rows (the padding of fixed-size arrays).

    x: [rows, columns]. Returns the rows that are not all zero.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError("trim_zeros expects a 2-D array [rows, columns], got shape {}"
                         .format(x.shape))
    return x[~np.all(x == 0, axis=1)]


def _norm_terms(shape, mode):
    h, w = shape[:2]
    if mode == "scale":
        return np.array([h, w, h, w]), np.array([0, 0, 0, 0])
    if mode != "classic":
        raise ValueError("box normalisation {!r}: use 'classic' or 'scale' "
                         "(Config.BOX_NORMALIZATION)".format(mode))
    return np.array([h - 1, w - 1, h - 1, w - 1]), np.array([0, 0, 1, 1])


def norm_boxes(boxes, shape, mode="classic"):
    """Pixel boxes to normalised coordinates.

    boxes: [N, (y1, x1, y2, x2)] in pixels; shape: (height, width) of the image.
    mode: Config.BOX_NORMALIZATION. "classic": (0, 0, 1, 1) spans the image: the far
    corner (outside the box in pixels) becomes inside after the one-pixel shift,
    divided by (size - 1). "scale": divided by the size (torchvision's arithmetic).
    Returns: float32 [N, (y1, x1, y2, x2)].
    """
    scale, shift = _norm_terms(shape, mode)
    return np.divide((np.asarray(boxes) - shift), scale).astype(np.float32)


def denorm_boxes(boxes, shape, mode="classic"):
    """Normalised boxes back to int32 pixel boxes; the inverse of ``norm_boxes``.

    boxes: [N, (y1, x1, y2, x2)] normalised; shape: (height, width).
    """
    scale, shift = _norm_terms(shape, mode)
    return np.around(np.multiply(np.asarray(boxes), scale) + shift).astype(np.int32)
