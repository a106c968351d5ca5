"""train(): layer freezing per stage, no double counting across calls, checkpoints and
resume, NaN stop. A tiny config (64 px, few ROIs, 1 step per epoch) keeps it quick."""
import csv
import gc
import os
import re

import keras
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.training import LAYER_PRESETS, TrainingDiverged, TrainingModel
from mrcnn.weights import weight_layers
from samples.shapes.shapes import ShapesDataset
from tiny_configs import tiny_config_class

# ResNet-50 (the classic layer names the presets match), 64 px, 2 steps per epoch
TinyConfig = tiny_config_class("tiny", backbone="resnet50", LEARNING_RATE=0.001)
# the small backbone at the same size, anchors and checkpoint names, for the tests of the
# training loop itself (no layer preset or classic layer name involved): 2-3x faster
FastConfig = tiny_config_class("tiny", backbone="small", LEARNING_RATE=0.001,
                               IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64,
                               RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128))


@pytest.fixture(scope="module")
def _shared_fast_model(tmp_path_factory):
    model = modellib.MaskRCNN("training", FastConfig(), str(tmp_path_factory.mktemp("shared")))
    return model, [w.numpy() for w in model.keras_model.weights]


def as_new(shared, model_dir, steps=2):
    """The shared model (_shared_fast_model) as if new: its first weights, epoch 0, a run
    folder under model_dir, STEPS_PER_EPOCH steps."""
    model, first = shared
    for w, value in zip(model.keras_model.weights, first):
        w.assign(value)
    model.config.STEPS_PER_EPOCH = steps
    model.model_dir = str(model_dir)
    model.set_log_dir()
    return model


@pytest.fixture
def fast_model(_shared_fast_model, tmp_path):
    """new(steps=2): one FastConfig training model per test file, given to each test as
    if new (as_new), with a run folder under tmp_path. Its train() calls with the same
    layers keep their traced steps (MaskRCNN._compile), so the tests after the first
    pay no tracing."""
    return lambda steps=2: as_new(_shared_fast_model, tmp_path, steps)


def shapes(count=6, seed=1):
    d = ShapesDataset()
    d.load_shapes(count, 64, 64, seed=seed)
    d.prepare()
    return d


def snapshot(keras_model):
    return {name: [w.numpy().copy() for w in layer.weights]
            for name, layer in weight_layers(keras_model).items() if not hasattr(layer, "layers")}


def changed_layers(before, after):
    return {n for n in before
            if any(not np.array_equal(a, b) for a, b in zip(before[n], after[n]))}


def read_steps(log_dir):
    with open(os.path.join(log_dir, "losses.csv")) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    """heads (epoch 1), then 4+ (epoch 2), then all (epoch 3) on one model."""
    model_dir = str(tmp_path_factory.mktemp("logs"))
    model = modellib.MaskRCNN("training", TinyConfig(), model_dir)
    train, val = shapes(6, 1), shapes(2, 2)
    stages = []
    for epochs, layers in ((1, "heads"), (2, "4+"), (3, "all")):
        before = snapshot(model.keras_model)
        history = model.train(train, val, learning_rate=0.001, epochs=epochs, layers=layers,
                              seed=epochs, verbose=0)
        trainable = {w.path.split("/")[0] for w in model.keras_model.trainable_weights}
        stages.append((layers, changed_layers(before, snapshot(model.keras_model)), history,
                       trainable))
    return model, stages


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_each_stage_changes_exactly_its_layers(staged_run, stage):
    model, stages = staged_run
    layers, changed, _, trainable = stages[stage]
    pattern = re.compile(LAYER_PRESETS[layers])
    all_layers = [n for n, l in weight_layers(model.keras_model).items()
                  if not hasattr(l, "layers")]
    intended = {n for n in all_layers if pattern.fullmatch(n)}
    # the optimiser saw exactly the intended layers (rpn_model's layers included) ...
    assert trainable == intended
    # ... every other layer is bitwise unchanged, and the intended ones that got a
    # gradient moved (heads without a positive ROI in 2 steps may get none)
    assert changed <= intended, sorted(changed - intended)[:5]
    sentinels = {"heads": ["rpn_conv_shared", "rpn_class_raw", "fpn_c2p2", "mrcnn_class_logits"],
                 "4+": ["res4a_branch2a", "res5c_branch2c", "bn4a_branch2a", "fpn_p2"],
                 "all": ["conv1", "res2a_branch2a", "res3d_branch2c", "rpn_bbox_pred"]}[layers]
    assert set(sentinels) <= changed, sorted(set(sentinels) - changed)
    if layers != "all":
        assert "conv1" not in changed and "res3d_branch2c" not in changed


