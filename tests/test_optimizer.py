"""The training step's cheaper pieces give the same numbers: the fused SGD update equals
Keras' SGD bit for bit, the L2 decay equals its formula, and losses.png is drawn at most
once a minute and at the end of a train() call."""
from collections import Counter

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import training
from mrcnn.config import Config
from mrcnn.losses import l2_weight_decay
from mrcnn.optimizer import (MomentumSGD, initial_state, make_optimizer, rate_is_settable,
                             reset_optimizer)


def run_updates(optimizer_class, initial, gradients, graph=True, **kwargs):
    variables = [keras.Variable(w, name=name) for name, w in initial.items()]
    optimizer = optimizer_class(learning_rate=0.1, momentum=0.9, global_clipnorm=5.0,
                                **kwargs)

    def step(grads):
        optimizer.apply([tf.convert_to_tensor(g) for g in grads], variables)
    if graph:
        step = tf.function(step)
    for grads in gradients:
        step(grads)
    return ([v.numpy() for v in variables] +
            [m.numpy() for m in getattr(optimizer, "momentums", [])])


@pytest.fixture(scope="module")
def case():
    rng = np.random.RandomState(0)
    initial = {"kernel": rng.randn(3, 3, 8, 16).astype(np.float32),
               "bias": rng.randn(16).astype(np.float32)}
    # (a step whose global norm is clipped, one that is not, and a small one)
    gradients = [[rng.randn(*w.shape).astype(np.float32) * scale for w in initial.values()]
                 for scale in (1.0, 100.0, 0.01)]
    return initial, gradients


def _update_ops_per_weight(optimizer_class):
    """The op types one more weight adds to a traced apply() (from 2 weights to 5)."""
    counts = []
    for n in (2, 5):
        variables = [keras.Variable(tf.fill([3, 4], float(i))) for i in range(n)]
        optimizer = optimizer_class(learning_rate=0.1, momentum=0.9, global_clipnorm=5.0)
        optimizer.build(variables)
        graph = tf.function(lambda g: optimizer.apply(g, variables)).get_concrete_function(
            [tf.TensorSpec([3, 4], tf.float32)] * n).graph
        counts.append(Counter(op.type for op in graph.get_operations()))
    return {k: v / 3 for k, v in (counts[1] - counts[0]).items()}


def test_fused_sgd_traces_seven_ops_per_weight_where_keras_traces_seventeen():
    # per weight: its gradient, the weight and its momentum come in (3 placeholders);
    # the global norm's square and sum, the clip's multiply, the fused update. The
    # learning rate is read once per step, the momentum and reduction axes are shared.
    assert _update_ops_per_weight(MomentumSGD) == {
        "Placeholder": 3, "Square": 1, "Sum": 1, "Mul": 1, "ResourceApplyKerasMomentum": 1}
    assert sum(_update_ops_per_weight(keras.optimizers.SGD).values()) == 17


@pytest.mark.parametrize("graph", [True, False], ids=["tf.function", "eager"])
def test_fused_sgd_equals_keras_sgd_bit_for_bit(case, graph):
    initial, gradients = case
    ours = run_updates(MomentumSGD, initial, gradients, graph)
    keras_ = run_updates(keras.optimizers.SGD, initial, gradients, graph)
    assert len(ours) == 4      # two weights and their two momentum slots
    for a, b in zip(ours, keras_):
        np.testing.assert_array_equal(a, b)
    # and the weights did move
    assert not np.array_equal(ours[0], initial["kernel"])


def test_fused_sgd_runs_one_kernel_per_weight(case):
    initial, gradients = case
    variables = [keras.Variable(w) for w in initial.values()]
    optimizer = make_optimizer(Config(), 0.1)
    assert type(optimizer) is MomentumSGD
    optimizer.build(variables)
    graph = tf.function(lambda g: optimizer.apply(g, variables)).get_concrete_function(
        [tf.TensorSpec(w.shape, tf.float32) for w in initial.values()]).graph
    types = [op.type for op in graph.get_operations()]
    assert types.count("ResourceApplyKerasMomentum") == 2
    assert "AssignAddVariableOp" not in types[types.index("ResourceApplyKerasMomentum"):]


def test_nesterov_takes_keras_update(case):
    initial, gradients = case
    ours = run_updates(MomentumSGD, initial, gradients, nesterov=True)
    keras_ = run_updates(keras.optimizers.SGD, initial, gradients, nesterov=True)
    for a, b in zip(ours, keras_):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["SGD", "AdamW", "float16"])
