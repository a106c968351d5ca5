"""torchvision's Mask R-CNN v1 in mrcnn: the converter, the TorchvisionConfig flavour,
and (marker ``torch``) detection parity with torchvision itself.

The parity test runs torchvision in a separate Python that has torch (tests/
torchvision_reference.py): $MRCNN_TORCH_PYTHON, else <repo>/.venv-torch/bin/python,
else ../main/.venv-torch/bin/python. Run it with ``pytest -m torch tests/test_torchvision.py``.
"""
import json
import os
import subprocess
import sys
from collections import OrderedDict

import h5py
import numpy as np
import pytest

from fake_pth import write_pth
from mrcnn.config import Config, ConfigError, TorchvisionConfig
from mrcnn.convert_torchvision import ConversionError, config_path_for, convert_torchvision
from mrcnn.torch_pickle import PthError, load_pth
from mrcnn.weights import read_weight_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------- synthetic state_dicts

def tiny_resnet(rng, prefix="", blocks=(3, 4, 6, 3), stem=8, width=4):
    """A torchvision-layout bottleneck ResNet state_dict with small widths."""
    sd = OrderedDict()

    def conv(name, out, cin, k):
        sd[name + ".weight"] = rng.randn(out, cin, k, k).astype(np.float32)

    def bn(name, c):
        sd[name + ".weight"] = rng.rand(c).astype(np.float32) + 0.5
        sd[name + ".bias"] = rng.randn(c).astype(np.float32)
        sd[name + ".running_mean"] = rng.randn(c).astype(np.float32)
        sd[name + ".running_var"] = rng.rand(c).astype(np.float32) + 0.5
        sd[name + ".num_batches_tracked"] = np.array(7, dtype=np.int64)

    conv(prefix + "conv1", stem, 3, 7)
    bn(prefix + "bn1", stem)
    cin = stem
    for layer, n in enumerate(blocks, start=1):
        mid = width * 2 ** (layer - 1)
        for i in range(n):
            p = "{}layer{}.{}".format(prefix, layer, i)
            conv(p + ".conv1", mid, cin, 1)
            bn(p + ".bn1", mid)
            conv(p + ".conv2", mid, mid, 3)
            bn(p + ".bn2", mid)
            conv(p + ".conv3", 4 * mid, mid, 1)
            bn(p + ".bn3", 4 * mid)
            if i == 0:
                conv(p + ".downsample.0", 4 * mid, cin, 1)
                bn(p + ".downsample.1", 4 * mid)
            cin = 4 * mid
    return sd


def tiny_maskrcnn(rng, num_classes=5, fpn=8, anchors=3, fc=16, old_names=False, stem=8,
                  width=4):
    """A torchvision maskrcnn_resnet50_fpn state_dict layout with small widths."""
    sd = tiny_resnet(rng, "backbone.body.", stem=stem, width=width)
    widths = [sd["backbone.body.layer{}.0.conv3.weight".format(k)].shape[0]
              for k in range(1, 5)]
    r = lambda *shape: rng.randn(*shape).astype(np.float32)  # noqa: E731
    for k, c in enumerate(widths):
        inner = "backbone.fpn.inner_blocks.{}".format(k) + ("" if old_names else ".0")
        layer = "backbone.fpn.layer_blocks.{}".format(k) + ("" if old_names else ".0")
        sd[inner + ".weight"], sd[inner + ".bias"] = r(fpn, c, 1, 1), r(fpn)
        sd[layer + ".weight"], sd[layer + ".bias"] = r(fpn, fpn, 3, 3), r(fpn)
    conv = "rpn.head.conv" + ("" if old_names else ".0.0")
    sd[conv + ".weight"], sd[conv + ".bias"] = r(fpn, fpn, 3, 3), r(fpn)
    sd["rpn.head.cls_logits.weight"], sd["rpn.head.cls_logits.bias"] = \
        r(anchors, fpn, 1, 1), r(anchors)
    sd["rpn.head.bbox_pred.weight"], sd["rpn.head.bbox_pred.bias"] = \
        r(4 * anchors, fpn, 1, 1), r(4 * anchors)
    sd["roi_heads.box_head.fc6.weight"] = r(fc, fpn * 7 * 7)
    sd["roi_heads.box_head.fc6.bias"] = r(fc)
    sd["roi_heads.box_head.fc7.weight"], sd["roi_heads.box_head.fc7.bias"] = r(fc, fc), r(fc)
    sd["roi_heads.box_predictor.cls_score.weight"] = r(num_classes, fc)
    sd["roi_heads.box_predictor.cls_score.bias"] = r(num_classes)
    sd["roi_heads.box_predictor.bbox_pred.weight"] = r(4 * num_classes, fc)
    sd["roi_heads.box_predictor.bbox_pred.bias"] = r(4 * num_classes)
    for k in range(4):
        name = "roi_heads.mask_head." + ("mask_fcn{}".format(k + 1) if old_names
                                         else "{}.0".format(k))
        sd[name + ".weight"], sd[name + ".bias"] = r(fpn, fpn, 3, 3), r(fpn)
    sd["roi_heads.mask_predictor.conv5_mask.weight"] = r(fpn, fpn + 1, 2, 2)  # [in, out]
    sd["roi_heads.mask_predictor.conv5_mask.bias"] = r(fpn + 1)
    sd["roi_heads.mask_predictor.mask_fcn_logits.weight"] = r(num_classes, fpn + 1, 1, 1)
    sd["roi_heads.mask_predictor.mask_fcn_logits.bias"] = r(num_classes)
    return sd


