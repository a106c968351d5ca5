"""Per-image AP metrics with the classic Matterport semantics.

These are kept exactly as the classic library computed them, so numbers compare across
projects. How they differ from COCO AP (``mrcnn.evaluate``):

- one image at a time, all classes pooled into one ranking (COCO: per class, over the
  whole dataset, then averaged over classes);
- mask IoU only (COCO also has bbox AP);
- precision is interpolated at every recall change (COCO samples 101 recall points);
- no crowd handling, no area ranges, no cap on detections per image.
An image without ground truth gives NaN (AP is undefined there); an image with ground
truth but no prediction gives 0.
"""
import numpy as np

from .boxes import compute_overlaps, trim_zeros
from .masks import compute_overlaps_masks

# compute_ap_range's default thresholds: 0.5:0.95:0.05
RANGE_THRESHOLDS = np.arange(0.5, 1.0, 0.05)


def _prepare(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores,
             pred_masks):
    """Padding dropped, predictions in descending score order, and their mask IoUs
    with the ground truth: (gt_class_ids, pred_class_ids, overlaps [M, N])."""
    gt_boxes = trim_zeros(np.asarray(gt_boxes).reshape(-1, 4))
    gt_masks = np.asarray(gt_masks)[..., :gt_boxes.shape[0]]
    gt_class_ids = np.asarray(gt_class_ids)
    pred_boxes = trim_zeros(np.asarray(pred_boxes).reshape(-1, 4))
    pred_scores = np.asarray(pred_scores)[:pred_boxes.shape[0]]
    pred_class_ids = np.asarray(pred_class_ids)
    pred_masks = np.asarray(pred_masks)

    indices = np.argsort(pred_scores)[::-1]
    pred_class_ids = pred_class_ids[indices]
    # the IoUs of the masks as they come, rows put in score order after: reordering the
    # last axis of [H, W, N] masks copied every pixel (0.03 s per COCO image, five
    # times the IoUs' own time); the IoUs are whole pixel counts, so this is exact
    overlaps = compute_overlaps_masks(pred_masks[..., :len(pred_class_ids)], gt_masks)
    return gt_class_ids, pred_class_ids, overlaps[indices]


def _match(gt_class_ids, pred_class_ids, overlaps, iou_threshold, score_threshold=0.0):
    """The classic greedy matching on precomputed overlaps (see compute_matches)."""
    pred_match = -1 * np.ones([overlaps.shape[0]])
    gt_match = -1 * np.ones([overlaps.shape[1]])
    for i in range(len(pred_match)):
        sorted_ixs = np.argsort(overlaps[i])[::-1]
        low_score_idx = np.where(overlaps[i, sorted_ixs] < score_threshold)[0]
        if low_score_idx.size > 0:
            sorted_ixs = sorted_ixs[:low_score_idx[0]]
        for j in sorted_ixs:
            if gt_match[j] > -1:
                continue
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match


def _average_precision(gt_match, pred_match):
    """(mAP, precisions, recalls) of one matching, classic interpolation."""
    hits = np.cumsum(pred_match > -1)
    precisions = hits / (np.arange(len(pred_match)) + 1)
    if len(gt_match) == 0:
        recalls = np.full(len(pred_match), np.nan, dtype=np.float32)
    else:
        recalls = hits.astype(np.float32) / len(gt_match)

    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    # Precision at each recall is the best precision at any higher recall.
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = np.maximum(precisions[i], precisions[i + 1])
    if len(gt_match) == 0:
        return float("nan"), precisions, recalls

    indices = np.where(recalls[:-1] != recalls[1:])[0] + 1
    mAP = np.sum((recalls[indices] - recalls[indices - 1]) * precisions[indices])
    return mAP, precisions, recalls


