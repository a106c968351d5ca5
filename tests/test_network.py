"""The inference network: classic layer names and sizes, the custom layers on hand-made
inputs, and detect()."""
import threading

import numpy as np
import pytest

import tensorflow as tf

from mrcnn import model as modellib
from mrcnn import utils
from mrcnn.config import ConfigError
from mrcnn.detection import DetectionLayer
from mrcnn.roi_align import PyramidROIAlign, roi_pyramid_level
from mrcnn.rpn import ProposalLayer
from tiny_configs import tiny_config as make_tiny_config


def tiny_config(backbone="resnet50", **attrs):
    """The network tests' inference config: ResNet at 128 px, 100 proposals, 10 detections,
    no confidence floor."""
    values = dict(IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128, POST_NMS_ROIS_INFERENCE=100,
                  DETECTION_MAX_INSTANCES=10, DETECTION_MIN_CONFIDENCE=0.0)
    values.update(attrs)
    return make_tiny_config("tiny", backbone, **values)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    # seeded: with random weights, how many ROIs are not arg-max background varies
    import keras
    keras.utils.set_random_seed(0)
    return modellib.MaskRCNN("inference", tiny_config(), str(tmp_path_factory.mktemp("logs")))


def expected_weight_layers(stage4_blocks):
    """The classic weight-layer names, generated from design.md's rules."""
    names = ["conv1", "bn_conv1"]
    for stage, blocks in ((2, 3), (3, 4), (4, stage4_blocks), (5, 3)):
        for b in range(blocks):
            block = chr(97 + b)
            for branch in ("2a", "2b", "2c") + (("1",) if block == "a" else ()):
                names += ["res{}{}_branch{}".format(stage, block, branch),
                          "bn{}{}_branch{}".format(stage, block, branch)]
    names += ["fpn_c5p5", "fpn_c4p4", "fpn_c3p3", "fpn_c2p2", "fpn_p2", "fpn_p3", "fpn_p4",
              "fpn_p5", "rpn_model"]
    names += ["mrcnn_class_conv1", "mrcnn_class_bn1", "mrcnn_class_conv2", "mrcnn_class_bn2",
              "mrcnn_class_logits", "mrcnn_bbox_fc"]
    for i in range(1, 5):
        names += ["mrcnn_mask_conv{}".format(i), "mrcnn_mask_bn{}".format(i)]
    names += ["mrcnn_mask_deconv", "mrcnn_mask"]
    return names