def test_frozen_batch_norm_statistics_never_move(staged_run):
    model, _ = staged_run
    bn = model.keras_model.get_layer("bn_conv1")
    # initial moving stats are 0 and 1; TRAIN_BN=False never updates them
    assert not bn.moving_mean.numpy().any()
    assert (bn.moving_variance.numpy() == 1).all()


def test_every_loss_logged_per_epoch_and_per_step_without_double_counting(staged_run):
    model, stages = staged_run
    for _, _, history, _ in stages:
        for name in ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
                     "mrcnn_bbox_loss", "mrcnn_mask_loss", "val_loss"):
            assert name in history.history and len(history.history[name]) == 1
    rows = read_steps(model.log_dir)
    assert [int(r["step"]) for r in rows] == list(range(1, 7))     # 3 calls x 2 steps
    assert [int(r["epoch"]) for r in rows] == [1, 1, 2, 2, 3, 3]
    # the total is the sum of the five losses (weights 1) plus weight decay, per step
    for r in rows:
        parts = sum(float(r[n]) for n in ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
                                          "mrcnn_bbox_loss", "mrcnn_mask_loss"))
        # (float32 sums: the decay can be smaller than the rounding of a loss near 20)
        assert -1e-5 * float(r["loss"]) <= float(r["loss"]) - parts < 0.01
    epoch1 = stages[0][2].history["loss"][0]
    assert epoch1 == pytest.approx((float(rows[0]["loss"]) + float(rows[1]["loss"])) / 2,
                                   rel=1e-4)


def test_second_train_call_reports_the_same_losses_not_double(tmp_path, monkeypatch):
    # learning rate 0: the weights cannot move, and the same seed feeds the same batches,
    # so a later train() call must report exactly the losses of the first, whether it
    # keeps the traced step (the same layers) or traces a new one (other layers)
    traces = []
    step = TrainingModel.train_step
    monkeypatch.setattr(TrainingModel, "train_step",
                        lambda self, data: traces.append(1) or step(self, data))
    model = modellib.MaskRCNN("training", FastConfig(), str(tmp_path))
    a = model.train(shapes(4), None, 0.0, epochs=1, layers="heads", seed=3, verbose=0)
    # the optimizer is built before the first step, so the training graph is traced once
    # per train() call (a first trace that creates variables is traced again)
    assert len(traces) == 1
    kept = model.train(shapes(4), None, 0.0, epochs=2, layers="heads", seed=3, verbose=0)
    assert len(traces) == 1
    b = model.train(shapes(4), None, 0.0, epochs=3, layers="all", seed=3, verbose=0)
    assert len(traces) == 2
    # (the RPN's losses: the heads' ROIs are sampled in the graph, unseeded)
    for name in ("rpn_class_loss", "rpn_bbox_loss"):
        assert kept.history[name][0] == pytest.approx(a.history[name][0], rel=1e-5), name
        assert b.history[name][0] == pytest.approx(a.history[name][0], rel=1e-5), name
    rows = read_steps(model.log_dir)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    for later in (2, 4):
        assert float(rows[later]["rpn_class_loss"]) == pytest.approx(
            float(rows[0]["rpn_class_loss"]), rel=1e-5)


def test_checkpoints_have_classic_names_and_resume_continues(staged_run):
    model, _ = staged_run
    names = sorted(os.listdir(model.log_dir))
    assert [n for n in names if n.endswith(".h5")] == [
        "mask_rcnn_tiny_0001.h5", "mask_rcnn_tiny_0002.h5", "mask_rcnn_tiny_0003.h5",
        "mask_rcnn_tiny_best.h5"]
    assert re.fullmatch(r"tiny\d{8}T\d{4}", os.path.basename(model.log_dir))
    last = model.find_last()
    assert last.endswith("mask_rcnn_tiny_0003.h5")

    resumed = modellib.MaskRCNN("training", TinyConfig(), model.model_dir)
    resumed.load_weights(last, by_name=True)
    assert resumed.epoch == 3 and resumed.log_dir == model.log_dir
    history = resumed.train(shapes(4, 3), None, 0.001, epochs=4, layers="heads", verbose=0)
    assert history.epoch == [3]
    assert os.path.exists(os.path.join(model.log_dir, "mask_rcnn_tiny_0004.h5"))
    assert resumed.epoch == 4

    # a checkpoint loads into an inference model, and it detects
    class Infer(TinyConfig):
        DETECTION_MIN_CONFIDENCE = 0.0
        POST_NMS_ROIS_INFERENCE = 50
    infer = modellib.MaskRCNN("inference", Infer(), model.model_dir)
    infer.load_weights(last, by_name=False)
    np.testing.assert_array_equal(infer.keras_model.get_layer("mrcnn_mask").weights[0].numpy(),
                                  model.keras_model.get_layer("mrcnn_mask").weights[0].numpy())
    r = infer.detect([shapes(1, 9).load_image(0)])[0]
    assert r["masks"].shape[:2] == (64, 64)


