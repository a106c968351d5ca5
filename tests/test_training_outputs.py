"""What a training run leaves in its folder: checkpoints every N epochs and the last,
the best by validation loss, history.json and losses.png (issue 17, item 9)."""
import functools
import json
import os
import types

import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.model import find_last_checkpoint
from mrcnn.weights import read_weight_file
from test_training import FastConfig, as_new, shapes
from test_training import _shared_fast_model, fast_model  # noqa: F401 (fixtures)


class OneStep(FastConfig):
    STEPS_PER_EPOCH = 1


def arrays(path):
    layers, _ = read_weight_file(path)
    return {g: [a for _, _, a in entries] for g, entries in layers.items()}


@pytest.fixture(scope="module")
def run(_shared_fast_model, tmp_path_factory):
    """The file's shared model trained 3 epochs of 1 step; what the tests read of the run
    (the shared model goes on to other tests)."""
    model = as_new(_shared_fast_model, tmp_path_factory.mktemp("logs"), steps=1)
    model.train(shapes(3), shapes(2, 2), 0.002, epochs=3, layers="heads", verbose=0,
                seed=0, save_every=2)
    return types.SimpleNamespace(
        log_dir=model.log_dir, model_dir=model.model_dir,
        find_last=functools.partial(find_last_checkpoint, model.model_dir, "tiny"))


def test_save_every_keeps_every_nth_epoch_the_last_and_the_best(run):
    names = sorted(f for f in os.listdir(run.log_dir) if f.endswith(".h5"))
    assert names == ["mask_rcnn_tiny_0002.h5", "mask_rcnn_tiny_0003.h5",
                     "mask_rcnn_tiny_best.h5"]
    # find_last is the last epoch, never the best file
    assert run.find_last().endswith("mask_rcnn_tiny_0003.h5")


def test_history_json_has_every_epoch_its_checkpoint_and_the_best(run):
    with open(os.path.join(run.log_dir, "history.json")) as f:
        history = json.load(f)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert [h["checkpoint"] for h in history] == [None, "mask_rcnn_tiny_0002.h5",
                                                  "mask_rcnn_tiny_0003.h5"]
    assert all(h["layers"] == "heads" and h["lr"] == pytest.approx(0.002) for h in history)
    # "best" marks each epoch that improved on every earlier val_loss
    running = np.minimum.accumulate([h["val_loss"] for h in history])
    expected = [True] + [h["val_loss"] < running[i] for i, h in enumerate(history[1:])]
    assert [h["best"] for h in history] == expected
    # the best file holds the weights of the last epoch marked best
    best_epoch = max(h["epoch"] for h in history if h["best"])
    if best_epoch in (2, 3):
        a = arrays(os.path.join(run.log_dir, "mask_rcnn_tiny_best.h5"))
        b = arrays(os.path.join(run.log_dir, "mask_rcnn_tiny_{:04d}.h5".format(best_epoch)))
        for name in ("mrcnn_class_logits", "rpn_model", "fpn_p2"):
            for x, y in zip(a[name], b[name]):
                np.testing.assert_array_equal(x, y)


def test_losses_png_is_written(run):
    path = os.path.join(run.log_dir, "losses.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 10000


def test_a_resumed_run_extends_history_and_keeps_improving_on_the_best(run):
    resumed = modellib.MaskRCNN("training", OneStep(), run.model_dir)
    resumed.load_weights(run.find_last(), by_name=True)
    with open(os.path.join(run.log_dir, "history.json")) as f:
        before = json.load(f)
    resumed.train(shapes(3), shapes(2, 2), 0.002, epochs=4, layers="all", verbose=0, seed=1)
    with open(os.path.join(run.log_dir, "history.json")) as f:
        after = json.load(f)
    assert after[:3] == before
    assert after[3]["epoch"] == 4 and after[3]["layers"] == "all"
    best_before = min(h["val_loss"] for h in before)
    assert after[3]["best"] == (after[3]["val_loss"] < best_before)


def test_a_run_stopped_early_by_a_callback_counts_and_saves_the_epochs_it_did(fast_model):
    class StopAfterFirstEpoch(modellib.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    model = fast_model(steps=1)
    history = model.train(shapes(3), None, 0.002, epochs=5, layers="heads", verbose=0,
                          save_every=3, custom_callbacks=[StopAfterFirstEpoch()])
    assert history.epoch == [0]
    assert model.epoch == 1                      # not 5: a later call resumes from 1
    # save_every=3 would skip epoch 1, but it is the last one this run did
    assert model.find_last().endswith("mask_rcnn_tiny_0001.h5")
