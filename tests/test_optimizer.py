"""The training step's cheaper pieces give the same numbers: the fused SGD update equals
Keras' SGD bit for bit, the L2 decay equals its formula, and losses.png is drawn at most
once a minute and at the end of a train() call."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import training
from mrcnn.config import Config
from mrcnn.losses import l2_weight_decay
from mrcnn.optimizer import MomentumSGD, make_optimizer


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