@pytest.mark.parametrize("backbone, stage4_blocks, count, params", [
    ("resnet50", 6, 131, 45088120),
    ("resnet101", 23, 233, 64158584),
])
def test_weight_layer_names_count_and_parameters(tmp_path, backbone, stage4_blocks, count,
                                                 params):
    config = tiny_config(backbone, NUM_CLASSES=81)
    model = modellib.MaskRCNN("inference", config, str(tmp_path)).keras_model
    layers = [l for l in model.layers if l.weights]
    assert len(layers) == count
    assert sorted(l.name for l in layers) == sorted(expected_weight_layers(stage4_blocks))
    assert model.count_params() == params

    def shapes(name):
        return [tuple(w.shape) for w in model.get_layer(name).weights]
    assert shapes("conv1") == [(7, 7, 3, 64), (64,)]
    assert shapes("bn_conv1") == [(64,)] * 4
    assert shapes("res2a_branch1") == [(1, 1, 64, 256), (256,)]
    assert shapes("res5c_branch2b") == [(3, 3, 512, 512), (512,)]
    assert shapes("fpn_c5p5") == [(1, 1, 2048, 256), (256,)]
    assert shapes("fpn_p2") == [(3, 3, 256, 256), (256,)]
    rpn = model.get_layer("rpn_model")
    assert [(l.name, tuple(l.weights[0].shape)) for l in rpn.layers if l.weights] == [
        ("rpn_conv_shared", (3, 3, 256, 512)), ("rpn_class_raw", (1, 1, 512, 6)),
        ("rpn_bbox_pred", (1, 1, 512, 12))]
    assert shapes("mrcnn_class_conv1") == [(7, 7, 256, 1024), (1024,)]
    assert shapes("mrcnn_class_logits") == [(1024, 81), (81,)]
    assert shapes("mrcnn_bbox_fc") == [(1024, 324), (324,)]
    assert shapes("mrcnn_mask_deconv") == [(2, 2, 256, 256), (256,)]
    assert shapes("mrcnn_mask") == [(1, 1, 256, 81), (81,)]
    # BN: gamma, beta, moving mean and variance; epsilon 1e-3; frozen by default
    bn = model.get_layer("bn5c_branch2c")
    assert [w.name for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert bn.epsilon == 1e-3 and bn.train_bn is False


def test_model_needs_two_classes_and_no_crop_at_inference(tmp_path):
    with pytest.raises(ConfigError, match="NUM_CLASSES = 1"):
        modellib.MaskRCNN("inference", tiny_config(NUM_CLASSES=1), str(tmp_path))
    with pytest.raises(ConfigError, match="'pad64'"):
        modellib.MaskRCNN("inference", tiny_config(IMAGE_RESIZE_MODE="crop"), str(tmp_path))
    with pytest.raises(ValueError, match="mode='predict'"):
        modellib.MaskRCNN("predict", tiny_config(), str(tmp_path))


# --- detect -------------------------------------------------------------------------

def random_image(h, w, seed=0):
    return (np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8)


def test_detect_returns_classic_dicts_at_original_size(tiny_model):
    image = random_image(90, 150)
    r = tiny_model.detect([image], verbose=0)[0]
    assert set(r) == {"rois", "class_ids", "scores", "masks"}
    n = tiny_model.config.DETECTION_MAX_INSTANCES
    # DETECTION_MIN_CONFIDENCE = 0: the full DETECTION_MAX_INSTANCES come back
    assert r["rois"].shape == (n, 4) and r["rois"].dtype == np.int32
    assert r["class_ids"].shape == (n,) and r["class_ids"].dtype == np.int32
    assert r["scores"].shape == (n,)
    assert r["masks"].shape == (90, 150, n) and r["masks"].dtype == bool
    rois = r["rois"]
    assert (rois[:, 0] >= 0).all() and (rois[:, 1] >= 0).all()
    assert (rois[:, 2] <= 90).all() and (rois[:, 3] <= 150).all()
    assert ((rois[:, 2] > rois[:, 0]) & (rois[:, 3] > rois[:, 1])).all()
    assert ((r["class_ids"] >= 1) & (r["class_ids"] < 4)).all()
    assert (np.diff(r["scores"]) <= 0).all()
    # masks live inside their boxes
    for k in range(n):
        ys, xs = np.where(r["masks"][:, :, k])
        if ys.size:
            y1, x1, y2, x2 = rois[k]
            assert ys.min() >= y1 and ys.max() < y2 and xs.min() >= x1 and xs.max() < x2


def test_detect_molded_gives_what_detect_gives_for_an_image_of_the_molded_size(tiny_model):
    image = random_image(128, 128, 3)     # square 128: molding only subtracts the mean
    expected = tiny_model.detect([image])[0]
    molded, metas, windows = tiny_model.mold_inputs([image])
    assert windows[0].tolist() == [0, 0, 128, 128]
    got = tiny_model.detect_molded(molded, metas)[0]
    assert len(expected["class_ids"]) == tiny_model.config.DETECTION_MAX_INSTANCES
    for key in ("rois", "class_ids", "scores", "masks"):
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_detect_batches_any_number_and_converts_gray(tiny_model):
    images = [random_image(64, 80, 1), random_image(64, 80, 1)[:, :, 0], random_image(40, 30, 2)]
    results = tiny_model.detect(images)
    assert len(results) == 3
    assert results[1]["masks"].shape[:2] == (64, 80)
    assert results[2]["masks"].shape[:2] == (40, 30)
    # same pixels, same detections (grayscale goes through the same RGB path)
    again = tiny_model.detect([images[0]])[0]
    np.testing.assert_array_equal(again["rois"], results[0]["rois"])


def test_detect_is_safe_from_several_threads(tiny_model):
    images = [random_image(70, 70, s) for s in range(4)]
    expected = [tiny_model.detect([im])[0] for im in images]
    got = [None] * 4
    errors = []

    def worker(i):
        try:
            for _ in range(2):
                got[i] = tiny_model.detect([images[i]])[0]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e["rois"], g["rois"])
        np.testing.assert_array_equal(e["class_ids"], g["class_ids"])
        np.testing.assert_allclose(e["scores"], g["scores"], rtol=1e-5)


