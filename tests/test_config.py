"""Config: classic defaults, derived attributes, and validation errors that name the fix."""
import json

import numpy as np
import pytest

from mrcnn.config import Config, ConfigError


def make(**attrs):
    attrs.setdefault("NAME", "t")
    return type("TestConfig", (Config,), attrs)()


def test_classic_defaults_and_derived_attributes():
    c = make(NUM_CLASSES=81)
    assert c.BACKBONE == "resnet101"
    assert c.IMAGES_PER_GPU == 2 and c.GPU_COUNT == 1 and c.BATCH_SIZE == 2
    assert c.IMAGE_SHAPE.tolist() == [1024, 1024, 3]
    assert c.IMAGE_META_SIZE == 12 + 81
    assert c.RPN_ANCHOR_SCALES == (32, 64, 128, 256, 512)
    assert c.POST_NMS_ROIS_INFERENCE == 1000 and c.PRE_NMS_LIMIT == 6000
    assert c.DETECTION_MIN_CONFIDENCE == 0.7 and c.TRAIN_BN is False
    np.testing.assert_allclose(c.MEAN_PIXEL, [123.7, 116.8, 103.9])
    assert set(c.LOSS_WEIGHTS) == {"rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
                                   "mrcnn_bbox_loss", "mrcnn_mask_loss"}


def test_crop_mode_image_shape_uses_min_dim():
    c = make(NUM_CLASSES=2, IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=256, GPU_COUNT=2,
             IMAGES_PER_GPU=3)
    assert c.IMAGE_SHAPE.tolist() == [256, 256, 3]
    assert c.BATCH_SIZE == 6


def test_to_dict_is_json_ready_and_display_prints(capsys):
    c = make(NUM_CLASSES=3)
    d = c.to_dict()
    json.dumps(d)
    assert d["NUM_CLASSES"] == 3 and d["IMAGE_SHAPE"] == [1024, 1024, 3]
    assert d["MEAN_PIXEL"] == [123.7, 116.8, 103.9]
    c.display()
    out = capsys.readouterr().out
    assert "NUM_CLASSES                    3" in out and "IMAGE_META_SIZE" in out


@pytest.mark.parametrize("attrs, attr, words", [
    ({"IMAGE_MAX_DIM": 1000}, "IMAGE_MAX_DIM", ["1000", "multiple of 64", "960 or 1024"]),
    ({"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 500}, "IMAGE_MIN_DIM", ["500", "448 or 512"]),
    ({"IMAGE_RESIZE_MODE": "pad64", "IMAGE_MIN_DIM": 100}, "IMAGE_MIN_DIM", ["100", "64 or 128"]),
    ({"IMAGE_RESIZE_MODE": "fit"}, "IMAGE_RESIZE_MODE", ["'fit'", "'square'", "'pad64'"]),
    ({"BACKBONE": "resnet152"}, "BACKBONE", ["resnet152", "'resnet50'", "'resnet101'"]),
    ({"NUM_CLASSES": 0}, "NUM_CLASSES", ["0", "background", "1 + the number"]),
    ({"MEAN_PIXEL": np.array([1.0, 2.0])}, "MEAN_PIXEL", ["IMAGE_CHANNEL_COUNT is 3"]),
    ({"IMAGE_CHANNEL_COUNT": 4}, "MEAN_PIXEL", ["IMAGE_CHANNEL_COUNT is 4", "give 4 values"]),
    ({"BACKBONE": lambda *a: None}, "COMPUTE_BACKBONE_SHAPE", ["callable BACKBONE"]),
    ({"TRAIN_BN": "yes"}, "TRAIN_BN", ["None"]),
    ({"TRAIN_BN_AFFINE": 0}, "TRAIN_BN_AFFINE", ["True or False"]),
    ({"MASK_SHAPE": [56, 56]}, "MASK_SHAPE", ["[28, 28]"]),
    ({"LOSS_WEIGHTS": {"rpn_loss": 1.0}}, "LOSS_WEIGHTS", ["rpn_loss"]),
    ({"IMAGES_PER_GPU": 0}, "IMAGES_PER_GPU", [">= 1"]),
])
def test_validation_errors_name_attribute_value_and_fix(attrs, attr, words):
    attrs.setdefault("NUM_CLASSES", 2)
    with pytest.raises(ConfigError) as e:
        make(**attrs)
    message = str(e.value)
    assert message.startswith("TestConfig.{} = ".format(attr)), message
    for w in words:
        assert w in message, message


def test_config_error_is_a_value_error_and_validate_rechecks_changes():
    c = make(NUM_CLASSES=2)
    c.IMAGE_MAX_DIM = 512
    c.IMAGES_PER_GPU = 1
    c.validate()
    assert c.IMAGE_SHAPE.tolist() == [512, 512, 3] and c.BATCH_SIZE == 1
    c.IMAGE_MAX_DIM = 500
    with pytest.raises(ValueError, match="IMAGE_MAX_DIM = 500"):
        c.validate()
