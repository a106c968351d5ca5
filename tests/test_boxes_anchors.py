"""Exact-value tests of the box and anchor helpers on hand-worked cases."""
import math

import numpy as np
import pytest

from mrcnn import utils
from mrcnn.config import Config


def test_compute_iou_hand_worked():
    box = np.array([0, 0, 10, 10])
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [10, 10, 20, 20], [0, 5, 10, 15]])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iou = utils.compute_iou(box, boxes, 100, areas)
    np.testing.assert_allclose(iou, [1.0, 25 / 175, 0.0, 50 / 150])


def test_compute_overlaps_is_pairwise_iou_matrix():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    b = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [20, 25, 30, 35]])
    overlaps = utils.compute_overlaps(a, b)
    assert overlaps.shape == (2, 3)
    np.testing.assert_allclose(overlaps, [[1.0, 25 / 175, 0.0], [0.0, 0.0, 50 / 150]])


def test_non_max_suppression_keeps_highest_and_drops_overlaps_above_threshold():
    boxes = np.array([[0, 0, 10, 10],     # score .9
                      [1, 1, 11, 11],     # IoU with box 0 = 81/119 = 0.68
                      [20, 20, 30, 30],   # disjoint
                      [0, 5, 10, 15]])    # IoU with box 0 = 1/3
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    keep = utils.non_max_suppression(boxes, scores, 0.5)
    assert keep.dtype == np.int32
    assert keep.tolist() == [0, 2, 3]
    assert utils.non_max_suppression(boxes, scores, 0.3).tolist() == [0, 2]
    # order follows the score, not the input position
    assert utils.non_max_suppression(boxes, scores[::-1].copy(), 0.5).tolist() == [3, 2, 1]
    assert utils.non_max_suppression(np.zeros((0, 4)), np.zeros((0,)), 0.5).tolist() == []


def test_box_refinement_hand_worked_and_round_trip():
    box = np.array([[10, 10, 20, 30]])        # h 10, w 20, centre (15, 20)
    gt = np.array([[12, 5, 32, 25]])          # h 20, w 20, centre (22, 15)
    deltas = utils.box_refinement(box, gt)
    assert deltas.dtype == np.float32
    np.testing.assert_allclose(deltas, [[0.7, -0.25, math.log(2), 0.0]], rtol=1e-6)
    back = utils.apply_box_deltas(box, deltas)
    np.testing.assert_allclose(back, gt, atol=1e-5)


def test_apply_box_deltas_zero_is_identity_and_scaling_keeps_centre():
    boxes = np.array([[0., 0., 10., 20.], [5., 5., 9., 7.]])
    np.testing.assert_allclose(utils.apply_box_deltas(boxes, np.zeros((2, 4))), boxes)
    out = utils.apply_box_deltas(boxes[:1], np.array([[0, 0, math.log(2), 0]]))
    np.testing.assert_allclose(out, [[-5, 0, 15, 20]], atol=1e-5)


def test_extract_bboxes_exclusive_far_corner_and_empty_mask():
    mask = np.zeros((10, 12, 3), dtype=bool)
    mask[2:5, 3:8, 0] = True
    mask[9, 11, 1] = True
    boxes = utils.extract_bboxes(mask)
    assert boxes.dtype == np.int32
    assert boxes.tolist() == [[2, 3, 5, 8], [9, 11, 10, 12], [0, 0, 0, 0]]


def test_norm_denorm_boxes_round_trip():
    boxes = np.array([[0, 0, 128, 128], [10, 20, 50, 60]])
    n = utils.norm_boxes(boxes, (128, 128))
    np.testing.assert_allclose(n[0], [0, 0, 1, 1])
    np.testing.assert_allclose(n[1], [10 / 127, 20 / 127, 49 / 127, 59 / 127], rtol=1e-6)
    assert utils.denorm_boxes(n, (128, 128)).tolist() == boxes.tolist()


def test_trim_zeros_drops_only_all_zero_rows():
    x = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert utils.trim_zeros(x).tolist() == [[1, 2, 3, 4], [0, 0, 0, 1]]
    with pytest.raises(ValueError, match="2-D"):
        utils.trim_zeros(np.zeros(4))


def test_generate_anchors_small_pyramid_count_first_and_last():
    anchors = utils.generate_pyramid_anchors((8, 16), [0.5, 1, 2], [[2, 2], [1, 1]], [4, 8], 1)
    assert anchors.shape == (2 * 2 * 3 + 1 * 1 * 3, 4)
    r = math.sqrt(2)
    # level P2, cell (0, 0), ratio 0.5: h = 8 / sqrt(.5), w = 8 * sqrt(.5), centred at 0
    np.testing.assert_allclose(anchors[0], [-4 * r, -2 * r, 4 * r, 2 * r])
    # level P2, row 0, col 1 (centre x = 4), ratio 0.5
    np.testing.assert_allclose(anchors[3], [-4 * r, 4 - 2 * r, 4 * r, 4 + 2 * r])
    # ratio 1 at row 1, col 1: centre (4, 4), side 8
    np.testing.assert_allclose(anchors[10], [0, 0, 8, 8])
    # last: level P3, cell (0, 0), ratio 2: h = 16 / sqrt(2), w = 16 * sqrt(2)
    np.testing.assert_allclose(anchors[-1], [-4 * r, -8 * r, 4 * r, 8 * r])


def test_backbone_shapes_and_anchor_count_for_a_128px_config():
    class Small(Config):
        NAME = "small"
        NUM_CLASSES = 2
        IMAGE_MIN_DIM = 128
        IMAGE_MAX_DIM = 128
        RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)

    config = Small()
    shapes = utils.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    assert shapes.tolist() == [[32, 32], [16, 16], [8, 8], [4, 4], [2, 2]]
    anchors = utils.generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                             shapes, config.BACKBONE_STRIDES,
                                             config.RPN_ANCHOR_STRIDE)
    assert anchors.shape == ((1024 + 256 + 64 + 16 + 4) * 3, 4)
    # the last anchor: P6 (stride 64), cell (1, 1), ratio 2, scale 128
    r = math.sqrt(2)
    np.testing.assert_allclose(anchors[-1], [64 - 32 * r, 64 - 64 * r, 64 + 32 * r, 64 + 64 * r])