def compute_matches(gt_boxes, gt_class_ids, gt_masks,
                    pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):
    """Match predictions to ground truth by mask IoU.

    gt_boxes: [N, (y1, x1, y2, x2)]; zero rows are padding and are dropped.
    gt_class_ids: [N]; gt_masks: [height, width, N].
    pred_boxes: [M, (y1, x1, y2, x2)]; pred_class_ids: [M]; pred_scores: [M];
    pred_masks: [height, width, M].

    Predictions are taken in descending score order. Each walks the ground truth in
    descending IoU, skips ground truth already matched, stops at the first IoU below
    ``iou_threshold`` and matches the first ground truth of its class.

    Returns:
        gt_match: [N] index of the matched prediction (in score order), -1 if none.
        pred_match: [M] index of the matched ground truth, -1 if none (score order).
        overlaps: [M, N] mask IoUs, predictions in score order.
    """
    gt_class_ids, pred_class_ids, overlaps = _prepare(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks)
    gt_match, pred_match = _match(gt_class_ids, pred_class_ids, overlaps, iou_threshold,
                                  score_threshold)
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes, gt_class_ids, gt_masks,
               pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):
    """Average precision of one image at one mask-IoU threshold (classic semantics).

    Arguments as in ``compute_matches``.
    Returns:
        mAP: float; NaN when the image has no ground truth, 0 when it has no prediction.
        precisions: [M + 2] interpolated precision (padded with 0 at both ends).
        recalls: [M + 2] recall (padded with 0 in front and 1 at the end).
        overlaps: [M, N] mask IoUs, predictions in score order.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks,
        pred_boxes, pred_class_ids, pred_scores, pred_masks,
        iou_threshold)
    mAP, precisions, recalls = _average_precision(gt_match, pred_match)
    return mAP, precisions, recalls, overlaps


def compute_ap_thresholds(gt_boxes, gt_class_ids, gt_masks,
                          pred_boxes, pred_class_ids, pred_scores, pred_masks,
                          iou_thresholds):
    """``compute_ap`` of one image at each IoU threshold, as a list of floats.

    The mask IoUs are computed once for all thresholds (they are most of the cost:
    a 640x480 image with 100 detections spends about 20 ms on them per call).
    """
    gt_class_ids, pred_class_ids, overlaps = _prepare(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks)
    return [_average_precision(*_match(gt_class_ids, pred_class_ids, overlaps, t))[0]
            for t in iou_thresholds]


def compute_ap_range(gt_box, gt_class_id, gt_mask,
                     pred_box, pred_class_id, pred_score, pred_mask,
                     iou_thresholds=None, verbose=1):
    """Mean of ``compute_ap`` over IoU thresholds, by default 0.5:0.95:0.05.

    iou_thresholds: a list, tuple or NumPy array of thresholds, or None.
    Returns: float, the mean AP (NaN when the image has no ground truth).
    """
    if iou_thresholds is None:
        iou_thresholds = RANGE_THRESHOLDS
    iou_thresholds = np.atleast_1d(np.asarray(iou_thresholds, dtype=np.float64))
    if iou_thresholds.size == 0:
        raise ValueError("compute_ap_range: iou_thresholds is empty")

    AP = compute_ap_thresholds(gt_box, gt_class_id, gt_mask,
                               pred_box, pred_class_id, pred_score, pred_mask, iou_thresholds)
    if verbose:
        for iou_threshold, ap in zip(iou_thresholds, AP):
            print("AP @{:.2f}:\t {:.3f}".format(iou_threshold, ap))
    AP = np.array(AP).mean()
    if verbose:
        print("AP @{:.2f}-{:.2f}:\t {:.3f}".format(
            iou_thresholds[0], iou_thresholds[-1], AP))
    return AP


def compute_recall(pred_boxes, gt_boxes, iou):
    """Box recall at an IoU threshold.

    pred_boxes: [M, (y1, x1, y2, x2)]; gt_boxes: [N, (y1, x1, y2, x2)]; iou: threshold.
    Returns: (recall, positive_ids) where recall is the fraction of ground-truth boxes
    that some prediction overlaps with IoU >= iou, and positive_ids the indices of
    predictions that reach the threshold.
    """
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    if overlaps.size == 0:
        gt_n = np.asarray(gt_boxes).reshape(-1, 4).shape[0]
        return (float("nan") if gt_n == 0 else 0.0), np.zeros([0], dtype=np.int64)
    iou_max = np.max(overlaps, axis=1)
    iou_argmax = np.argmax(overlaps, axis=1)
    positive_ids = np.where(iou_max >= iou)[0]
    matched_gt_boxes = iou_argmax[positive_ids]
    recall = len(set(matched_gt_boxes)) / overlaps.shape[1]
    return recall, positive_ids
