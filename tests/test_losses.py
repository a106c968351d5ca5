"""The five losses on hand-made tensors, with values worked out by hand."""
import math

import numpy as np
import pytest

import tensorflow as tf

from mrcnn import losses
from mrcnn.config import Config, ConfigError


def test_smooth_l1_classic_and_torchvision_beta():
    y = tf.zeros([4])
    pred = tf.constant([0.5, -2.0, 0.05, 0.2])
    np.testing.assert_allclose(losses.smooth_l1_loss(y, pred).numpy(),
                               [0.125, 1.5, 0.00125, 0.02], atol=1e-7)
    # beta 1/9: below 1/9 0.5 * d**2 * 9, above it d - 1/18
    np.testing.assert_allclose(losses.smooth_l1_loss(y, pred, 1 / 9).numpy(),
                               [0.5 - 1 / 18, 2.0 - 1 / 18, 0.5 * 0.0025 * 9, 0.2 - 1 / 18],
                               atol=1e-6)


def test_rpn_bbox_loss_uses_the_positive_anchors_targets_in_order():
    # image 0: anchors 1 and 3 positive; image 1: anchor 0 positive
    match = tf.constant([[[0], [1], [-1], [1]], [[1], [0], [0], [-1]]], tf.int32)
    pred = np.zeros((2, 4, 4), np.float32)
    pred[0, 1] = [0.5, 0, 0, 0]
    pred[0, 3] = [0, 3.0, 0, 0]
    pred[1, 0] = [0, 0, 0.1, 0]
    target = np.zeros((2, 3, 4), np.float32)     # positives' targets first, zero-padded
    target[0, 1] = [0, 1.0, 0, 0]
    got = losses.rpn_bbox_loss_graph(tf.constant(target), match, tf.constant(pred)).numpy()
    # element-wise over 3 positives x 4: 0.125 + (2.0 - 0.5) + 0.005, / 12
    assert got == pytest.approx((0.125 + 1.5 + 0.005) / 12, rel=1e-5)
    tight = losses.rpn_bbox_loss_graph(tf.constant(target), match, tf.constant(pred),
                                       beta=1 / 9).numpy()
    assert tight == pytest.approx((0.5 - 1 / 18 + 2.0 - 1 / 18 + 0.5 * 0.01 * 9) / 12, rel=1e-5)
    nothing = tf.zeros([1, 4, 1], tf.int32)
    assert losses.rpn_bbox_loss_graph(tf.zeros([1, 3, 4]), nothing,
                                      tf.zeros([1, 4, 4])).numpy() == 0.0


def test_mrcnn_bbox_loss_reads_each_positive_rois_own_class():
    ids = tf.constant([[2, 0, 1]])
    target = np.zeros((1, 3, 4), np.float32)
    target[0, 0] = [1.0, 0, 0, 0]
    target[0, 2] = [0, 0.5, 0, 0]
    pred = np.full((1, 3, 3, 4), 9.0, np.float32)   # wrong everywhere but where read
    pred[0, 0, 2] = [1.0, 0, 0, 0]                   # exact
    pred[0, 2, 1] = [0, 0, 0, 0]                     # off by 0.5 in dx
    got = losses.mrcnn_bbox_loss_graph(tf.constant(target), ids, tf.constant(pred)).numpy()
    assert got == pytest.approx(0.125 / 8, rel=1e-5)


def test_mrcnn_mask_loss_is_bce_of_positive_rois_class_masks():
    ids = tf.constant([[1, 0]])
    target = np.zeros((1, 2, 2, 2), np.float32)
    target[0, 0] = [[1, 0], [1, 0]]
    pred = np.full((1, 2, 2, 2, 2), 0.5, np.float32)
    pred[0, 0, :, :, 1] = [[0.9, 0.2], [0.6, 0.1]]
    got = losses.mrcnn_mask_loss_graph(tf.constant(target), ids, tf.constant(pred)).numpy()
    expect = -(math.log(0.9) + math.log(0.8) + math.log(0.6) + math.log(0.9)) / 4
    assert got == pytest.approx(expect, rel=1e-5)
    assert losses.mrcnn_mask_loss_graph(tf.constant(target), tf.constant([[0, 0]]),
                                        tf.constant(pred)).numpy() == 0.0


def test_smooth_l1_beta_is_checked():
    with pytest.raises(ConfigError, match="SMOOTH_L1_BETA"):
        type("C", (Config,), {"SMOOTH_L1_BETA": 0})()
    assert type("C", (Config,), {"SMOOTH_L1_BETA": 1 / 9})().SMOOTH_L1_BETA == 1 / 9
