"""Each NumPy helper and its TensorFlow twin (boxes.py / molding.py and graph_ops.py) give
the same answer on the same random inputs: box deltas (applied, with the one log-scale
cap, and computed), IoU, zero-row trimming, box normalisation and the image meta."""
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import boxes, graph_ops, molding
from mrcnn.config import Config


def random_boxes(rng, n, low=0.0, high=1.0, min_size=0.02):
    """[n, (y1, x1, y2, x2)] float32 boxes inside [low, high], each side >= min_size."""
    y1 = rng.uniform(low, high - min_size, n)
    x1 = rng.uniform(low, high - min_size, n)
    y2 = rng.uniform(y1 + min_size, high)
    x2 = rng.uniform(x1 + min_size, high)
    return np.stack([y1, x1, y2, x2], axis=1).astype(np.float32)


def test_one_log_scale_cap_for_both_backends():
    assert graph_ops.MAX_LOG_SCALE == boxes.MAX_LOG_SCALE == pytest.approx(np.log(1000 / 16))


def test_numpy_apply_box_deltas_caps_the_scale_and_zeroes_non_finite_deltas():
    box = np.array([[0.2, 0.2, 0.4, 0.4]] * 3, np.float32)
    deltas = np.array([[0.0, 0.0, 1000.0, 0.0], [np.nan, 0.0, 0.0, np.inf],
                       [0.5, 0.0, 0.0, 0.0]], np.float32)
    with np.errstate(all="raise"):  # no overflow on the way
        out = boxes.apply_box_deltas(box, deltas)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 2] - out[0, 0], 0.2 * 1000 / 16, rtol=1e-5)
    np.testing.assert_allclose(out[0, 3] - out[0, 1], 0.2, rtol=1e-5)
    np.testing.assert_allclose(out[1], [0.2, 0.2, 0.4, 0.4], atol=1e-6)
    np.testing.assert_allclose(out[2], [0.3, 0.2, 0.5, 0.4], atol=1e-6)


def test_apply_box_deltas_twins_agree_including_capped_and_non_finite_deltas():
    rng = np.random.RandomState(0)
    b = random_boxes(rng, 200)
    d = rng.normal(0, 0.5, (200, 4)).astype(np.float32)
    d[:20, 2:] = rng.uniform(4, 50, (20, 2))            # above the cap
    d[20:30, 0] = np.nan
    d[30:40, 3] = np.inf
    d[40:50, 2] = -np.inf
    numpy_out = boxes.apply_box_deltas(b, d)
    graph_out = graph_ops.apply_box_deltas_graph(tf.constant(b), tf.constant(d)).numpy()
    assert np.isfinite(numpy_out).all() and np.isfinite(graph_out).all()
    np.testing.assert_allclose(numpy_out, graph_out, rtol=1e-6, atol=1e-6)


def test_box_refinement_twins_agree_and_invert_apply_box_deltas():
    rng = np.random.RandomState(1)
    b = random_boxes(rng, 200)
    gt = random_boxes(rng, 200)
    numpy_deltas = boxes.box_refinement(b, gt)
    graph_deltas = graph_ops.box_refinement_graph(tf.constant(b), tf.constant(gt)).numpy()
    assert numpy_deltas.dtype == np.float32
    np.testing.assert_allclose(numpy_deltas, graph_deltas, rtol=1e-6, atol=1e-6)
    # within the cap, applying the deltas gives the GT boxes back, on both sides
    ok = np.all(numpy_deltas[:, 2:] < boxes.MAX_LOG_SCALE, axis=1)
    np.testing.assert_allclose(boxes.apply_box_deltas(b[ok], numpy_deltas[ok]), gt[ok],
                               atol=1e-5)
    back = graph_ops.apply_box_deltas_graph(tf.constant(b[ok]), tf.constant(graph_deltas[ok]))
    np.testing.assert_allclose(back.numpy(), gt[ok], atol=1e-5)


