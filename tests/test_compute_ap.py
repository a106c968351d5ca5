"""compute_ap and friends on hand-worked cases (classic Matterport semantics)."""
import math

import numpy as np

from mrcnn import utils

H, W = 20, 20


def masks_from_boxes(boxes):
    m = np.zeros((H, W, len(boxes)), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        m[y1:y2, x1:x2, i] = True
    return m


def gt_and_pred(gt_boxes, gt_ids, pred_boxes, pred_ids, scores):
    gt_boxes = np.array(gt_boxes, dtype=np.int32).reshape(-1, 4)
    pred_boxes = np.array(pred_boxes, dtype=np.int32).reshape(-1, 4)
    return (gt_boxes, np.array(gt_ids, dtype=np.int32), masks_from_boxes(gt_boxes),
            pred_boxes, np.array(pred_ids, dtype=np.int32), np.array(scores, dtype=np.float32),
            masks_from_boxes(pred_boxes))


def test_perfect_match_gives_ap_one():
    args = gt_and_pred([[0, 0, 5, 5], [10, 10, 15, 18]], [1, 2],
                       [[10, 10, 15, 18], [0, 0, 5, 5]], [2, 1], [0.8, 0.9])
    ap, precisions, recalls, overlaps = utils.compute_ap(*args)
    assert ap == 1.0
    assert precisions.tolist() == [1, 1, 1, 0]
    np.testing.assert_array_equal(recalls, [0, 0.5, 1, 1])
    # overlaps are [pred in score order, gt]
    np.testing.assert_array_equal(overlaps, [[1, 0], [0, 1]])


def test_false_positive_ranked_first_halves_ap():
    args = gt_and_pred([[0, 0, 5, 5]], [1],
                       [[12, 12, 18, 18], [0, 0, 5, 5]], [1, 1], [0.9, 0.8])
    ap, precisions, recalls, _ = utils.compute_ap(*args)
    # precision 0/1 then 1/2; made non-increasing from the right: [.5, .5, .5, 0]
    assert ap == 0.5
    assert precisions.tolist() == [0.5, 0.5, 0.5, 0.0]
    assert recalls.tolist() == [0, 0, 1, 1]


def test_false_positive_ranked_last_keeps_ap_one():
    args = gt_and_pred([[0, 0, 5, 5]], [1],
                       [[12, 12, 18, 18], [0, 0, 5, 5]], [1, 1], [0.1, 0.8])
    assert utils.compute_ap(*args)[0] == 1.0


def test_class_mismatch_is_not_a_match():
    args = gt_and_pred([[0, 0, 5, 5]], [1], [[0, 0, 5, 5]], [2], [0.9])
    assert utils.compute_ap(*args)[0] == 0.0


def test_prediction_skips_other_class_and_matches_next_gt_above_threshold():
    # GT0 (class 1) equals the prediction; GT1 (class 2) overlaps it with IoU 0.6.
    gt_boxes = [[0, 0, 10, 10], [0, 0, 10, 6]]
    args = gt_and_pred(gt_boxes, [1, 2], [[0, 0, 10, 10]], [2], [0.9])
    gt_match, pred_match, overlaps = utils.compute_matches(*args)
    np.testing.assert_allclose(overlaps, [[1.0, 0.6]], rtol=1e-6)
    assert pred_match.tolist() == [1] and gt_match.tolist() == [-1, 0]
    assert utils.compute_ap(*args)[0] == 0.5  # recall 1/2 at precision 1


def test_empty_prediction_set_gives_zero():
    args = gt_and_pred([[0, 0, 5, 5]], [1], np.zeros((0, 4)), [], [])
    ap, precisions, recalls, overlaps = utils.compute_ap(*args)
    assert ap == 0.0
    assert overlaps.shape == (0, 1)


def test_image_without_ground_truth_gives_nan():
    args = gt_and_pred(np.zeros((0, 4)), [], [[0, 0, 5, 5]], [1], [0.9])
    assert math.isnan(utils.compute_ap(*args)[0])
    args = gt_and_pred(np.zeros((0, 4)), [], np.zeros((0, 4)), [], [])
    assert math.isnan(utils.compute_ap(*args)[0])


def test_zero_padded_rows_are_trimmed():
    plain = gt_and_pred([[0, 0, 5, 5]], [1], [[12, 12, 18, 18], [0, 0, 5, 5]], [1, 1], [0.9, 0.8])
    gt_boxes = np.vstack([plain[0], np.zeros((2, 4), np.int32)])
    gt_ids = np.concatenate([plain[1], [0, 0]])
    gt_masks = np.concatenate([plain[2], np.zeros((H, W, 2), bool)], axis=-1)
    pred_boxes = np.vstack([plain[3], np.zeros((3, 4), np.int32)])
    pred_ids = np.concatenate([plain[4], [0, 0, 0]])
    scores = np.concatenate([plain[5], [0, 0, 0]])
    pred_masks = np.concatenate([plain[6], np.zeros((H, W, 3), bool)], axis=-1)
    ap, precisions, _, overlaps = utils.compute_ap(gt_boxes, gt_ids, gt_masks, pred_boxes,
                                                   pred_ids, scores, pred_masks)
    assert ap == utils.compute_ap(*plain)[0] == 0.5
    assert overlaps.shape == (2, 1)


def test_mask_iou_in_float32_makes_0_7_a_miss_at_threshold_0_7():
    # prediction covers 7 of the 10 GT pixels: IoU 7/10, which float32 rounds below 0.7
    gt_masks = np.zeros((H, W, 1), bool)
    gt_masks[0, 0:10, 0] = True
    pred_masks = np.zeros((H, W, 1), bool)
    pred_masks[0, 0:7, 0] = True
    args = (np.array([[0, 0, 1, 10]]), np.array([1]), gt_masks,
            np.array([[0, 0, 1, 7]]), np.array([1]), np.array([0.9]), pred_masks)
    assert utils.compute_ap(*args, iou_threshold=0.7)[0] == 0.0
    assert utils.compute_ap(*args, iou_threshold=0.69)[0] == 1.0


def test_compute_ap_range_accepts_lists_and_numpy_arrays():
    # IoU 0.6: a hit at 0.5, a miss at 0.75
    args = gt_and_pred([[0, 0, 10, 10]], [1], [[0, 0, 10, 6]], [1], [0.9])
    assert utils.compute_ap_range(*args, iou_thresholds=[0.5, 0.75], verbose=0) == 0.5
    assert utils.compute_ap_range(*args, iou_thresholds=np.array([0.5, 0.75]), verbose=0) == 0.5
    # default 0.5:0.95:0.05 -> hits at 0.50, 0.55 and 0.60: the float32 IoU 0.6 is
    # 0.60000002, above np.arange's 0.6000000000000001
    assert np.float32(60) / np.float32(100) > np.arange(0.5, 1.0, 0.05)[2]
    assert utils.compute_ap_range(*args, verbose=0) == 3 / 10


def test_compute_ap_range_prints_classic_lines(capsys):
    args = gt_and_pred([[0, 0, 10, 10]], [1], [[0, 0, 10, 10]], [1], [0.9])
    utils.compute_ap_range(*args, iou_thresholds=[0.5], verbose=1)
    out = capsys.readouterr().out
    assert "AP @0.50:\t 1.000" in out and "AP @0.50-0.50:\t 1.000" in out


def test_compute_recall():
    pred = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [50, 50, 60, 60]])
    recall, positive_ids = utils.compute_recall(pred, gt, 0.5)
    assert recall == 1 / 3
    assert positive_ids.tolist() == [0]


def test_ap_at_many_thresholds_equals_one_compute_ap_per_threshold():
    # random overlapping boxes: the matching differs from one threshold to the next
    rng = np.random.RandomState(5)
    for _ in range(20):
        def boxes(n):
            y1, x1 = rng.randint(0, 12, n), rng.randint(0, 12, n)
            return np.stack([y1, x1, y1 + rng.randint(3, 8, n), x1 + rng.randint(3, 8, n)], 1)
        gt, pred = boxes(rng.randint(1, 5)), boxes(rng.randint(0, 7))
        args = gt_and_pred(gt, rng.randint(1, 3, len(gt)), pred, rng.randint(1, 3, len(pred)),
                           rng.rand(len(pred)))
        thresholds = list(np.arange(0.5, 1.0, 0.05)) + [0.3]
        expected = [utils.compute_ap(*args, iou_threshold=t)[0] for t in thresholds]
        assert utils.compute_ap_thresholds(*args, thresholds) == expected
        assert utils.compute_ap_range(*args, verbose=0) == np.mean(expected[:10])