def weights_of(path):
    """{inner layer name: {short name: array}} of a classic HDF5 file."""
    layers, fmt = read_weight_file(path)
    assert fmt == "keras2"
    out = {}
    for group, entries in layers.items():
        for inner, short, array in entries:
            out.setdefault(inner, {})[short] = array
    return out


# ----------------------------------------------------------------- the .pth reader

def test_pth_reader_reads_the_zip_format(tmp_path, rng):
    sd = OrderedDict([("a", rng.randn(3, 4).astype(np.float32)),
                      ("b", np.arange(5, dtype=np.int64))])
    path = write_pth(str(tmp_path / "sd.pth"), sd)
    loaded = load_pth(path)
    assert list(loaded) == ["a", "b"]
    np.testing.assert_array_equal(loaded["a"], sd["a"])
    np.testing.assert_array_equal(loaded["b"], sd["b"])
    assert loaded["b"].dtype == np.int64


def test_pth_reader_names_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(PthError, match="notes.pth is not a PyTorch .pth file"):
        load_pth(str(path))
    truncated = tmp_path / "cut.pth"
    data = open(write_pth(str(tmp_path / "ok.pth"),
                          {"a": np.zeros(1000, np.float32)}), "rb").read()
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(PthError, match="cut.pth: cannot read it"):
        load_pth(str(truncated))


# ----------------------------------------------------------------- the converter