def test_box_refinement_in_float64_matches_the_float32_deltas():
    rng = np.random.RandomState(2)
    anchors = np.round(random_boxes(rng, 50, 0, 512, 4)).astype(np.float64)
    gt = np.round(random_boxes(rng, 50, 0, 512, 4)).astype(np.int32)
    d64 = boxes.box_refinement(anchors, gt, dtype=np.float64)
    assert d64.dtype == np.float64
    np.testing.assert_allclose(d64, boxes.box_refinement(anchors, gt), rtol=1e-5, atol=1e-6)


def test_overlaps_twins_agree():
    rng = np.random.RandomState(3)
    a = random_boxes(rng, 40)
    b = random_boxes(rng, 30)
    b[:5] = a[:5]                                       # identical pairs: IoU 1
    b[5] = [0.9, 0.9, 0.95, 0.95]
    a[5] = [0.0, 0.0, 0.1, 0.1]                         # a disjoint pair: IoU 0
    numpy_iou = boxes.compute_overlaps(a, b)
    graph_iou = graph_ops.overlaps_graph(tf.constant(a), tf.constant(b)).numpy()
    assert numpy_iou.shape == graph_iou.shape == (40, 30)
    np.testing.assert_allclose(numpy_iou, graph_iou, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.diag(numpy_iou[:5, :5]), 1.0, rtol=1e-6)
    assert numpy_iou[5, 5] == graph_iou[5, 5] == 0


def test_trim_zeros_twins_agree():
    rng = np.random.RandomState(4)
    b = random_boxes(rng, 12)
    b[[2, 5, 11]] = 0
    kept, non_zero = graph_ops.trim_zeros_graph(tf.constant(b))
    np.testing.assert_array_equal(boxes.trim_zeros(b), kept.numpy())
    assert non_zero.numpy().tolist() == [i not in (2, 5, 11) for i in range(12)]


def test_norm_and_denorm_boxes_twins_agree():
    rng = np.random.RandomState(5)
    pixel = np.round(random_boxes(rng, 100, 0, 200, 2)).astype(np.int32)
    shape = (200, 320)
    numpy_norm = boxes.norm_boxes(pixel, shape)
    graph_norm = graph_ops.norm_boxes_graph(tf.constant(pixel, tf.float32),
                                            tf.constant(shape)).numpy()
    np.testing.assert_allclose(numpy_norm, graph_norm, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(boxes.denorm_boxes(numpy_norm, shape), pixel)
    np.testing.assert_array_equal(
        graph_ops.denorm_boxes_graph(tf.constant(graph_norm), tf.constant(shape)).numpy(), pixel)


def test_parse_image_meta_twins_read_the_one_layout():
    config = type("MetaConfig", (Config,), {"NAME": "meta", "NUM_CLASSES": 5})()
    metas = np.stack([
        molding.compose_image_meta(7, (480, 640, 3), (1024, 1024, 3), (128, 0, 896, 1024),
                                   1.6, [1, 1, 0, 1, 0]),
        molding.compose_image_meta(8, (100, 50, 3), (1024, 1024, 3), (0, 256, 1024, 768),
                                   10.24, [1, 0, 1, 1, 1])])
    assert metas.shape == (2, config.IMAGE_META_SIZE)
    numpy_meta = molding.parse_image_meta(metas)
    graph_meta = graph_ops.parse_image_meta_graph(tf.constant(metas, tf.float32))
    assert set(numpy_meta) == set(graph_meta) == set(molding.IMAGE_META_LAYOUT)
    for name in numpy_meta:
        np.testing.assert_allclose(numpy_meta[name], graph_meta[name].numpy(), rtol=1e-6,
                                   err_msg=name)
    assert numpy_meta["image_id"].tolist() == [7, 8]
    assert numpy_meta["original_image_shape"].tolist() == [[480, 640, 3], [100, 50, 3]]
    assert numpy_meta["window"].tolist() == [[128, 0, 896, 1024], [0, 256, 1024, 768]]
    np.testing.assert_allclose(numpy_meta["scale"], [1.6, 10.24], rtol=1e-6)
    assert numpy_meta["active_class_ids"].tolist() == [[1, 1, 0, 1, 0], [1, 0, 1, 1, 1]]
