"""RPN training targets and random ROIs (NumPy, computed in the input pipeline).

An anchor is positive when its IoU with a ground-truth box is >= 0.7 or it is the best
anchor of some ground-truth box; negative when its best IoU is < 0.3 and it does not
touch a crowd region; at most half of RPN_TRAIN_ANCHORS_PER_IMAGE are positive and the
rest of that many are negative; the others are neutral (0). The detection-head targets
are made inside the network: ``detection_targets.DetectionTargetLayer``.
"""
import numpy as np

from .boxes import box_refinement, compute_overlaps


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
        deltas = box_refinement(anchors[ids], gt_boxes[anchor_iou_argmax[ids]],
                                dtype=np.float64)
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
