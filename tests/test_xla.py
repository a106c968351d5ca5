"""jit_compile (XLA) for the train step: refused with a clear error where XLA cannot
compile the graph, before any weight changes."""
import os

import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.config import ConfigError
from mrcnn.training import XlaNotSupported
from samples.shapes.shapes import ShapesDataset
from tiny_configs import tiny_config

SIZES = dict(IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64, RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128))


def test_train_jit_compile_must_be_a_bool():
    with pytest.raises(ConfigError, match=r"TRAIN_JIT_COMPILE = 'yes': use True or False"):
        tiny_config("xla", TRAIN_JIT_COMPILE="yes", **SIZES)


def test_jit_compile_is_refused_naming_the_op_and_the_fix_before_any_update(tmp_path):
    data = ShapesDataset()
    data.load_shapes(4, 64, 64, seed=1)
    data.prepare()
    model = modellib.MaskRCNN("training", tiny_config("xla", TRAIN_JIT_COMPILE=True, **SIZES),
                              str(tmp_path))
    before = [w.numpy().copy() for w in model.keras_model.weights]
    with pytest.raises(XlaNotSupported) as e:
        model.train(data, None, 0.01, 1, "all", seed=0, verbose=0)
    text = str(e.value)
    assert text.startswith("jit_compile=True: XLA cannot compile this Mask R-CNN train step")
    # ROIAlign's crop_and_resize is the first op XLA has no kernel for
    assert "(no XLA kernel for the op CropAndResize)" in text
    assert "Train with jit_compile=False" in text
    after = [w.numpy() for w in model.keras_model.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert not [f for f in os.listdir(model.log_dir) if f.endswith(".h5")]