def test_get_anchors_cached_per_shape(tiny_model):
    a = tiny_model.get_anchors((128, 128, 3))
    assert a is tiny_model.get_anchors((128, 128, 3))
    assert a.shape == ((32 * 32 + 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2) * 3, 4)
    assert a.dtype == np.float32
    b = tiny_model.get_anchors((64, 128, 3))
    assert b.shape[0] < a.shape[0]


def test_mold_and_unmold_detections_map_boxes_back(tiny_model):
    config = tiny_model.config
    image = random_image(64, 128)
    molded, metas, windows = tiny_model.mold_inputs([image])
    assert molded.shape == (1, 128, 128, 3) and molded.dtype == np.float32
    assert windows[0].tolist() == [32, 0, 96, 128]
    np.testing.assert_allclose(molded[0, 0, 0], -config.MEAN_PIXEL, rtol=1e-6)  # padding
    meta = modellib.parse_image_meta(metas)
    assert meta["original_image_shape"][0].tolist() == [64, 128, 3]
    assert meta["window"][0].tolist() == [32, 0, 96, 128]
    # one detection covering the window's left half in the molded image
    box = np.array([32, 0, 96, 64])
    norm = modellib.utils.norm_boxes(box[None], (128, 128))[0]
    detections = np.zeros((3, 6), np.float32)
    detections[0] = list(norm) + [2, 0.9]
    masks = np.ones((3, 28, 28, 4), np.float32)
    boxes, class_ids, scores, full = tiny_model.unmold_detections(
        detections, masks, image.shape, molded[0].shape, windows[0])
    assert boxes.tolist() == [[0, 0, 64, 64]]
    assert class_ids.tolist() == [2] and scores.tolist() == [pytest.approx(0.9)]
    assert full.shape == (64, 128, 1) and full[:, :64].all() and not full[:, 64:].any()
    # the config's mask threshold decides which pixels are in
    masks[0, :, :, 2] = 0.45
    _, _, _, full = tiny_model.unmold_detections(
        detections, masks, image.shape, molded[0].shape, windows[0])
    assert not full.any()
    config.DETECTION_MASK_THRESHOLD = 0.4
    try:
        _, _, _, full = tiny_model.unmold_detections(
            detections, masks, image.shape, molded[0].shape, windows[0])
    finally:
        config.DETECTION_MASK_THRESHOLD = 0.5
    assert full[:, :64].all() and not full[:, 64:].any()


# --- layers on hand-made inputs ------------------------------------------------------

def test_roi_level_formula_picks_pyramid_levels():
    # image 1024x1024: a 224-px ROI belongs to level 4, halving/doubling moves one level
    sides = np.array([224, 112, 56, 448, 8, 1000, 160, 159]) / 1024.0
    boxes = np.stack([np.zeros_like(sides), np.zeros_like(sides), sides, sides], axis=1)
    levels = roi_pyramid_level(tf.constant(boxes, tf.float32), tf.constant([1024, 1024, 3.]))
    # 160 px: log2(160/224) = -0.485 -> round to 0 -> 4; 159 px: -0.494 -> 4
    assert levels.numpy().tolist() == [4, 3, 2, 5, 2, 5, 4, 4]