def test_nan_loss_stops_training_with_step_and_loss(fast_model):
    # a learning rate that blows the weights up makes the losses NaN within two steps
    model = fast_model()
    with pytest.raises(TrainingDiverged) as e:
        model.train(shapes(3), None, 1e30, epochs=1, layers="heads", verbose=0)
    message = str(e.value)
    assert re.search(r"step \d \(epoch 1, batch \d\): \w+_loss is (nan|inf)", message), message
    assert "Lower the learning rate" in message
    # no checkpoint of diverged weights
    assert not [f for f in os.listdir(model.log_dir) if f.endswith(".h5")]


def test_nan_pixels_are_refused_with_the_image_named(fast_model):
    class NaNShapes(ShapesDataset):
        def load_image(self, image_id):
            image = super().load_image(image_id).astype(np.float32)
            image[0, 0, 0] = np.nan
            return image

    d = NaNShapes()
    d.load_shapes(3, 64, 64, seed=1)
    d.prepare()
    model = fast_model()
    with pytest.raises(Exception, match=r"image_id \d \(shapes image \d.*NaN or infinite"):
        model.train(d, None, 0.001, epochs=1, layers="heads", verbose=0)


def test_layers_regex_reaches_into_rpn_model_and_rejects_no_match(fast_model):
    model = fast_model()
    chosen = model.set_trainable(r"rpn_class_raw|mrcnn_mask", verbose=0)
    assert sorted(chosen) == ["mrcnn_mask", "rpn_class_raw"]
    names = {w.path.split("/")[0] for w in model.keras_model.trainable_weights}
    assert names == {"rpn_class_raw", "mrcnn_mask"}
    with pytest.raises(ValueError, match="matches no weight layer"):
        model.set_trainable("nothing_like_this", verbose=0)


def test_frozen_batch_norm_affine_trains_everything_but_the_batch_norms(fast_model):
    model = fast_model()
    norms = {n for n, l in weight_layers(model.keras_model).items()
             if isinstance(l, keras.layers.BatchNormalization)}
    assert {"small1_bn1", "mrcnn_class_bn1", "mrcnn_mask_bn4"} <= norms
    before = snapshot(model.keras_model)
    model.config.TRAIN_BN_AFFINE = False
    try:
        model.train(shapes(3), None, 0.01, epochs=1, layers="all", verbose=0, seed=0)
        trainable = {w.path.split("/")[0] for w in model.keras_model.trainable_weights}
        with pytest.raises(ValueError, match=r"matches only batch norms \(small1_bn1.*"
                                             r"TRAIN_BN_AFFINE = True"):
            model.set_trainable(r"small\d_bn\d")
    finally:
        model.config.TRAIN_BN_AFFINE = True
    changed = changed_layers(before, snapshot(model.keras_model))
    # every batch norm is bitwise unchanged, gamma and beta included; the rest trained
    # (the mask head only with a positive ROI, which two steps may not give)
    assert not trainable & norms and not changed & norms
    assert {"small1_conv1", "fpn_p2", "rpn_conv_shared", "mrcnn_class_conv1",
            "mrcnn_class_logits"} <= changed
    assert {"mrcnn_mask_conv4", "mrcnn_mask"} <= trainable
    # the classic setting trains their gamma and beta with their layer
    model.set_trainable("all", verbose=0)
    assert norms <= {w.path.split("/")[0] for w in model.keras_model.trainable_weights}


