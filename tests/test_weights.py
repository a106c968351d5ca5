"""load_weights on classic Keras 2 HDF5 files written here with h5py, Keras 3 files,
and our own checkpoints."""
import h5py
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.weights import WeightsError
from tiny_configs import tiny_config

CLASS_LAYERS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]


def small_config(num_classes=4):
    """ResNet-50 (the classic weight layers) at 128 px, for inference models."""
    return tiny_config("small", backbone="resnet50", NUM_CLASSES=num_classes,
                       IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128, POST_NMS_ROIS_INFERENCE=50,
                       DETECTION_MAX_INSTANCES=5)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return modellib.MaskRCNN("inference", small_config(), str(tmp_path_factory.mktemp("logs")))


def classic_layout(num_classes, seed=0):
    """What a classic Keras 2 save_weights file holds for a few layers:
    {group: [(weight name, array)]}, in Keras 2's naming."""
    rng = np.random.RandomState(seed)

    def a(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    nc = num_classes
    return {
        "conv1": [("conv1/kernel:0", a(7, 7, 3, 64)), ("conv1/bias:0", a(64))],
        "bn_conv1": [("bn_conv1/gamma:0", a(64)), ("bn_conv1/beta:0", a(64)),
                     ("bn_conv1/moving_mean:0", a(64)),
                     ("bn_conv1/moving_variance:0", np.abs(a(64)))],
        "res4f_branch2c": [("res4f_branch2c/kernel:0", a(1, 1, 256, 1024)),
                           ("res4f_branch2c/bias:0", a(1024))],
        "rpn_model": [("rpn_conv_shared/kernel:0", a(3, 3, 256, 512)),
                      ("rpn_conv_shared/bias:0", a(512)),
                      ("rpn_class_raw/kernel:0", a(1, 1, 512, 6)),
                      ("rpn_class_raw/bias:0", a(6)),
                      ("rpn_bbox_pred/kernel:0", a(1, 1, 512, 12)),
                      ("rpn_bbox_pred/bias:0", a(12))],
        "mrcnn_mask_bn1": [("mrcnn_mask_bn1/gamma:0", a(256)), ("mrcnn_mask_bn1/beta:0", a(256)),
                           ("mrcnn_mask_bn1/moving_mean:0", a(256)),
                           ("mrcnn_mask_bn1/moving_variance:0", np.abs(a(256)))],
        "mrcnn_class_logits": [("mrcnn_class_logits/kernel:0", a(1024, nc)),
                               ("mrcnn_class_logits/bias:0", a(nc))],
        "mrcnn_bbox_fc": [("mrcnn_bbox_fc/kernel:0", a(1024, 4 * nc)),
                          ("mrcnn_bbox_fc/bias:0", a(4 * nc))],
        "mrcnn_mask": [("mrcnn_mask/kernel:0", a(1, 1, 256, nc)), ("mrcnn_mask/bias:0", a(nc))],
        # a layer this model does not have (e.g. from another head): ignored by name
        "some_other_layer": [("some_other_layer/kernel:0", a(3, 3))],
    }


def write_classic_h5(path, layout, names_as="bytes", split=False, wrap=False,
                     rpn_prefix=False):
    """Write the Keras 2 layout with h5py, as the classic library's files are."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if wrap else f
        names = list(layout)
        enc = (lambda s: s.encode("utf8")) if names_as == "bytes" else (lambda s: s)
        values = [enc(n) for n in names]
        if names_as == "str":
            values = np.array(names, dtype=h5py.string_dtype())
        if split:
            root.attrs["layer_names0"] = values[:4]
            root.attrs["layer_names1"] = values[4:]
        else:
            root.attrs["layer_names"] = values
        root.attrs["backend"] = b"tensorflow"
        for layer, weights in layout.items():
            g = root.create_group(layer)
            weight_names = []
            for name, array in weights:
                if rpn_prefix and layer == "rpn_model":
                    name = "rpn_model/" + name
                weight_names.append(name)
                g.create_dataset(name, data=array)
            g.attrs["weight_names"] = [enc(n) for n in weight_names]
    return path


def value(model, layer, i=0):
    keras_model = model.keras_model
    if layer.startswith("rpn_"):
        l = keras_model.get_layer("rpn_model").get_layer(layer)
    else:
        l = keras_model.get_layer(layer)
    return l.weights[i].numpy()


@pytest.mark.parametrize("variant", [
    dict(), dict(names_as="str"), dict(split=True), dict(wrap=True), dict(rpn_prefix=True),
])
def test_classic_h5_loads_by_name(model, tmp_path, variant):
    layout = classic_layout(4)
    path = write_classic_h5(str(tmp_path / "classic.h5"), layout, **variant)
    report = model.load_weights(path, by_name=True)
    assert "conv1" in report["loaded"] and "rpn_conv_shared" in report["loaded"]
    assert report["not_in_model"] == ["some_other_layer"]
    np.testing.assert_array_equal(value(model, "conv1"), layout["conv1"][0][1])
    np.testing.assert_array_equal(value(model, "bn_conv1", 3), layout["bn_conv1"][3][1])
    np.testing.assert_array_equal(value(model, "res4f_branch2c", 1), layout["res4f_branch2c"][1][1])
    np.testing.assert_array_equal(value(model, "rpn_class_raw"), layout["rpn_model"][2][1])
    np.testing.assert_array_equal(value(model, "rpn_bbox_pred", 1), layout["rpn_model"][5][1])
    np.testing.assert_array_equal(value(model, "mrcnn_mask"), layout["mrcnn_mask"][0][1])
    np.testing.assert_array_equal(value(model, "mrcnn_mask_bn1", 2), layout["mrcnn_mask_bn1"][2][1])


def test_exclude_leaves_excluded_layers_untouched(model, tmp_path):
    path = write_classic_h5(str(tmp_path / "a.h5"), classic_layout(4, seed=1))
    before = value(model, "mrcnn_class_logits")
    rpn_before = value(model, "rpn_conv_shared")
    model.load_weights(path, by_name=True, exclude=CLASS_LAYERS + ["rpn_model"])
    np.testing.assert_array_equal(value(model, "mrcnn_class_logits"), before)
    np.testing.assert_array_equal(value(model, "rpn_conv_shared"), rpn_before)
    np.testing.assert_array_equal(value(model, "conv1"), classic_layout(4, seed=1)["conv1"][0][1])


def test_other_num_classes_without_exclude_names_layer_shapes_and_fix(model, tmp_path):
    path = write_classic_h5(str(tmp_path / "coco.h5"), classic_layout(81, seed=2))
    before = value(model, "conv1")
    with pytest.raises(WeightsError) as e:
        model.load_weights(path, by_name=True)
    text = str(e.value)
    assert "mrcnn_bbox_fc" in text and "(1024, 324)" in text and "(1024, 16)" in text
    assert 'exclude=["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]' in text
    # nothing was changed by the failed load
    np.testing.assert_array_equal(value(model, "conv1"), before)
    model.load_weights(path, by_name=True, exclude=CLASS_LAYERS)
    np.testing.assert_array_equal(value(model, "conv1"), classic_layout(81, seed=2)["conv1"][0][1])


def test_by_name_false_requires_the_same_layers(model, tmp_path):
    path = write_classic_h5(str(tmp_path / "partial.h5"), classic_layout(4))
    with pytest.raises(WeightsError, match="by_name=False.*by_name=True"):
        model.load_weights(path, by_name=False)


def test_missing_and_truncated_files_give_clear_errors(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="weights/README.md"):
        model.load_weights(str(tmp_path / "nope.h5"), by_name=True)
    good = write_classic_h5(str(tmp_path / "good.h5"), classic_layout(4))
    data = open(good, "rb").read()
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError, match="truncated"):
        model.load_weights(str(bad), by_name=True)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(WeightsError, match="truncated or not a Keras weight file"):
        model.load_weights(str(junk), by_name=True)


def test_own_checkpoint_round_trip_and_epoch_from_name(tmp_path):
    config = small_config()
    a = modellib.MaskRCNN("inference", config, str(tmp_path))
    folder = tmp_path / "small20261122T0930"
    path = a.save_weights(str(folder / "mask_rcnn_small_0007.h5"))
    with h5py.File(path, "r") as f:   # the classic layout
        assert b"rpn_model" in list(f.attrs["layer_names"])
        assert b"rpn_conv_shared/kernel:0" in list(f["rpn_model"].attrs["weight_names"])
    b = modellib.MaskRCNN("inference", config, str(tmp_path))
    b.load_weights(path, by_name=False)
    for wa, wb in zip(a.keras_model.weights, b.keras_model.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())
    assert b.epoch == 7
    assert b.log_dir == str(folder)
    assert b.find_last() == path


def test_keras3_weights_file_loads_by_name(model, tmp_path):
    other = modellib.MaskRCNN("inference", small_config(), str(tmp_path))
    path = str(tmp_path / "k3.weights.h5")
    other.keras_model.save_weights(path)
    model.load_weights(path, by_name=True)
    np.testing.assert_array_equal(value(model, "res3b_branch2b"), value(other, "res3b_branch2b"))
    np.testing.assert_array_equal(value(model, "rpn_bbox_pred"), value(other, "rpn_bbox_pred"))


def test_find_last_without_runs_says_what_to_do(tmp_path):
    m = modellib.MaskRCNN("inference", small_config(), str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="NAME='small'"):
        m.find_last()


def test_get_imagenet_weights_finds_local_file_or_says_where_to_put_it(model, tmp_path,
                                                                      monkeypatch):
    folder = tmp_path / "w"
    folder.mkdir()
    monkeypatch.setattr(modellib, "IMAGENET_WEIGHTS_URL", "http://127.0.0.1:9/none.h5")
    monkeypatch.delenv("MRCNN_WEIGHTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        model.get_imagenet_weights(cache_dir=str(folder))
    assert str(folder / modellib.IMAGENET_WEIGHTS_NAME) in str(e.value)
    assert not list(folder.iterdir())  # no partial download left behind
    (folder / modellib.IMAGENET_WEIGHTS_NAME).write_bytes(b"x")
    assert model.get_imagenet_weights(cache_dir=str(folder)) == \
        str(folder / modellib.IMAGENET_WEIGHTS_NAME)


def test_weights_num_classes_reads_the_class_layer_width(model, tmp_path):
    from mrcnn.weights import weights_num_classes
    assert weights_num_classes(write_classic_h5(str(tmp_path / "coco.h5"),
                                                classic_layout(81))) == 81
    backbone_only = {k: v for k, v in classic_layout(81).items() if not k.startswith("mrcnn")}
    assert weights_num_classes(write_classic_h5(str(tmp_path / "bb.h5"), backbone_only)) is None
    ours = str(tmp_path / "ours.h5")
    model.save_weights(ours)
    assert weights_num_classes(ours) == 4


def test_find_last_checkpoint_without_a_model(tmp_path):
    from mrcnn.model import find_last_checkpoint
    for run, epochs in (("small20261101T0900", [1, 2]), ("small20261102T0900", [1, 3]),
                        ("other20261103T0900", [9])):
        (tmp_path / run).mkdir()
        for e in epochs:   # minimal weight files (find_last skips unreadable ones)
            with h5py.File(str(tmp_path / run / "mask_rcnn_x_{:04d}.h5".format(e)), "w") as f:
                f.attrs["layer_names"] = np.array([], dtype="S")
    assert find_last_checkpoint(str(tmp_path), "SMALL").endswith(
        "small20261102T0900/mask_rcnn_x_0003.h5")
    with pytest.raises(FileNotFoundError, match="NAME='nope'"):
        find_last_checkpoint(str(tmp_path), "nope")


# ---------------------------------------------------------------- issue 16, items 9-10

def resnet_layout(depth, seed=0):
    """The classic layer names of a whole ResNet backbone (tiny arrays: the tests only
    get as far as the name checks)."""
    from mrcnn.weights import RESNET_DEPTHS
    rng = np.random.RandomState(seed)
    layout = {}
    for stage, blocks in RESNET_DEPTHS[depth].items():
        for i in range(blocks):
            letter = chr(ord("a") + i)
            for branch in ("2a", "2b", "2c") + (("1",) if i == 0 else ()):
                name = "res{}{}_branch{}".format(stage, letter, branch)
                layout[name] = [(name + "/kernel:0", rng.rand(1).astype(np.float32))]
    return layout


def test_resnet101_file_into_resnet50_model_raises_with_the_fix(model, tmp_path):
    path = write_classic_h5(str(tmp_path / "mask_rcnn_coco.h5"), resnet_layout(101))
    before = value(model, "res4a_branch2a")
    with pytest.raises(WeightsError) as e:
        model.load_weights(path, by_name=True)
    text = str(e.value)
    assert "mask_rcnn_coco.h5" in text
    assert "ResNet-101 (stage 4: 23 blocks a..w)" in text
    assert "ResNet-50 (stage 4: 6 blocks a..f)" in text
    assert 'BACKBONE = "resnet101"' in text and "allow_partial=True" in text
    np.testing.assert_array_equal(value(model, "res4a_branch2a"), before)


def test_resnet50_file_into_resnet101_model_raises(tmp_path):
    config = small_config()
    config.BACKBONE = "resnet101"
    deep = modellib.MaskRCNN("inference", config, str(tmp_path))
    path = write_classic_h5(str(tmp_path / "r50.h5"), resnet_layout(50))
    with pytest.raises(WeightsError, match=r'ResNet-50 .*ResNet-101.*BACKBONE = "resnet50"'):
        deep.load_weights(path, by_name=True)


def test_allow_partial_loads_the_shared_backbone_layers_and_warns(model, tmp_path, caplog):
    layout = classic_layout(4, seed=5)
    rng = np.random.RandomState(5)
    for i in range(23):    # stage 4's last convs of a ResNet-101, blocks a..w
        name = "res4{}_branch2c".format(chr(ord("a") + i))
        layout[name] = [(name + "/kernel:0", rng.rand(1, 1, 256, 1024).astype(np.float32)),
                        (name + "/bias:0", rng.rand(1024).astype(np.float32))]
    path = write_classic_h5(str(tmp_path / "r101_part.h5"), layout)
    # a stage-4 run from block a with blocks g..w the model lacks
    with caplog.at_level("WARNING", logger="mrcnn"):
        report = model.load_weights(path, by_name=True, allow_partial=True)
    assert "res4w_branch2c" in report["not_in_model"]
    assert any("ResNet-101" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(value(model, "conv1"), layout["conv1"][0][1])
    np.testing.assert_array_equal(value(model, "res4b_branch2c"), layout["res4b_branch2c"][0][1])


def test_nan_in_a_weight_file_raises_naming_the_file_and_layer(model, tmp_path):
    layout = classic_layout(4, seed=3)
    kernel = layout["rpn_model"][0][1].copy()
    kernel.reshape(-1)[:1024] = np.nan          # a few KiB of rot decoded as NaN
    layout["rpn_model"][0] = ("rpn_conv_shared/kernel:0", kernel)
    path = write_classic_h5(str(tmp_path / "rotten.h5"), layout)
    before = value(model, "conv1")
    with pytest.raises(WeightsError) as e:
        model.load_weights(path, by_name=True)
    text = str(e.value)
    assert "rotten.h5" in text and "rpn_conv_shared" in text and "1024 NaN" in text
    np.testing.assert_array_equal(value(model, "conv1"), before)   # nothing loaded


def test_a_file_sharing_no_layer_raises_naming_the_file(model, tmp_path):
    rng = np.random.RandomState(0)
    layout = {"dense_1": [("dense_1/kernel:0", rng.rand(4, 4).astype(np.float32))],
              "dense_2": [("dense_2/kernel:0", rng.rand(4, 2).astype(np.float32))]}
    path = write_classic_h5(str(tmp_path / "unrelated.h5"), layout)
    with pytest.raises(WeightsError, match=r"unrelated\.h5 shares no layer with the model.*"
                                           r"dense_1, dense_2"):
        model.load_weights(path, by_name=True)


def test_our_checkpoints_carry_checksums_so_bit_rot_is_caught(model, tmp_path):
    path = model.save_weights(str(tmp_path / "ours.h5"))
    with h5py.File(path, "r") as f:
        dataset = f["conv1"]["conv1/kernel:0"]
        assert dataset.fletcher32
        offset = dataset.id.get_offset() if dataset.chunks is None else \
            dataset.id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as f:           # flip bytes in the middle of conv1's kernel
        f.seek(offset + 100)
        f.write(b"\xff" * 64)
    with pytest.raises(WeightsError, match=r"ours\.h5: layer conv1 weight conv1/kernel:0"):
        model.load_weights(path, by_name=True)


def test_weights_backbone_names_the_depth(tmp_path):
    from mrcnn.weights import weights_backbone
    assert weights_backbone(write_classic_h5(str(tmp_path / "a.h5"),
                                             resnet_layout(101))) == "resnet101"
    assert weights_backbone(write_classic_h5(str(tmp_path / "b.h5"),
                                             resnet_layout(50))) == "resnet50"
    assert weights_backbone(write_classic_h5(str(tmp_path / "c.h5"), classic_layout(4))) is None