def test_a_reset_optimizer_updates_as_a_new_one(case, kind):
    """What train() does to keep its traced step: after some updates, reset_optimizer
    puts every optimizer variable back where a new optimizer's starts (the momentum or
    the moments, the step, a loss scale and its counter) with the new rate; the updates
    after it are a new optimizer's, bit for bit."""
    initial, gradients = case
    config = Config()
    config.OPTIMIZER = "AdamW" if kind == "AdamW" else "SGD"
    config.COMPUTE_DTYPE = "float16" if kind == "float16" else "float32"

    def fresh(rate):
        variables = [keras.Variable(w) for w in initial.values()]
        optimizer = make_optimizer(config, rate)
        optimizer.build(variables)
        step = tf.function(lambda g: optimizer.apply(g, variables))
        return variables, optimizer, step
    variables, used, step = fresh(0.1)
    start = initial_state(used)
    for grads in gradients:
        step([tf.constant(g) for g in grads])
    # (overflowing float16 gradients would skip the step: these do not)
    assert not any(np.array_equal(v.numpy(), w) for v, w in zip(variables,
                                                                 initial.values()))
    reset_optimizer(used, 0.05, start)
    new_variables, new, new_step = fresh(0.05)
    assert len(used.variables) == len(new.variables) > 2
    for a, b in zip(used.variables, new.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for v, w in zip(new_variables, variables):
        v.assign(w)
    for grads in gradients[:2]:
        step([tf.constant(g) for g in grads])
        new_step([tf.constant(g) for g in grads])
    for a, b in zip(variables + used.variables, new_variables + new.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_a_schedule_put_in_by_a_callback_makes_the_rate_unsettable():
    optimizer = make_optimizer(Config(), 0.1)
    optimizer.build([keras.Variable(np.zeros(3, np.float32))])
    assert rate_is_settable(optimizer)
    optimizer.learning_rate = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert not rate_is_settable(optimizer)
    config = Config()
    config.COMPUTE_DTYPE = "float16"
    scaled = make_optimizer(config, 0.1)
    assert isinstance(scaled, keras.optimizers.LossScaleOptimizer)
    assert rate_is_settable(scaled)


def test_the_traced_config_values_are_all_that_the_traced_step_reads():
    """train() keeps the last call's traced step while training.TRACED_CONFIG's values
    are unchanged: the train step, the losses and the optimizer must read no other
    Config value (a new one read there belongs in TRACED_CONFIG)."""
    import inspect
    import re
    from mrcnn import optimizer as optimizer_module
    source = "".join(inspect.getsource(f) for f in (
        training.TrainingModel, optimizer_module.make_optimizer,
        optimizer_module._base_optimizer))
    read = set(re.findall(r"config\.([A-Z][A-Z0-9_]+)", source)) | \
        set(re.findall(r"getattr\((?:self\.mrcnn_)?config, \"([A-Z][A-Z0-9_]+)\"", source))
    assert {"SMOOTH_L1_BETA", "LOSS_WEIGHTS", "OPTIMIZER"} <= read
    assert read <= set(training.TRACED_CONFIG), read - set(training.TRACED_CONFIG)


def test_l2_weight_decay_is_the_size_normalised_sum_of_squares_without_bn_scales():
    rng = np.random.RandomState(1)
    weights = {"conv/kernel": rng.randn(3, 3, 4, 5), "conv/bias": rng.randn(5),
               "bn/gamma": rng.randn(5), "bn/beta": rng.randn(5)}
    variables = [keras.Variable(w.astype(np.float32), name=n.replace("/", "_"))
                 for n, w in weights.items()]
    expected = sum(0.0001 * np.sum(w.astype(np.float32).astype(np.float64) ** 2) / w.size
                   for n, w in weights.items() if "gamma" not in n and "beta" not in n)
    value = float(l2_weight_decay(variables, 0.0001))
    assert value == pytest.approx(expected, rel=1e-6)
    assert float(l2_weight_decay([], 0.0001)) == 0.0


class _Model:
    optimizer = type("Opt", (), {"learning_rate": 0.01})()
    stop_training_reason = None


def drive_history(tmp_path, monkeypatch, plot_every, epochs, clock):
    """Run RunHistory through a train() call of ``epochs`` epochs, ``clock`` seconds
    apart; returns the epochs losses.png was drawn after."""
    drawn = []
    now = [1000.0]
    monkeypatch.setattr(training.time, "monotonic", lambda: now[0])
    import mrcnn.visualize as visualize
    monkeypatch.setattr(visualize, "plot_loss_history",
                        lambda entries, csv, path: drawn.append(entries[-1]["epoch"]))
    tmp_path.mkdir()
    history = training.RunHistory(str(tmp_path), "heads", plot_every=plot_every)
    history.set_model(_Model())
    history.on_train_begin()
    for epoch in range(epochs):
        now[0] += clock
        history.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    history.on_train_end()
    return drawn


def test_loss_plot_is_drawn_after_long_epochs_and_at_the_end(tmp_path, monkeypatch):
    # short epochs (5 s): drawn once, when the call ends, with every epoch in it
    assert drive_history(tmp_path / "a", monkeypatch, 60, 5, 5.0) == [5]
    # epochs of two minutes: after each (and not again at the end)
    assert drive_history(tmp_path / "b", monkeypatch, 60, 3, 120.0) == [1, 2, 3]
    # 25 s epochs: whenever a minute has passed since the last drawing, and at the end
    assert drive_history(tmp_path / "c", monkeypatch, 60, 7, 25.0) == [3, 6, 7]
    # history.json is written after every epoch all the same
    import json
    with open(str(tmp_path / "a" / "history.json")) as f:
        assert [h["epoch"] for h in json.load(f)] == [1, 2, 3, 4, 5]


def test_loss_plot_catches_up_when_training_ends_with_an_error(tmp_path):
    """Keras calls on_train_end only when fit() returns: train() draws losses.png in its
    own clean-up, so a run stopped by an error still has the picture of its epochs."""
    import os
    from mrcnn import model as modellib
    from samples.shapes.shapes import ShapesDataset
    from tiny_configs import tiny_config

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("stopped by the test")

    data = ShapesDataset()
    data.load_shapes(4, 64, 64, seed=1)
    data.prepare()
    config = tiny_config("plot", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64,
                         RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128))
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    with pytest.raises(RuntimeError, match="stopped by the test"):
        model.train(data, None, 0.001, 3, "heads", verbose=0, custom_callbacks=[Boom()])
    # two short epochs, well within a minute: drawn only by the clean-up
    assert os.path.isfile(os.path.join(model.log_dir, "losses.png"))