def test_converter_maps_every_torchvision_tensor_to_its_classic_layer(tmp_path, rng):
    sd = tiny_maskrcnn(rng)
    pth = write_pth(str(tmp_path / "tv.pth"), sd)
    info = convert_torchvision(pth, str(tmp_path / "out.h5"))
    assert info["kind"] == "maskrcnn" and info["num_classes"] == 5
    assert info["backbone"] == "resnet50"
    w = weights_of(str(tmp_path / "out.h5"))
    # convs [out, in, kh, kw] -> [kh, kw, in, out], with a zero bias for ResNet's
    np.testing.assert_array_equal(w["conv1"]["kernel"],
                                  sd["backbone.body.conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(w["conv1"]["bias"], np.zeros(8, np.float32))
    np.testing.assert_array_equal(w["res3a_branch2b"]["kernel"],
                                  sd["backbone.body.layer2.0.conv2.weight"]
                                  .transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(w["res4f_branch2c"]["kernel"],
                                  sd["backbone.body.layer3.5.conv3.weight"]
                                  .transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(w["bn5a_branch1"]["moving_variance"],
                                  sd["backbone.body.layer4.0.downsample.1.running_var"])
    np.testing.assert_array_equal(w["bn_conv1"]["gamma"], sd["backbone.body.bn1.weight"])
    np.testing.assert_array_equal(w["fpn_c3p3"]["bias"],
                                  sd["backbone.fpn.inner_blocks.1.0.bias"])
    np.testing.assert_array_equal(w["fpn_p5"]["kernel"],
                                  sd["backbone.fpn.layer_blocks.3.0.weight"]
                                  .transpose(2, 3, 1, 0))
    # RPN: one sigmoid logit per anchor -> (background 0, foreground logit) pairs
    cls_w = sd["rpn.head.cls_logits.weight"][:, :, 0, 0]
    raw = w["rpn_class_raw"]["kernel"][0, 0]
    np.testing.assert_array_equal(raw[:, 0::2], np.zeros((8, 3), np.float32))
    np.testing.assert_array_equal(raw[:, 1::2], cls_w.T)
    np.testing.assert_array_equal(w["rpn_class_raw"]["bias"][1::2],
                                  sd["rpn.head.cls_logits.bias"])
    # box deltas (dx, dy, dw, dh) -> (dy, dx, dh, dw), per anchor
    bias = sd["rpn.head.bbox_pred.bias"].reshape(3, 4)
    np.testing.assert_array_equal(w["rpn_bbox_pred"]["bias"].reshape(3, 4),
                                  bias[:, [1, 0, 3, 2]])
    # fc6 reads [C, 7, 7] flattened: the 7x7 conv sees [7, 7, C]
    fc6 = sd["roi_heads.box_head.fc6.weight"].reshape(16, 8, 7, 7)
    np.testing.assert_array_equal(w["mrcnn_class_conv1"]["kernel"][2, 5, 3],
                                  fc6[:, 3, 2, 5])
    np.testing.assert_array_equal(w["mrcnn_class_conv2"]["kernel"][0, 0],
                                  sd["roi_heads.box_head.fc7.weight"].T)
    np.testing.assert_array_equal(w["mrcnn_class_logits"]["kernel"],
                                  sd["roi_heads.box_predictor.cls_score.weight"].T)
    bbox = sd["roi_heads.box_predictor.bbox_pred.weight"].T.reshape(16, 5, 4)
    np.testing.assert_array_equal(w["mrcnn_bbox_fc"]["kernel"].reshape(16, 5, 4),
                                  bbox[:, :, [1, 0, 3, 2]])
    np.testing.assert_array_equal(w["mrcnn_mask_conv3"]["kernel"],
                                  sd["roi_heads.mask_head.2.0.weight"].transpose(2, 3, 1, 0))
    # ConvTranspose2d [in, out, kh, kw] -> Conv2DTranspose [kh, kw, out, in]
    np.testing.assert_array_equal(w["mrcnn_mask_deconv"]["kernel"],
                                  sd["roi_heads.mask_predictor.conv5_mask.weight"]
                                  .transpose(2, 3, 1, 0))
    assert w["mrcnn_mask"]["kernel"].shape == (1, 1, 9, 5)
    # the RPN lives in the nested rpn_model group, as in the classic files
    with h5py.File(str(tmp_path / "out.h5"), "r") as f:
        assert "rpn_model" in f and "rpn_conv_shared" not in f
    # and the config JSON beside it
    with open(config_path_for(str(tmp_path / "out.h5"))) as f:
        settings = json.load(f)
    assert settings["NUM_CLASSES"] == 5
    assert settings["_class"] == "mrcnn.config:TorchvisionConfig"
    assert settings["RESNET_STRIDE_ON_3X3"] is True and settings["BN_EPSILON"] == 1e-5


def test_converter_reads_old_key_names_and_checkpoint_dicts(tmp_path, rng):
    new = tiny_maskrcnn(np.random.RandomState(1))
    old = tiny_maskrcnn(np.random.RandomState(1), old_names=True)
    convert_torchvision(write_pth(str(tmp_path / "new.pth"), new), str(tmp_path / "new.h5"))
    convert_torchvision(write_pth(str(tmp_path / "old.pth"), old, wrap="model"),
                        str(tmp_path / "old.h5"))
    a, b = weights_of(str(tmp_path / "new.h5")), weights_of(str(tmp_path / "old.h5"))
    assert sorted(a) == sorted(b)
    for layer in a:
        for short in a[layer]:
            np.testing.assert_array_equal(a[layer][short], b[layer][short])


def test_converter_refuses_another_num_classes_with_the_fix(tmp_path, rng):
    pth = write_pth(str(tmp_path / "tv.pth"), tiny_maskrcnn(rng, num_classes=5))
    with pytest.raises(ConversionError, match=r"tv.pth: its box predictor has 5 classes .*"
                                              r"not --num-classes 3.*exclude="):
        convert_torchvision(pth, str(tmp_path / "out.h5"), num_classes=3)
    assert not os.path.exists(str(tmp_path / "out.h5"))


def test_converter_refuses_files_that_are_not_torchvision_maskrcnn(tmp_path, rng):
    other = write_pth(str(tmp_path / "other.pth"), {"encoder.weight": rng.randn(3, 3)
                                                    .astype(np.float32)})
    with pytest.raises(ConversionError, match="other.pth: not a torchvision Mask R-CNN or "
                                              "ResNet; it holds 1 tensors \\(encoder.weight\\)"):
        convert_torchvision(other, str(tmp_path / "a.h5"))
    v2 = tiny_maskrcnn(rng)
    v2["roi_heads.box_head.0.0.weight"] = np.zeros((4, 8, 3, 3), np.float32)
    with pytest.raises(ConversionError, match="maskrcnn_resnet50_fpn_v2"):
        convert_torchvision(write_pth(str(tmp_path / "v2.pth"), v2), str(tmp_path / "b.h5"))
    with pytest.raises(FileNotFoundError, match="missing.pth: no such file.*download"):
        convert_torchvision(str(tmp_path / "missing.pth"), str(tmp_path / "c.h5"))
    text = tmp_path / "text.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ConversionError, match="text.pth.*pip install 'mrcnn\\[torch\\]'"):
        convert_torchvision(str(text), str(tmp_path / "d.h5"))


def test_converter_takes_an_imagenet_resnet_as_backbone_weights(tmp_path, rng):
    sd = tiny_resnet(rng)
    sd["fc.weight"], sd["fc.bias"] = rng.randn(10, 256).astype(np.float32), np.zeros(10)
    info = convert_torchvision(write_pth(str(tmp_path / "r50.pth"), sd),
                               str(tmp_path / "r50.h5"))
    assert info["kind"] == "backbone" and info["num_classes"] is None
    w = weights_of(str(tmp_path / "r50.h5"))
    assert len(w) == 1 + 1 + 2 * (3 * 16 + 4)  # conv1, bn_conv1, 16 blocks + 4 shortcuts
    assert not any(name.startswith(("fpn", "rpn", "mrcnn")) for name in w)
    np.testing.assert_array_equal(w["res2c_branch2a"]["kernel"],
                                  sd["layer1.2.conv1.weight"].transpose(2, 3, 1, 0))
    with open(str(tmp_path / "r50.json")) as f:
        assert "NUM_CLASSES" not in json.load(f)


# ----------------------------------------------------------------- the flavour

def test_classic_defaults_keep_the_classic_network():
    c = Config()
    assert (c.RESNET_STRIDE_ON_3X3, c.RESNET_TORCH_PADDING, c.BN_EPSILON, c.CLASSIF_HEAD_BN,
            c.PIXEL_STD, c.BOX_NORMALIZATION, c.RPN_ANCHOR_ROUNDING, c.RPN_NMS_PER_LEVEL,
            c.RPN_MIN_SIZE, c.ROI_ALIGN_SAMPLING_RATIO, c.ROI_LEVEL_MAPPER,
            c.DETECTION_MIN_SIZE, c.MASK_PASTE) == \
        (False, False, 1e-3, True, None, "classic", False, False, 0, 0, "round", 0, "classic")


def test_torchvision_anchors_are_torchvisions_rounded_base_anchors():
    from mrcnn.anchors import generate_anchors
    # torchvision's cell anchors for size 32, aspect ratios (h / w) 0.5, 1, 2 are
    # [-23, -11, 23, 11], [-16, -16, 16, 16], [-11, -23, 11, 23] (x1, y1, x2, y2)
    a = generate_anchors([32], TorchvisionConfig.RPN_ANCHOR_RATIOS, [1, 2], 4, 1,
                         rounding=True)
    np.testing.assert_array_equal(a, [[-11, -23, 11, 23], [-16, -16, 16, 16],
                                      [-23, -11, 23, 11], [-11, -19, 11, 27],
                                      [-16, -12, 16, 20], [-23, -7, 23, 15]])


def test_torchvision_molding_normalises_like_torchvision():
    from mrcnn.molding import mold_image, unmold_image
    image = np.array([[[0, 128, 255]]], dtype=np.uint8)
    molded = mold_image(image, TorchvisionConfig())
    expected = (image / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(molded, expected, rtol=1e-6)
    np.testing.assert_array_equal(unmold_image(molded + 1e-4, TorchvisionConfig()), image)


def test_flavour_options_are_checked():
    bad = type("Bad", (TorchvisionConfig,), {"ROI_LEVEL_MAPPER": "ceil"})
    with pytest.raises(ConfigError, match="Bad.ROI_LEVEL_MAPPER = 'ceil': use one of"):
        bad()
    bad = type("Bad", (TorchvisionConfig,), {"PIXEL_STD": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="Bad.PIXEL_STD"):
        bad()


def test_torchvision_paste_expands_the_box_and_truncates_it():
    from mrcnn.masks import paste_masks_torchvision
    # a 2x2 mask of ones in box (y1, x1, y2, x2) = (2, 2, 6, 6): padded to 4x4 (zeros
    # around) and the box expanded by 4/2 to (0, 0, 8, 8), 9x9 pixels (inclusive).
    # Resized 4 -> 9 (align_corners=False) a row/column reads 0, 0.17, 0.61, 1, 1, 1,
    # 0.61, 0.17, 0: pixels 2..6 are >= 0.5 except the corners (0.61 * 0.61 = 0.37)
    out = paste_masks_torchvision(np.ones((1, 2, 2), np.float32), [[2., 2., 6., 6.]],
                                  (10, 10))
    expected = np.zeros((10, 10), bool)
    expected[2:7, 2:7] = True
    expected[[2, 2, 6, 6], [2, 6, 2, 6]] = False
    np.testing.assert_array_equal(out[:, :, 0], expected)


@pytest.fixture(scope="module")
def torchvision_model(tmp_path_factory):
    from mrcnn import model as modellib

    class TinyTorchvision(TorchvisionConfig):
        IMAGES_PER_GPU = 1
        NUM_CLASSES = 3
    return modellib.MaskRCNN("inference", TinyTorchvision(),
                             str(tmp_path_factory.mktemp("tvlogs")))


def test_torchvision_flavour_uses_the_classic_layer_names(torchvision_model):
    names = {l.name for l in torchvision_model.get_trainable_layers()}
    assert {"conv1", "bn_conv1", "res4f_branch2c", "fpn_c2p2", "rpn_conv_shared",
            "mrcnn_class_conv1", "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask_deconv",
            "mrcnn_mask"} <= names
    assert not names & {"mrcnn_class_bn1", "mrcnn_class_bn2", "mrcnn_mask_bn1"}
    km = torchvision_model.keras_model
    assert km.get_layer("rpn_model").get_layer("rpn_conv_shared").kernel.shape == \
        (3, 3, 256, 256)
    assert km.get_layer("bn3a_branch2a").epsilon == 1e-5
    assert km.get_layer("res3a_branch2a").strides == (1, 1)
    assert km.get_layer("res3a_branch2b").strides == (2, 2)


def test_torchvision_flavour_detects_on_any_size(torchvision_model):
    image = np.random.RandomState(0).randint(0, 255, (100, 150, 3)).astype(np.uint8)
    r = torchvision_model.detect([image])[0]
    assert r["masks"].shape[:2] == (100, 150)
    assert len(r["rois"]) == len(r["class_ids"]) == len(r["scores"])


def test_export_refuses_the_torchvision_flavour_with_the_reason(torchvision_model):
    from mrcnn.export import ExportError, serving_function
    with pytest.raises(ExportError, match="sets PIXEL_STD, BOX_NORMALIZATION, "
                                          "RPN_ANCHOR_ROUNDING, MASK_PASTE"):
        serving_function(torchvision_model)


# ----------------------------------------------------------------- parity (torch)

def torch_python():
    for path in (os.environ.get("MRCNN_TORCH_PYTHON"),
                 os.path.join(ROOT, ".venv-torch", "bin", "python"),
                 os.path.join(ROOT, "..", "main", ".venv-torch", "bin", "python")):
        if path and os.path.isfile(path):
            return path
    pytest.skip("needs a Python with torch + torchvision: set MRCNN_TORCH_PYTHON (looked in "
                "$MRCNN_TORCH_PYTHON, .venv-torch/bin/python, ../main/.venv-torch/bin/python)")


def match_detections(ours, ref):
    """Pairs (our index, reference index): same class, score within 1e-3, every box
    side within 1 px. Ties in score may come out in either order, so each reference
    detection takes the closest unmatched one of ours."""
    boxes = ref["boxes"][:, [1, 0, 3, 2]]  # (x1, y1, x2, y2) -> (y1, x1, y2, x2)
    used, pairs = set(), []
    for i in range(len(boxes)):
        best = None
        for j in range(len(ours["rois"])):
            if j in used or ours["class_ids"][j] != ref["labels"][i] or \
                    abs(ours["scores"][j] - ref["scores"][i]) > 1e-3:
                continue
            d = np.abs(ours["rois"][j] - boxes[i]).max()
            if d <= 1.0 and (best is None or d < best[0]):
                best = (d, j)
        assert best is not None, "torchvision detection {} (class {}, score {:.4f}, box {}) " \
            "has no match".format(i, ref["labels"][i], ref["scores"][i], boxes[i])
        used.add(best[1])
        pairs.append((best[1], i))
    return pairs


@pytest.mark.torch
def test_converted_torchvision_model_gives_torchvisions_detections(tmp_path, coco_sample):
    import glob
    from mrcnn import model as modellib
    from mrcnn.utils import read_image
    python = torch_python()
    paths = sorted(glob.glob(os.path.join(coco_sample, "images", "*.jpg")))[:3]
    assert len(paths) == 3
    images = []
    for i, path in enumerate(paths):
        image = read_image(path)
        # sides cut to multiples of 64: neither network resizes or pads
        image = np.ascontiguousarray(image[:image.shape[0] // 64 * 64,
                                           :image.shape[1] // 64 * 64])
        np.save(str(tmp_path / "image_{}.npy".format(i)), image)
        images.append(image)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([python, os.path.join(ROOT, "tests", "torchvision_reference.py"),
                    str(tmp_path / "ref")] +
                   [str(tmp_path / "image_{}.npy".format(i)) for i in range(3)],
                   check=True, env=env, timeout=600)

    info = convert_torchvision(str(tmp_path / "ref" / "model.pth"), str(tmp_path / "tv.h5"))
    # the pre-1.6 format (that of the published COCO file) converts to the same weights
    convert_torchvision(str(tmp_path / "ref" / "model_legacy.pth"),
                        str(tmp_path / "legacy.h5"))
    a, b = weights_of(str(tmp_path / "tv.h5")), weights_of(str(tmp_path / "legacy.h5"))
    for layer in a:
        for short in a[layer]:
            np.testing.assert_array_equal(a[layer][short], b[layer][short])

    from mrcnn.config import load_config_class
    base = load_config_class(info["config"])
    config = type("Parity", (base,), {"IMAGES_PER_GPU": 1, "DETECTION_MIN_CONFIDENCE": 0.02})()
    model = modellib.MaskRCNN("inference", config, str(tmp_path / "logs"))
    report = model.load_weights(str(tmp_path / "tv.h5"), by_name=True)
    assert report["not_in_file"] == [] and report["not_in_model"] == []
    km = model.keras_model
    layers = {"C2": "res2c_out", "C3": "res3d_out", "C4": "res4f_out", "C5": "res5c_out",
              "P2": "fpn_p2", "P3": "fpn_p3", "P4": "fpn_p4", "P5": "fpn_p5", "P6": "fpn_p6",
              "rpn_class": "rpn_class", "proposals": "ROI"}
    for i, image in enumerate(images):
        ref = np.load(str(tmp_path / "ref" / "ref_{}.npz".format(i)))
        h, w = image.shape[:2]
        out = model.run_graph([image], [(k, km.get_layer(v).output) for k, v in layers.items()])
        for name in ("C2", "C3", "C4", "C5", "P2", "P3", "P4", "P5", "P6"):
            assert out[name][0].shape == ref[name].shape, name
            err = np.abs(out[name][0] - ref[name]).max() / np.abs(ref[name]).max()
            assert err < 1e-4, "image {} {}: relative error {}".format(i, name, err)
        objectness = 1 / (1 + np.exp(-ref["rpn_logits"].astype(np.float64)))
        err = np.abs(out["rpn_class"][0, :, 1] - objectness).max()
        assert err < 1e-4, "image {} RPN objectness: error {}".format(i, err)
        # proposals: the same boxes (scores that tie may swap neighbours)
        ours = out["proposals"][0] * [h, w, h, w]
        theirs = ref["proposals"][:, [1, 0, 3, 2]]
        assert np.all(ours[len(theirs):] == 0)
        ours = ours[:len(theirs)]
        dist = np.abs(ours[:, None, :] - theirs[None]).max(axis=2)
        assert dist.min(axis=1).max() < 1e-4 * max(h, w), "image {} proposals".format(i)
        assert dist.min(axis=0).max() < 1e-4 * max(h, w), "image {} proposals".format(i)

        r = model.detect([image])[0]
        assert len(ref["boxes"]) >= 50, "image {}: too few reference detections".format(i)
        assert len(r["rois"]) == len(ref["boxes"]), "image {}".format(i)
        pairs = match_detections(r, ref)
        masks = ref["masks"] > 0.5
        for j, k in pairs:
            a, b = r["masks"][:, :, j], masks[k]
            union = np.sum(a | b)
            iou = np.sum(a & b) / union if union else 1.0
            assert iou >= 0.98, "image {} detection {}: mask IoU {}".format(i, k, iou)


# ----------------------------------------------------------------- the command line

def test_cli_convert_writes_weights_and_config(tmp_path, rng, capsys):
    from mrcnn.cli.main import main
    pth = write_pth(str(tmp_path / "tv.pth"), tiny_maskrcnn(rng))
    info = main(["convert", "torchvision", pth, str(tmp_path / "out.h5"), "--num-classes", "5"])
    out = capsys.readouterr().out
    assert "wrote {} (127 layers; Mask R-CNN, NUM_CLASSES = 5)".format(
        tmp_path / "out.h5") in out
    assert info["config"] == str(tmp_path / "out.json")
    from mrcnn.config import load_config_class
    cls = load_config_class(info["config"])
    assert issubclass(cls, TorchvisionConfig) and cls.NUM_CLASSES == 5
    with pytest.raises(SystemExit) as e:
        main(["convert", "torchvision", pth, str(tmp_path / "b.h5"), "--num-classes", "9"])
    assert e.value.code == 2
    assert "its box predictor has 5 classes" in capsys.readouterr().err


def test_cli_torchvision_coco_offline_says_where_the_pth_goes(tmp_path, monkeypatch):
    from mrcnn import utils
    from mrcnn.cli.common import CliError, resolve_weights

    def offline(path, verbose=1, url=None, timeout=60):
        raise RuntimeError("could not download {} (URLError: offline)".format(url))
    monkeypatch.setattr(utils, "download_trained_weights", offline)
    monkeypatch.setenv("MRCNN_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("MRCNN_TORCHVISION_COCO_PTH", raising=False)
    with pytest.raises(CliError) as e:
        resolve_weights(None, "torchvision-coco")
    text = str(e.value)
    assert "put it at {}".format(tmp_path / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth") in text
    assert "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" in text


def test_cli_torchvision_coco_converts_once_and_caches(tmp_path, rng, monkeypatch, capsys):
    from mrcnn.cli.common import resolve_weights
    pth = write_pth(str(tmp_path / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"),
                    tiny_maskrcnn(rng))
    monkeypatch.setenv("MRCNN_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("MRCNN_TORCHVISION_COCO_PTH", raising=False)
    path = resolve_weights(None, "torchvision-coco")
    assert path == str(tmp_path / "maskrcnn_resnet50_fpn_coco.h5")
    assert "converted {}".format(pth) in capsys.readouterr().out
    os.remove(pth)  # the cached .h5 is used from now on
    assert resolve_weights(None, "torchvision-coco") == path


def test_cli_torchvision_coco_builds_torchvisions_architecture():
    import argparse
    from mrcnn.cli.common import configs
    from mrcnn.cli.main import mrcnn_sample
    args = argparse.Namespace(weights="torchvision-coco", set=["RPN_NMS_THRESHOLD=0.6"],
                              config=None, logs="logs")
    train, infer = configs(mrcnn_sample(), args, class_names=["BG", "a", "b"])
    for cls in (train, infer):
        assert cls.BACKBONE == "resnet50" and cls.RESNET_STRIDE_ON_3X3
        assert cls.RPN_HEAD_CHANNELS == 256 and not cls.CLASSIF_HEAD_BN
        assert cls.BOX_NORMALIZATION == "scale" and cls.NUM_CLASSES == 3
        assert cls.RPN_NMS_THRESHOLD == 0.6  # --set wins
    assert "torchvision's architecture" in train._backbone_note


# ----------------------------------------------------------------- fine-tuning

@pytest.mark.slow
def test_fine_tune_from_converted_weights_heads_then_all(tmp_path, nucleus_sample):
    """A converted (seeded random) torchvision model fine-tuned on nuclei with the
    classic API: losses fall in each stage, and the reloaded checkpoint detects."""
    fine_tune_from_converted(tmp_path, nucleus_sample, steps=8, epochs=(2, 3))


def fine_tune_from_converted(tmp_path, nucleus_dir, steps, epochs):
    from mrcnn import model as modellib
    from mrcnn.weights import CLASS_SPECIFIC_LAYERS
    from samples.nucleus.nucleus import load_nucleus
    sd = full_size_maskrcnn(np.random.RandomState(0))
    pth = write_pth(str(tmp_path / "tv.pth"), sd)
    info = convert_torchvision(pth, str(tmp_path / "tv.h5"))
    assert info["num_classes"] == 91

    class NucleusTorchvision(TorchvisionConfig):
        NAME = "nucleus_tv"
        NUM_CLASSES = 2
        IMAGES_PER_GPU = 1
        STEPS_PER_EPOCH = steps
        VALIDATION_STEPS = 1
        IMAGE_RESIZE_MODE = "crop"
        IMAGE_MIN_DIM = 256
        IMAGE_MAX_DIM = 256
        TRAIN_ROIS_PER_IMAGE = 64
        RPN_TRAIN_ANCHORS_PER_IMAGE = 64
        MAX_GT_INSTANCES = 100
        POST_NMS_ROIS_TRAINING = 300
        PRE_NMS_LIMIT = 300
        LEARNING_RATE = 0.002

    dataset = load_nucleus(nucleus_dir, "train")
    model = modellib.MaskRCNN("training", NucleusTorchvision(), str(tmp_path / "logs"))
    report = model.load_weights(str(tmp_path / "tv.h5"), by_name=True,
                                exclude=list(CLASS_SPECIFIC_LAYERS))
    assert {"res5c_branch2c", "rpn_conv_shared", "mrcnn_class_conv1"} <= set(report["loaded"])
    assert "mrcnn_class_logits" not in report["loaded"]
    first = model.train(dataset, None, NucleusTorchvision.LEARNING_RATE, epochs[0], "heads",
                        seed=0, verbose=0)
    second = model.train(dataset, None, NucleusTorchvision.LEARNING_RATE / 2, epochs[1],
                         "all", seed=1, verbose=0)
    losses = first.history["loss"] + second.history["loss"]
    assert losses[-1] < losses[0], losses
    checkpoint = model.last_checkpoints[-1]

    class Inference(NucleusTorchvision):
        IMAGE_RESIZE_MODE = "pad64"
        IMAGE_MIN_DIM = 0
        DETECTION_MIN_CONFIDENCE = 0.0
    infer = modellib.MaskRCNN("inference", Inference(), str(tmp_path / "logs"))
    infer.load_weights(checkpoint, by_name=True)
    image = dataset.load_image(dataset.image_ids[0])
    r = infer.detect([image])[0]
    assert len(r["rois"]) > 0 and r["masks"].shape[:2] == image.shape[:2]
    return losses


def full_size_maskrcnn(rng):
    """maskrcnn_resnet50_fpn's state_dict layout and sizes, with random values
    (He-scaled, BN near identity), 91 classes."""
    sd = tiny_resnet(rng, "backbone.body.", stem=64, width=64)
    for name in list(sd):
        if name.endswith(".weight") and sd[name].ndim == 4:
            fan_in = np.prod(sd[name].shape[1:])
            sd[name] *= np.float32(np.sqrt(2.0 / fan_in))
        elif name.endswith(".running_var") or name.endswith("bn1.weight"):
            sd[name] = np.ones_like(sd[name])
        elif name.endswith(".running_mean") or name.endswith(".bias"):
            sd[name] = np.zeros_like(sd[name])
        elif name.endswith(".weight"):
            sd[name] = np.full_like(sd[name], 0.3 if "bn3" in name else 1.0)
    head = tiny_maskrcnn(rng, num_classes=91, fpn=256, anchors=3, fc=1024, stem=64, width=64)
    for name, value in head.items():
        if not name.startswith("backbone.body."):
            fan_in = np.prod(value.shape[1:]) if value.ndim > 1 else 1
            sd[name] = (value * np.float32(np.sqrt(1.0 / fan_in)) if value.ndim > 1
                        else np.zeros_like(value))
    sd["roi_heads.mask_predictor.conv5_mask.weight"] = \
        sd["roi_heads.mask_predictor.conv5_mask.weight"][:, :256]
    sd["roi_heads.mask_predictor.conv5_mask.bias"] = np.zeros(256, np.float32)
    sd["roi_heads.mask_predictor.mask_fcn_logits.weight"] = \
        sd["roi_heads.mask_predictor.mask_fcn_logits.weight"][:, :256]
    return sd


def test_detections_under_a_pixel_are_drawn():
    """torchvision's rule keeps boxes under a pixel (above 0.01 px), which round to an
    empty box; drawing them must not fail."""
    from mrcnn.visualize import draw_detections
    image = np.zeros((20, 20, 3), np.uint8)
    masks = np.zeros((20, 20, 1), bool)
    out = draw_detections(image, np.array([[5, 5, 5, 6]]), masks, np.array([1]),
                          ["BG", "thing"], np.array([0.9]))
    assert np.asarray(out).shape[:2] == (20, 20)


def test_torchvision_resize_applies_the_800_1333_rule():
    from mrcnn.convert_torchvision import torchvision_resize
    image = np.full((480, 640, 3), 77, np.uint8)
    resized, scale = torchvision_resize(image)
    assert scale == pytest.approx(800 / 480) and resized.shape == (800, 1066, 3)
    assert resized.dtype == np.uint8 and np.all(resized == 77)
    wide = np.zeros((300, 1500, 3), np.float32)
    resized, scale = torchvision_resize(wide)  # the long side caps it: 1333 / 1500
    assert scale == pytest.approx(1333 / 1500) and resized.shape == (266, 1333, 3)