def test_frozen_affine_with_trained_statistics_moves_only_the_statistics():
    """TRAIN_BN = None with TRAIN_BN_AFFINE = False: batch statistics in training (and
    the moving ones updated), gamma and beta fixed."""
    from mrcnn.backbone import BatchNorm
    from mrcnn.training import set_trainable
    import tensorflow as tf
    inputs = keras.Input((4, 4, 3))
    norm = BatchNorm(train_bn=None, name="bn_x")
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="conv_x")(norm(inputs)))
    assert set_trainable(model, ".*", batch_norm_affine=False) == ["conv_x"]
    assert {w.path for w in model.trainable_weights} == {"conv_x/kernel", "conv_x/bias"}
    x = tf.constant(np.random.RandomState(0).normal(3.0, 2.0, (2, 4, 4, 3)), tf.float32)
    with tf.GradientTape() as tape:
        y = model(x, training=True)
        loss = tf.reduce_sum(y * y)
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None for g in grads)
    assert np.all(norm.moving_mean.numpy() > 0.01)          # statistics moved
    assert np.all(norm.gamma.numpy() == 1) and np.all(norm.beta.numpy() == 0)
    # batch statistics were used: the normalised batch has mean ~0 per channel
    normalised = norm(x, training=True).numpy()
    assert np.allclose(normalised.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    assert set_trainable(model, ".*") == ["bn_x", "conv_x"]


def test_training_without_rpn_rois(tmp_path):
    class NoRpn(FastConfig):
        USE_RPN_ROIS = False
    model = modellib.MaskRCNN("training", NoRpn(), str(tmp_path))
    before = snapshot(model.keras_model)
    # seeded: about a fifth of the images get no random ROI with IoU >= 0.5, so an
    # unseeded run had both of its steps without positives (mask loss 0) about 4% of runs
    history = model.train(shapes(3), None, 0.001, epochs=1, layers="heads", verbose=0,
                          seed=0)
    # random ROIs around the GT boxes give positives: the box and mask heads learn
    assert history.history["mrcnn_mask_loss"][0] > 0
    assert history.history["mrcnn_bbox_loss"][0] > 0
    changed = changed_layers(before, snapshot(model.keras_model))
    assert {"mrcnn_mask", "mrcnn_mask_conv1", "mrcnn_bbox_fc", "mrcnn_class_logits"} <= changed
    assert not any(n.startswith("small") for n in changed)   # the backbone stays frozen


def test_gt_boxes_among_proposals_give_every_step_positives(tmp_path):
    class WithGt(FastConfig):
        TRAIN_ROIS_INCLUDE_GT = True
        STEPS_PER_EPOCH = 3
    model = modellib.MaskRCNN("training", WithGt(), str(tmp_path))
    layer = model.keras_model.get_layer("proposal_targets")
    assert layer.include_gt and type(layer).from_config(layer.get_config()).include_gt
    # learning rate 0: the RPN stays untrained, yet every image has a GT box as a ROI
    model.train(shapes(3), None, 0.0, epochs=1, layers="heads", verbose=0, seed=0)
    steps = read_steps(model.log_dir)
    assert len(steps) == 3
    assert all(float(s["mrcnn_mask_loss"]) > 0 for s in steps)


def test_gpu_count_two_falls_back_on_a_cpu_only_machine(tmp_path):
    class Two(FastConfig):
        GPU_COUNT = 2
    model = modellib.MaskRCNN("training", Two(), str(tmp_path))
    assert model.strategy.num_replicas_in_sync >= 1
    history = model.train(shapes(4), None, 0.001, epochs=1, layers="heads", verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_a_deleted_model_leaves_no_training_graph_behind(tmp_path):
    # TensorFlow's gradient registry kept every traced train step (and with it the model's
    # weights and kernels: 0.5 GB per train() call of a small ResNet-50) after the model
    # was deleted; train() now removes what its trace registered there
    import weakref
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.framework.func_graph import FuncGraph
    registry = tf_ops._gradient_registry._registry
    gc.collect()
    before = {k for k in registry if k.startswith("CustomGradient-")}
    graphs = weakref.WeakSet(g for g in gc.get_objects() if isinstance(g, FuncGraph))
    model = modellib.MaskRCNN("training", FastConfig(), str(tmp_path))
    model.train(shapes(3), shapes(1, 2), 0.001, epochs=1, layers="heads", verbose=0)
    new = weakref.WeakSet(g for g in gc.get_objects()
                          if isinstance(g, FuncGraph) and g not in graphs)
    assert len(new) > 0            # the train and validation steps, while the model lives
    assert {k for k in registry if k.startswith("CustomGradient-")} == before
    del model
    gc.collect()
    assert len(new) == 0


def test_only_the_misleading_retracing_warning_of_new_train_functions_is_dropped(caplog):
    # the text TensorFlow logs at the fifth trace of a function Keras makes (three
    # train() calls with validation make six, each traced once): dropped inside train()'s
    # block; other warnings, retracing ones included, and this one outside it still show
    import tensorflow as tf
    from mrcnn.training import fit_scope
    template = ("5 out of the last 7 calls to <function {} at 0x7f0647> triggered "
                "tf.function retracing. Tracing is expensive and ...")
    keras_made = template.format("TensorFlowTrainer._make_function.<locals>.multi_step_"
                                 "on_iterator")
    with caplog.at_level("WARNING", logger="tensorflow"):
        with fit_scope(), fit_scope():   # nested
            tf.get_logger().warning(keras_made)
            tf.get_logger().warning(template.format("my_step"))
            tf.get_logger().warning("something else")
        tf.get_logger().warning(keras_made)
    assert [r.getMessage() for r in caplog.records] == [
        template.format("my_step"), "something else", keras_made]


def test_a_call_with_the_same_layers_keeps_the_traced_step_and_updates_as_a_new_optimizer(
        fast_model, monkeypatch):
    # (last in the file: the shared model has traced its heads step in the tests above,
    # so only the calls that must trace do; in any order the counts hold)
    import keras
    traces = []
    step = TrainingModel.train_step
    monkeypatch.setattr(TrainingModel, "train_step",
                        lambda self, data: traces.append(1) or step(self, data))
    model = fast_model()
    weights = model.keras_model.weights
    model.train(shapes(4), None, 0.01, epochs=1, layers="heads", seed=3, verbose=0)
    traced = len(traces)     # 1, or 0 when the shared model traced it before
    after_first = [w.numpy() for w in weights]
    seen = []

    class Look(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            opt = self.model.optimizer
            slots = [v.numpy() for v in opt.variables if len(v.shape)]
            seen.append((int(opt.iterations.numpy()), float(opt.learning_rate.numpy()),
                         len(slots), max(float(np.abs(v).max()) for v in slots)))
    second = dict(epochs=2, layers="heads", seed=4, verbose=0, custom_callbacks=[Look()])
    # (one step: the step after it starts from weights that differ by TensorFlow's
    # threaded rounding, which can change the sampled ROIs)
    model.config.STEPS_PER_EPOCH = 1
    model.train(shapes(4), None, 0.005, **second)
    # not traced again, and it began as a new optimizer: step 0, the new rate, and a
    # momentum slot of zeros for each trainable weight
    assert len(traces) == traced
    trainable = len(model.keras_model.trainable_weights)
    assert seen == [(0, float(np.float32(0.005)), trainable, 0.0)]
    kept = [w.numpy() for w in weights]
    assert any(not np.array_equal(a, b) for a, b in zip(after_first, kept))
    # the kept step once more from the first call's weights, at rate 0: as a new
    # optimizer (zero momentum) it leaves every weight exactly as it was; a carried
    # momentum, or a rate the traced step kept, would move them. (Compared with a step
    # traced anew instead, the heads would differ: their ROIs are sampled in the graph,
    # unseeded, and two graphs may sample others when a proposal is positive)
    for w, value in zip(weights, after_first):
        w.assign(value)
    model.epoch = 1
    model.train(shapes(4), None, 0.0, **second)
    assert len(traces) == traced
    for w, a in zip(weights, after_first):
        np.testing.assert_array_equal(w.numpy(), a, err_msg=w.path)
    # compiled anew when asked: traced anew
    model.epoch, model._compiled = 1, None
    model.train(shapes(4), None, 0.005, **second)
    assert len(traces) == traced + 1
    # a Config value the traced losses read, changed: traced anew (so is another set of
    # layers: test_second_train_call_reports_the_same_losses_not_double)
    monkeypatch.setattr(model.config, "SMOOTH_L1_BETA", 0.5, raising=False)
    model.train(shapes(4), None, 0.005, epochs=3, layers="heads", seed=4, verbose=0)
    assert len(traces) == traced + 2
    # a schedule instead of a number is part of the traced step: compiled anew
    schedule = keras.optimizers.schedules.ExponentialDecay(0.005, 10, 0.5)
    model.train(shapes(4), None, schedule, epochs=4, layers="heads", seed=4, verbose=0)
    assert len(traces) == traced + 3