def test_pyramid_roi_align_pools_from_the_level_of_each_box():
    meta = np.zeros((2, 12 + 4), np.float32)
    meta[:, 4:7] = [256, 256, 3]
    maps = [tf.fill([2, 256 // s, 256 // s, 3], float(level))
            for level, s in zip(range(2, 6), (4, 8, 16, 32))]
    # image 256x256: a normalised side s goes to level 4 + round(log2(s / (224 / 256)));
    # every map holds its level number (plus 100 for the second image)
    sides = [0.875, 0.4375, 0.2, 1.0]
    expect = [4, 3, 2, 4]
    boxes = np.array([[[0, 0, s, s] for s in sides], [[0, 0, s, s] for s in sides[::-1]]],
                     np.float32)
    maps = [m + tf.reshape(tf.constant([0., 100.]), [2, 1, 1, 1]) for m in maps]  # image id
    out = PyramidROIAlign([3, 3])([tf.constant(boxes), tf.constant(meta)] + maps).numpy()
    assert out.shape == (8, 3, 3, 3)
    got = out[:, 1, 1, 0]
    assert got.tolist() == [float(v) for v in expect] + [100.0 + v for v in expect[::-1]]


def test_pixel_aligned_roi_align_samples_pixel_centres_at_their_place_on_each_level():
    # image 256x256; each level's map holds, in every cell, the image y (continuous, pixel
    # i spans [i, i + 1)) of the cell's centre: (j + 0.5) * stride. Bilinear sampling
    # of it at the right place returns the y of the pixel centre asked for.
    meta = np.zeros((1, 12 + 4), np.float32)
    meta[0, 4:7] = [256, 256, 3]
    maps = []
    for s in (4, 8, 16, 32):
        centres = (np.arange(256 // s, dtype=np.float32) + 0.5) * s
        maps.append(tf.constant(np.broadcast_to(centres[None, :, None, None],
                                                (1, 256 // s, 256 // s, 1)).copy()))
    # pixel boxes (y1, x1, y2, x2), y2 exclusive: 20 px tall on P2, 120 px on P4
    pixel_boxes = np.array([[100, 40, 120, 60], [200, 10, 220, 30], [60, 60, 180, 180]])
    boxes = utils.norm_boxes(pixel_boxes, (256, 256))[None]
    aligned = PyramidROIAlign([2, 2], pixel_aligned=True)(
        [tf.constant(boxes), tf.constant(meta)] + maps).numpy()[:, :, 0, 0]
    # corner samples sit on the first and last pixel centres: y1 + 0.5 and y2 - 0.5
    np.testing.assert_allclose(aligned, [[100.5, 119.5], [200.5, 219.5], [60.5, 179.5]],
                               atol=1e-3)
    # the classic sampling drifts with the position in the image (on P2, by up to 3 px)
    classic = PyramidROIAlign([2, 2])([tf.constant(boxes), tf.constant(meta)] + maps).numpy()
    drift = np.abs(classic[:, :, 0, 0] - aligned)
    assert np.all(drift[1] > 0.8) and np.all(drift[0] < 0.4)
    # a box over the whole image (level 4, 16 px cells centred at 8 .. 248): both modes
    # read the border cells, never the zeros crop_and_resize puts off the map
    whole = tf.constant(utils.norm_boxes(np.array([[0, 0, 256, 256]]), (256, 256))[None])
    for mode in (True, False):
        out = PyramidROIAlign([2, 2], pixel_aligned=mode)([whole, tf.constant(meta)] + maps)
        np.testing.assert_allclose(out.numpy()[0, :, 0, 0], [8.0, 248.0], atol=0.01)


def test_proposal_layer_scores_nms_limit_and_padding():
    anchors = np.array([[0, 0, .5, .5],        # A: .9
                        [0, 0, .5, .52],       # B: IoU .96 with A: .8
                        [.5, .5, 1, 1],        # C: .7
                        [.1, .6, .2, .7],      # D: .1
                        [.8, .0, 1.2, .1]],    # E: .05, sticks out: clipped to 1
                       np.float32)
    fg = np.array([.9, .8, .7, .1, .05], np.float32)
    probs = np.stack([1 - fg, fg], axis=-1)[None]
    deltas = np.zeros((1, 5, 4), np.float32)
    deltas[0, 2] = [1.0, 0, 0, 0]              # C moves down by 1 * 0.1 * h = .05
    layer = ProposalLayer(proposal_count=6, nms_threshold=0.7, pre_nms_limit=6000)
    out = layer([tf.constant(probs), tf.constant(deltas), tf.constant(anchors[None])]).numpy()[0]
    np.testing.assert_allclose(out, [[0, 0, .5, .5], [.55, .5, 1, 1], [.1, .6, .2, .7],
                                     [.8, 0, 1, .1], [0, 0, 0, 0], [0, 0, 0, 0]], atol=1e-6)
    limited = ProposalLayer(proposal_count=3, nms_threshold=0.7, pre_nms_limit=2)(
        [tf.constant(probs), tf.constant(deltas), tf.constant(anchors[None])]).numpy()[0]
    np.testing.assert_allclose(limited, [[0, 0, .5, .5], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_detection_layer_per_class_nms_confidence_and_window():
    rois = np.array([[.1, .1, .5, .5],    # class 1, .9
                     [.1, .1, .5, .52],   # class 1, .8: suppressed by the first
                     [.1, .1, .5, .5],    # class 2, .7: same box, other class: kept
                     [.6, .6, .9, .9],    # background wins: dropped
                     [.6, .0, .8, .3],    # class 3, .3: below min confidence .5
                     [.0, .5, .3, 1.0]],  # class 3, .6: clipped to the window
                    np.float32)
    probs = np.zeros((6, 4), np.float32)
    for i, (c, p) in enumerate([(1, .9), (1, .8), (2, .7), (0, .8), (3, .3), (3, .6)]):
        probs[i] = (1 - p) / 3
        probs[i, c] = p
    deltas = np.zeros((6, 4, 4), np.float32)
    meta = np.zeros((1, 16), np.float32)
    meta[0, 4:7] = [101, 101, 3]
    meta[0, 7:11] = [0, 0, 101, 81]       # window: the right fifth is padding
    layer = DetectionLayer(min_confidence=0.5, nms_threshold=0.3, max_instances=5)
    out = layer([tf.constant(rois[None]), tf.constant(probs[None]), tf.constant(deltas[None]),
                 tf.constant(meta)]).numpy()[0]
    np.testing.assert_allclose(out, [[.1, .1, .5, .5, 1, .9],
                                     [.1, .1, .5, .5, 2, .7],
                                     [0, .5, .3, .8, 3, .6],
                                     [0] * 6, [0] * 6], atol=1e-6)


def test_detection_layer_per_class_rule_keeps_foreground_classes_of_background_rois():
    rois = np.array([[.1, .1, .5, .5], [.6, .6, .9, .9]], np.float32)
    probs = np.array([[.5, .3, .2], [.1, .05, .85]], np.float32)
    deltas = np.zeros((2, 3, 4), np.float32)
    deltas[0, 2] = [1, 0, 0, 0]            # class 2's box for ROI 0 moves down by 0.1 * 0.4
    meta = np.zeros((1, 15), np.float32)
    meta[0, 4:7] = [100, 100, 3]
    meta[0, 7:11] = [0, 0, 100, 100]
    inputs = [tf.constant(rois[None]), tf.constant(probs[None]), tf.constant(deltas[None]),
              tf.constant(meta)]
    classic = DetectionLayer(min_confidence=0.1, max_instances=4)(inputs).numpy()[0]
    np.testing.assert_allclose(classic, [[.6, .6, .9, .9, 2, .85]] + [[0] * 6] * 3, atol=1e-6)
    per_class = DetectionLayer(min_confidence=0.1, max_instances=4, per_class=True)
    out = per_class(inputs).numpy()[0]
    np.testing.assert_allclose(out, [[.6, .6, .9, .9, 2, .85],
                                     [.1, .1, .5, .5, 1, .3],
                                     [.14, .1, .54, .5, 2, .2],
                                     [0] * 6], atol=1e-6)
    assert DetectionLayer.from_config(per_class.get_config()).per_class is True


def _has_loop(fn, *args):
    ops = fn.get_concrete_function(*args).graph.get_operations()
    return any(op.type in ("While", "StatelessWhile") for op in ops)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_per_image_layers_give_the_same_numbers_written_out_and_in_a_loop(batch):
    # a batch of up to UNROLL_MAX_IMAGES (2) whose size is known when the graph is traced
    # (training and its validation) runs written out image by image; a larger one, or
    # one of a size unknown then (detect()'s graph, which serves any number of images,
    # and an exported model's), in a tf.map_fn loop: the same numbers either way
    from mrcnn.detection_targets import DetectionTargetLayer
    from mrcnn.graph_ops import UNROLL_MAX_IMAGES
    assert UNROLL_MAX_IMAGES == 2
    r = np.random.RandomState(batch)
    n, classes = 40, 4
    y, x = r.uniform(0, .7, (2, batch, n, 1)).astype(np.float32)
    hw = r.uniform(.05, .3, (batch, n, 2)).astype(np.float32)
    boxes = np.concatenate([y, x, y + hw[..., :1], x + hw[..., 1:]], axis=-1)
    fg = r.uniform(size=(batch, n)).astype(np.float32)
    probs = r.dirichlet(np.ones(classes), (batch, n)).astype(np.float32)
    deltas = r.normal(0, 1, (batch, n, classes, 4)).astype(np.float32)
    meta = np.zeros((batch, 12 + classes), np.float32)
    meta[:, 4:7] = [100, 100, 3]
    meta[:, 7:11] = [0, 0, 100, 90]
    gt_boxes = boxes[:, :5]
    gt_ids = np.tile(np.array([1, 2, 3, 0, 0], np.int32), (batch, 1))
    gt_masks = r.uniform(size=(batch, 20, 20, 5)) > 0.5
    cases = [
        (ProposalLayer(proposal_count=12, nms_threshold=0.5),
         [np.stack([1 - fg, fg], -1), deltas[:, :, 0], boxes]),
        # (torchvision's per-level proposals: two levels of 25 and 15 anchors)
        (ProposalLayer(proposal_count=12, nms_threshold=0.5, per_level=True,
                       pre_nms_limit=10),
         [np.stack([1 - fg, fg], -1), deltas[:, :, 0], boxes, meta,
          np.zeros((batch, 25, 2), np.float32), np.zeros((batch, 15, 2), np.float32)]),
        (DetectionLayer(min_confidence=0.3, nms_threshold=0.3, max_instances=8),
         [boxes, probs, deltas, meta]),
        # all 40 proposals and every ROI kept (no sampling left to chance)
        (DetectionTargetLayer(rois_per_image=n + 5, positive_ratio=1.0, mask_shape=(7, 7),
                              use_mini_mask=False),
         [boxes, gt_ids, gt_boxes, gt_masks]),
    ]
    for layer, inputs in cases:
        known = tf.function(lambda *a: layer(list(a)))
        unknown = tf.function(lambda *a: layer(list(a)), input_signature=[
            tf.TensorSpec((None,) + v.shape[1:], tf.as_dtype(v.dtype)) for v in inputs])
        assert _has_loop(known, *inputs) == (batch > 2), layer.name
        assert _has_loop(unknown, *inputs), layer.name
        # written out or not, the traced outputs' shapes are all known
        for t in tf.nest.flatten(known.get_concrete_function(*inputs).structured_outputs):
            assert t.shape.is_fully_defined() and t.shape[0] == batch, (layer.name, t.shape)
        a, b = (tf.nest.map_structure(lambda t: t.numpy(), f(*inputs))
                for f in (known, unknown))
        if isinstance(layer, DetectionTargetLayer):
            # (the positive ROIs come shuffled: compare them in one order)
            a, b = ([np.stack([v[i][np.lexsort(out[0][i].T)] for i in range(batch)])
                     for v in out] for out in (a, b))
            assert (a[1] > 0).sum() >= 3 * batch     # (at least the 3 GT boxes of each image)
        for u, v in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
            assert u.shape[0] == batch
            np.testing.assert_array_equal(u, v, err_msg=layer.name)


def test_mask_head_without_batch_norm_drops_the_bn_layers(tmp_path):
    model = modellib.MaskRCNN("inference", tiny_config(MASK_HEAD_BN=False), str(tmp_path))
    names = {layer.name for layer in model.keras_model.layers}
    assert "mrcnn_mask_conv4" in names and "mrcnn_class_bn1" in names
    assert not {"mrcnn_mask_bn{}".format(i) for i in range(1, 5)} & names
    # without batch norm the convs start at He's variance (2 / fan_in), not Glorot's
    kernel = model.keras_model.get_layer("mrcnn_mask_conv2").get_weights()[0]
    assert np.var(kernel) == pytest.approx(2.0 / (3 * 3 * 256), rel=0.05)
    classic = modellib.MaskRCNN("inference", tiny_config(), str(tmp_path))
    assert "mrcnn_mask_bn4" in {layer.name for layer in classic.keras_model.layers}
    glorot = classic.keras_model.get_layer("mrcnn_mask_conv2").get_weights()[0]
    assert np.var(glorot) == pytest.approx(2.0 / (2 * 3 * 3 * 256), rel=0.05)
    with pytest.raises(ConfigError, match="MASK_HEAD_BN"):
        tiny_config(MASK_HEAD_BN="no")
    with pytest.raises(ConfigError, match="DETECTION_PER_CLASS"):
        tiny_config(DETECTION_PER_CLASS=1)


def test_mask_head_channels_sets_the_mask_head_width(tmp_path):
    model = modellib.MaskRCNN("inference", tiny_config(MASK_HEAD_CHANNELS=32), str(tmp_path))
    kernel = model.keras_model.get_layer("mrcnn_mask_conv1").weights[0]
    assert tuple(kernel.shape)[-1] == 32
    assert tuple(model.keras_model.get_layer("mrcnn_mask_deconv").weights[0].shape)[-1] == 32
    with pytest.raises(ConfigError, match="MASK_HEAD_CHANNELS"):
        tiny_config(MASK_HEAD_CHANNELS=0)


def test_box_deltas_that_overflow_give_finite_boxes():
    from mrcnn.graph_ops import MAX_LOG_SCALE, apply_box_deltas_graph
    boxes = tf.constant([[0.2, 0.2, 0.4, 0.4]] * 3)
    deltas = tf.constant([[0.0, 0.0, 1000.0, 0.0], [np.nan, 0.0, 0.0, np.inf],
                          [0.5, 0.0, 0.0, 0.0]], tf.float32)
    out = apply_box_deltas_graph(boxes, deltas).numpy()
    assert np.isfinite(out).all()
    # height capped at 0.2 * 1000 / 16 around the same centre
    np.testing.assert_allclose(out[0, 2] - out[0, 0], 0.2 * np.exp(MAX_LOG_SCALE), rtol=1e-5)
    np.testing.assert_allclose(out[1], [0.2, 0.2, 0.4, 0.4], atol=1e-6)  # non-finite -> 0
    np.testing.assert_allclose(out[2], [0.3, 0.2, 0.5, 0.4], atol=1e-6)  # ordinary delta


def _batch_norm_with_statistics(dtype=None, train_bn=False, channels=16):
    from mrcnn.backbone import BatchNorm
    rng = np.random.RandomState(0)
    bn = BatchNorm(train_bn=train_bn, dtype=dtype)
    bn.build((None, 8, 8, channels))
    for v in (bn.gamma, bn.beta, bn.moving_mean):
        v.assign(rng.randn(channels).astype("float32"))
    bn.moving_variance.assign(rng.rand(channels).astype("float32") + 0.5)
    return bn


def _keras_formula(bn, x):
    """What Keras' own BatchNormalization computes with the moving statistics."""
    import keras
    return keras.layers.BatchNormalization.call(bn, x, training=False)


def _loss_and_grads(fn, x, bn):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.cast(fn(x), "float32")
        loss = tf.reduce_sum(y * y)
    return [g.numpy() for g in tape.gradient(loss, [x, bn.gamma.value, bn.beta.value])]


def test_frozen_batch_norm_is_one_fused_op_with_keras_numbers():
    # the moving-statistics batch norm (TRAIN_BN False, or a frozen layer) runs as
    # TensorFlow's fused op: the same numbers and gradients as Keras' formula, one op
    bn = _batch_norm_with_statistics()
    x = tf.constant(np.random.RandomState(1).randn(3, 8, 8, 16).astype("float32"))
    np.testing.assert_allclose(bn(x).numpy(), _keras_formula(bn, x).numpy(),
                               rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(_loss_and_grads(bn, x, bn),
                            _loss_and_grads(lambda v: _keras_formula(bn, v), x, bn)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4 * np.abs(theirs).max())
    ops = {op.type for op in tf.function(lambda v: bn(v)).get_concrete_function(
        tf.TensorSpec((None, 8, 8, 16))).graph.get_operations()}
    assert "FusedBatchNormV3" in ops and not ops & {"Rsqrt", "Mul", "Sub"}, ops
    # a trainable layer frozen by set_trainable (training=True, trainable False) too
    bn.trainable = False
    np.testing.assert_allclose(bn(x, training=True).numpy(), _keras_formula(bn, x).numpy(),
                               rtol=1e-5, atol=1e-5)
    # no ROIs (the mask head of a step without positives): an empty batch, both ways
    empty = tf.zeros((0, 8, 8, 16))
    bn.trainable = True
    assert bn(empty).shape == (0, 8, 8, 16)
    grads = _loss_and_grads(bn, empty, bn)
    assert grads[0].shape == (0, 8, 8, 16)
    np.testing.assert_array_equal(grads[1], 0)
    np.testing.assert_array_equal(grads[2], 0)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_frozen_batch_norm_in_half_precision_is_fused_and_keeps_the_input_type(policy):
    bn = _batch_norm_with_statistics(dtype=policy)
    half = policy.split("_")[1]
    x = tf.cast(np.random.RandomState(2).randn(2, 8, 8, 16), half)
    y = bn(x)
    assert y.dtype == half and bn.gamma.dtype == "float32"
    ops = {op.type for op in tf.function(lambda v: bn(v, training=True)).get_concrete_function(
        tf.TensorSpec((None, 8, 8, 16), half)).graph.get_operations()}
    assert "FusedBatchNormV3" in ops and "Cast" not in ops, ops
    # (both computed in float32 and rounded once to the half type)
    np.testing.assert_allclose(tf.cast(y, "float32").numpy(),
                               tf.cast(_keras_formula(bn, x), "float32").numpy(),
                               rtol=1e-2, atol=1e-2)
    grads = _loss_and_grads(bn, x, bn)
    reference = _loss_and_grads(lambda v: _keras_formula(bn, v), x, bn)
    for ours, theirs in zip(grads, reference):
        ours, theirs = np.asarray(ours, "float32"), np.asarray(theirs, "float32")
        assert np.isfinite(ours).all()
        np.testing.assert_allclose(ours, theirs, rtol=2e-2, atol=2e-2 * np.abs(theirs).max())


def test_batch_norm_with_batch_statistics_keeps_keras_path_and_updates_the_moving_ones():
    # TRAIN_BN True: the batch's own statistics, and the moving ones move
    bn = _batch_norm_with_statistics(train_bn=True)
    x = tf.constant(np.random.RandomState(3).randn(4, 8, 8, 16).astype("float32") * 3 + 1)
    mean_before = bn.moving_mean.numpy().copy()
    y = bn(x).numpy()
    normalised = (y - bn.beta.numpy()) / bn.gamma.numpy()
    np.testing.assert_allclose(normalised.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(normalised.std(axis=(0, 1, 2)), 1, atol=1e-2)
    assert not np.allclose(bn.moving_mean.numpy(), mean_before)


def test_a_training_step_fuses_only_the_batch_norms_whose_gamma_and_beta_train():
    # the fused op's gradient needs the layer's input; a batch norm whose gamma and beta
    # do not train (TRAIN_BN_AFFINE = False, or outside `layers`) keeps Keras' formula,
    # whose backward pass keeps nothing of it
    def op_types(bn, training):
        spec = tf.TensorSpec((None, 8, 8, 16))
        return {op.type for op in tf.function(lambda v: bn(v, training=training))
                .get_concrete_function(spec).graph.get_operations()}
    bn = _batch_norm_with_statistics()
    assert "FusedBatchNormV3" in op_types(bn, True)
    bn.gamma.trainable = bn.beta.trainable = False        # TRAIN_BN_AFFINE = False
    assert "FusedBatchNormV3" not in op_types(bn, True)
    assert "FusedBatchNormV3" in op_types(bn, False)     # validation, detection
    bn.gamma.trainable = bn.beta.trainable = True
    bn.trainable = False                                  # outside `layers`
    assert "FusedBatchNormV3" not in op_types(bn, True)
    assert "FusedBatchNormV3" in op_types(bn, None)
    # op determinism: TensorFlow has no deterministic GPU kernel for the fused gradient
    bn.trainable = True
    tf.config.experimental.enable_op_determinism()
    try:
        assert "FusedBatchNormV3" not in op_types(bn, True)
        assert "FusedBatchNormV3" in op_types(bn, False)
    finally:
        from tensorflow.python.framework import config as tf_config
        tf_config.disable_op_determinism()
