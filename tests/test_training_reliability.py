"""Training never loses data or keeps a broken model (issue 16, items 1-4).

- a diverged epoch is never checkpointed, with or without validation data;
- losses.csv holds every finished step, on disk as soon as the step ends, with its
  header, and a resumed run continues after the last checkpoint without duplicates;
- a dataset whose images all get skipped fails fast with a count and the reason;
- an exception raised by load_image / load_mask reaches the caller as itself, naming
  the image, not as a TensorFlow iterator error.
"""
import csv
import logging
import os

import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.pipeline import NoTrainingSamples
from mrcnn.training import TrainingDiverged
from mrcnn.weights import read_weight_file
from samples.shapes.shapes import ShapesDataset
from test_training import FastConfig, read_steps, shapes
from test_training import _shared_fast_model, fast_model  # noqa: F401 (fixtures)


def checkpoints(log_dir):
    return sorted(f for f in os.listdir(log_dir) if f.endswith(".h5"))


# ---------------------------------------------------------------- item 1

def test_diverged_epoch_with_nan_validation_loss_is_not_checkpointed(fast_model):
    # one step per epoch: the epoch's training loss is computed before the update, so
    # it is finite; the huge step makes the weights explode, which only the validation
    # loss (computed after the update) shows
    model = fast_model(steps=1)
    with pytest.raises(TrainingDiverged, match=r"epoch 1: val_\w*loss is (nan|inf)"):
        model.train(shapes(3), shapes(2, 2), 1e30, epochs=2, layers="heads", verbose=0)
    assert checkpoints(model.log_dir) == []
    with pytest.raises(FileNotFoundError):
        model.find_last()


def test_diverged_epoch_without_validation_data_is_not_checkpointed(fast_model):
    # no validation set: the loss of a fixed training batch after the epoch's updates
    # is what shows the divergence
    model = fast_model(steps=1)
    with pytest.raises(TrainingDiverged, match=r"epoch 1: .*loss .*after the epoch"):
        model.train(shapes(3), None, 1e30, epochs=2, layers="heads", verbose=0)
    assert checkpoints(model.log_dir) == []


def test_a_healthy_epoch_is_checkpointed_with_finite_weights(fast_model):
    model = fast_model(steps=1)
    model.train(shapes(3), None, 0.001, epochs=1, layers="heads", verbose=0)
    assert checkpoints(model.log_dir) == ["mask_rcnn_tiny_0001.h5", "mask_rcnn_tiny_best.h5"]
    layers, _ = read_weight_file(model.find_last())
    assert all(np.isfinite(a).all() for entries in layers.values() for _, _, a in entries)


def test_find_last_skips_an_unreadable_checkpoint(fast_model):
    model = fast_model(steps=1)
    model.train(shapes(3), None, 0.001, epochs=2, layers="heads", verbose=0)
    last = os.path.join(model.log_dir, "mask_rcnn_tiny_0002.h5")
    with open(last, "r+b") as f:      # a file cut short (disk full, copied in part)
        f.truncate(100)
    assert model.find_last() == os.path.join(model.log_dir, "mask_rcnn_tiny_0001.h5")


# ---------------------------------------------------------------- item 2

