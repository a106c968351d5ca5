"""Config.COMPUTE_DTYPE: float16 and bfloat16 mixed precision for training and inference.

The layers that must stay exact (proposals, NMS, ROIAlign, detection targets and
detections, the outputs, the losses) compute in float32; the weights are float32 in
every mode, so a float16-trained checkpoint detects in a float32 model."""
import csv
import math
import os

import keras
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.config import ConfigError
from samples.shapes.shapes import ShapesDataset
from tiny_configs import tiny_config_class

# the small backbone at 64 px: a few training steps take seconds
SIZES = dict(IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64, RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128))
FLOAT32_LAYERS = ("ROI", "proposal_targets", "mrcnn_class", "mrcnn_bbox", "mrcnn_mask_rois",
                  "rpn_class_logits", "rpn_class", "rpn_bbox", "positive_rois")


def shapes(count=6, seed=1):
    d = ShapesDataset()
    d.load_shapes(count, 64, 64, seed=seed)
    d.prepare()
    return d


def config(dtype, **overrides):
    return tiny_config_class("prec", COMPUTE_DTYPE=dtype, **dict(SIZES, **overrides))()


def read_rows(log_dir):
    with open(os.path.join(log_dir, "losses.csv"), newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("value,hint", [("fp16", "'float16'"), ("bf16", "'bfloat16'"),
                                        ("float64", "'float32', 'bfloat16', 'float16'")])
def test_unknown_compute_dtype_is_refused_naming_the_fix(value, hint):
    with pytest.raises(ConfigError) as e:
        config(value)
    assert "COMPUTE_DTYPE = {!r}".format(value) in str(e.value) and hint in str(e.value)


def test_default_float32_model_has_only_float32_layers(tmp_path):
    model = modellib.MaskRCNN("inference", config("float32", IMAGES_PER_GPU=1), tmp_path)
    assert {l.dtype_policy.name for l in model.keras_model.layers} == {"float32"}
    assert keras.config.dtype_policy().name == "float32"


def test_float16_training_scales_the_loss_skips_overflows_and_detects_in_float32(tmp_path):
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("training", config("float16", STEPS_PER_EPOCH=8), tmp_path)
    # the global policy is back to float32 for whatever is built next
    assert keras.config.dtype_policy().name == "float32"
    assert model.keras_model.get_layer("fpn_p2").dtype_policy.name == "mixed_float16"
    for name in FLOAT32_LAYERS:
        assert model.keras_model.get_layer(name).dtype_policy.name == "float32", name
    history = model.train(shapes(), None, 0.01, 1, "all", seed=0, verbose=0)
    assert isinstance(model.keras_model.optimizer, keras.optimizers.LossScaleOptimizer)

    rows = read_rows(model.log_dir)
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    scales = [float(r["loss_scale"]) for r in rows]
    skipped = [int(r["skipped"]) for r in rows]
    # the scale starts at 2**15 and halves exactly at each skipped step
    expected, scale = [], 2.0 ** 15
    for s in skipped:
        scale = scale / 2 if s else scale
        expected.append(scale)
    assert scales == expected
    # skipped steps are written as nan; every applied step's losses are finite
    applied = [r for r in rows if r["skipped"] == "0"]
    assert len(applied) >= 3
    assert all(math.isfinite(float(r[k])) for r in applied for k in ("loss", "rpn_class_loss"))
    assert all(math.isnan(float(r["loss"])) for r in rows if r["skipped"] == "1")
    # the epoch means are those of the applied steps, and the history shows the scale
    mean = np.mean([float(r["loss"]) for r in applied])
    assert history.history["loss"][0] == pytest.approx(mean, rel=1e-4)
    assert history.history["loss_scale"][0] == scales[-1]
    assert history.history["skipped_steps"][0] == sum(skipped)
    # the checkpoint was saved (skipped steps are not divergence) and runs in float32
    weights = model.find_last()
    assert weights.endswith("_0001.h5")
    inference = modellib.MaskRCNN("inference", config("float32", IMAGES_PER_GPU=1), tmp_path)
    inference.load_weights(weights, by_name=True)
    r = inference.detect([shapes(1, 5).load_image(0)])[0]
    assert r["rois"].shape[1] == 4 and len(r["scores"]) > 0
    assert np.all(np.isfinite(r["scores"])) and r["scores"].dtype == np.float32


def test_bfloat16_trains_with_finite_losses_and_detects_with_float32_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("training", config("bfloat16", STEPS_PER_EPOCH=3), tmp_path)
    assert model.keras_model.get_layer("fpn_p2").dtype_policy.name == "mixed_bfloat16"
    history = model.train(shapes(), None, 0.01, 1, "all", seed=0, verbose=0)
    rows = read_rows(model.log_dir)
    assert len(rows) == 3 and "loss_scale" not in rows[0]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert math.isfinite(history.history["loss"][0])

    weights = model.find_last()
    bf16 = modellib.MaskRCNN("inference", config("bfloat16", IMAGES_PER_GPU=1), tmp_path)
    bf16.load_weights(weights, by_name=True)
    assert bf16.keras_model.get_layer("fpn_p2").compute_dtype == "bfloat16"
    assert bf16.keras_model.get_layer("mrcnn_detection").compute_dtype == "float32"
    image = shapes(1, 5).load_image(0)
    r = bf16.detect([image])[0]
    assert r["masks"].dtype == bool and r["masks"].shape[:2] == image.shape[:2]
    assert r["scores"].dtype == np.float32 and len(r["scores"]) > 0
    # the same weights in float32 find about the same best box
    f32 = modellib.MaskRCNN("inference", config("float32", IMAGES_PER_GPU=1), tmp_path)
    f32.load_weights(weights, by_name=True)
    r32 = f32.detect([image])[0]
    assert abs(float(r32["scores"][0]) - float(r["scores"][0])) < 0.05


class FakeModel(object):
    stop_training = False
    stop_training_reason = None


def test_step_logger_counts_skipped_steps_apart_and_stops_only_below_scale_one(tmp_path):
    from mrcnn.config import LOSS_NAMES
    from mrcnn.training import StepLossLogger
    logger = StepLossLogger(str(tmp_path), steps_per_epoch=10, loss_scaling=True)
    logger.set_model(FakeModel())
    logger.on_train_begin()
    logger.on_epoch_begin(0)

    def logs(mean, skipped, scale):
        values = {n: mean for n in ("loss",) + LOSS_NAMES}
        return dict(values, skipped_steps=float(skipped), loss_scale=float(scale))
    # step 1 skipped (scale 2**15 -> 2**14; the means hold no step yet: nan), steps 2 and
    # 3 applied with losses 4 and 2 (running means 4, 3), step 4 skipped again
    logger.on_train_batch_end(0, logs(float("nan"), 1, 2 ** 14))
    logger.on_train_batch_end(1, logs(4.0, 1, 2 ** 14))
    logger.on_train_batch_end(2, logs(3.0, 1, 2 ** 14))
    logger.on_train_batch_end(3, logs(3.0, 2, 2 ** 13))
    assert not logger.model.stop_training and logger.skipped_steps == 2
    # a skipped step that leaves the scale below 1: the gradients overflow unscaled
    logger.on_train_batch_end(4, logs(3.0, 3, 0.5))
    assert logger.model.stop_training
    assert logger.model.stop_training_reason.startswith(
        "training stopped at step 5 (epoch 1, batch 5): the float16 gradients overflow even "
        "without loss scaling (loss scale 0.5 after 3 skipped steps)")
    logger.on_train_end()
    rows = read_rows(str(tmp_path))
    assert [(r["loss"], r["loss_scale"], r["skipped"]) for r in rows] == [
        ("nan", "16384", "1"), ("4", "16384", "0"), ("2", "16384", "0"), ("nan", "8192", "1")]


def test_faster_compute_dtype_times_each_candidate_and_picks_the_fastest():
    from mrcnn.precision import faster_compute_dtype
    best, times = faster_compute_dtype(("float32", "bfloat16"), repeats=1)
    assert set(times) == {"float32", "bfloat16"}
    assert all(t > 0 for t in times.values())
    assert best == min(times, key=times.get)
    # the probe's layers leave the global policy as it was
    assert keras.config.dtype_policy().name == "float32"