def test_losses_csv_rows_are_on_disk_when_each_step_ends(fast_model):
    seen = []

    class Peek(modellib.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            # read by another handle, as a crash would leave it
            with open(os.path.join(model.log_dir, "losses.csv")) as f:
                seen.append(len(list(csv.DictReader(f))))

    model = fast_model()
    model.train(shapes(3), None, 0.001, epochs=1, layers="heads", verbose=0,
                custom_callbacks=[Peek()])
    # the logger runs before custom callbacks: step k's row is there when it ends
    assert seen == [1, 2]


def test_resume_keeps_the_header_and_each_finished_step_once(fast_model):
    model = fast_model()
    model.train(shapes(3), None, 0.001, epochs=2, layers="heads", verbose=0, seed=1)
    path = os.path.join(model.log_dir, "losses.csv")
    # a run killed in epoch 3 after one finished step and half a row, after the
    # checkpoint of epoch 2
    rows = read_steps(model.log_dir)
    with open(path, "a") as f:
        f.write("5,3," + ",".join(["0.5"] * 6) + "\n")
        f.write("6,3,0.4")
    resumed = modellib.MaskRCNN("training", FastConfig(), model.model_dir)
    resumed.load_weights(resumed.find_last(), by_name=True)
    assert resumed.epoch == 2
    resumed.train(shapes(3), None, 0.001, epochs=3, layers="heads", verbose=0, seed=2)
    after = read_steps(model.log_dir)
    assert [int(r["step"]) for r in after] == [1, 2, 3, 4, 5, 6]
    assert [int(r["epoch"]) for r in after] == [1, 1, 2, 2, 3, 3]
    assert after[:4] == rows                      # the earlier steps, untouched
    assert float(after[4]["loss"]) != 0.5         # the killed run's step 5 was replaced


def test_an_empty_losses_csv_gets_its_header(fast_model):
    model = fast_model()
    os.makedirs(model.log_dir)
    open(os.path.join(model.log_dir, "losses.csv"), "w").close()   # killed before a row
    model.train(shapes(3), None, 0.001, epochs=1, layers="heads", verbose=0)
    with open(os.path.join(model.log_dir, "losses.csv")) as f:
        header = f.readline().strip().split(",")
    assert header[:3] == ["step", "epoch", "loss"]
    assert [int(r["step"]) for r in read_steps(model.log_dir)] == [1, 2]


# ---------------------------------------------------------------- item 3

class NoInstances(ShapesDataset):
    def load_mask(self, image_id):
        info = self.image_info[image_id]
        return np.zeros([info["height"], info["width"], 0], bool), np.zeros([0], np.int32)


def test_all_images_skipped_fails_fast_with_the_count_and_the_reason(fast_model):
    d = NoInstances()
    d.load_shapes(5, 64, 64, seed=1)
    d.prepare()
    model = fast_model()
    with pytest.raises(NoTrainingSamples) as e:
        model.train(d, None, 0.001, epochs=1, layers="heads", verbose=0)
    message = str(e.value)
    assert "all 5 images" in message
    assert "5 have no instance in load_mask" in message


def test_skipped_images_are_warned_with_a_count(fast_model, caplog):
    class SomeEmpty(ShapesDataset):
        def load_mask(self, image_id):
            if image_id == 1:
                return NoInstances.load_mask(self, image_id)
            return super().load_mask(image_id)

    d = SomeEmpty()
    d.load_shapes(3, 64, 64, seed=1)
    d.prepare()
    model = fast_model()
    with caplog.at_level(logging.WARNING, logger="mrcnn"):
        model.train(d, None, 0.001, epochs=1, layers="heads", verbose=0, seed=0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("skipping image 1" in w and "1 skipped so far" in w for w in warnings), warnings


# ---------------------------------------------------------------- item 4

class TruncatedMask(ShapesDataset):
    def load_mask(self, image_id):
        if image_id == 2:
            raise OSError("image file is truncated (4 bytes not processed)")
        return super().load_mask(image_id)

    def image_reference(self, image_id):
        return "masks/img{}.png".format(image_id)


def test_a_load_mask_error_reaches_the_caller_as_itself_naming_the_image(fast_model):
    d = TruncatedMask()
    d.load_shapes(3, 64, 64, seed=1)
    d.prepare()
    model = fast_model(steps=3)   # one pass over the 3 images: image 2 is always reached
    with pytest.raises(OSError) as e:
        model.train(d, None, 0.001, epochs=1, layers="heads", verbose=0)
    assert type(e.value) is OSError          # not tf.errors.UnknownError
    message = str(e.value)
    assert "image_id 2" in message and "masks/img2.png" in message
    assert "image file is truncated" in message


def test_a_validation_load_image_error_reaches_the_caller_as_itself(fast_model):
    class BadImage(ShapesDataset):
        def load_image(self, image_id):
            raise ValueError("cannot decode")

    v = BadImage()
    v.load_shapes(2, 64, 64, seed=2)
    v.prepare()
    model = fast_model()
    with pytest.raises(ValueError, match=r"image_id \d.*cannot decode"):
        model.train(shapes(3), v, 0.001, epochs=1, layers="heads", verbose=0)
