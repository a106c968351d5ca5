"""torchvision checkpoints -> classic-layout HDF5 weights (and the config they need).

``convert_torchvision(in_path, out_path)`` reads a torchvision Mask R-CNN v1
(``maskrcnn_resnet50_fpn``) state_dict, or a checkpoint dict holding one ("model",
"state_dict"), or the ImageNet ResNet-50/101 of ``torchvision.models.resnet50`` (the
backbone alone), and writes ``out_path`` in the classic Keras 2 HDF5 layout with the
classic layer names, plus ``<out_path minus .h5>.json``: the settings of
``mrcnn.config.TorchvisionConfig`` and NUM_CLASSES, loadable with ``--config`` or
``mrcnn.config.load_config_class``. With ``TorchvisionConfig`` the converted model
gives torchvision's detections (docs/torchvision.md).

The ``.pth`` file is read without PyTorch (``mrcnn.torch_pickle``).

How the tensors map (torchvision -> classic; convs [out, in, kh, kw] -> [kh, kw, in, out]):

    backbone.body.conv1 / bn1               conv1 (bias 0) / bn_conv1
    backbone.body.layerL.i.convK / bnK      res{L+1}{a+i}_branch2{a,b,c} / bn...
    backbone.body.layerL.0.downsample.0/1   res{L+1}a_branch1 / bn{L+1}a_branch1
    backbone.fpn.inner_blocks.k             fpn_c{k+2}p{k+2}
    backbone.fpn.layer_blocks.k             fpn_p{k+2}
    rpn.head.conv                           rpn_conv_shared
    rpn.head.cls_logits (A sigmoid logits)  rpn_class_raw (2A softmax logits: background
                                            0, foreground the logit: softmax = sigmoid)
    rpn.head.bbox_pred (dx, dy, dw, dh)     rpn_bbox_pred (dy, dx, dh, dw)
    roi_heads.box_head.fc6 (C, H, W flat)   mrcnn_class_conv1 (7x7 valid conv)
    roi_heads.box_head.fc7                  mrcnn_class_conv2 (1x1 conv)
    roi_heads.box_predictor.cls_score       mrcnn_class_logits
    roi_heads.box_predictor.bbox_pred       mrcnn_bbox_fc (per class dy, dx, dh, dw)
    roi_heads.mask_head.k (mask_fcn{k+1})   mrcnn_mask_conv{k+1}
    roi_heads.mask_predictor.conv5_mask     mrcnn_mask_deconv ([in, out, kh, kw] ->
                                            [kh, kw, out, in])
    roi_heads.mask_predictor.mask_fcn_logits  mrcnn_mask
"""
import json
import os
import re
from collections import OrderedDict

import h5py
import numpy as np

from .torch_pickle import PthError, load_pth

TORCHVISION_COCO_URL = ("https://download.pytorch.org/models/"
                        "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth")
TORCHVISION_COCO_NAME = "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
TORCHVISION_RESNET50_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"

# torchvision's 91 COCO category slots (background first, "N/A" for unused ids)
TORCHVISION_COCO_CATEGORIES = [
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train",
    "truck", "boat", "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter",
    "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
    "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A", "handbag", "tie", "suitcase",
    "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot",
    "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A",
    "dining table", "N/A", "N/A", "toilet", "N/A", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "N/A",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
]

# old torchvision key names (files saved before torchvision 0.13) -> current ones
_OLD_KEYS = [
    (re.compile(r"^(backbone\.fpn\.(?:inner|layer)_blocks\.\d+)\.(weight|bias)$"), r"\1.0.\2"),
    (re.compile(r"^(rpn\.head\.conv)\.(weight|bias)$"), r"\1.0.0.\2"),
]
_OLD_MASK = re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$")

INSTALL_TORCH = ("this file needs PyTorch to read: pip install 'mrcnn[torch]' (or pip "
                 "install torch --index-url https://download.pytorch.org/whl/cpu)")


class ConversionError(ValueError):
    """A file that cannot be converted; the message names it and says why."""


def read_state_dict(in_path):
    """The state_dict of a ``.pth`` file as {name: NumPy array}.

    Accepts a state_dict or a checkpoint dict holding one under "model", "state_dict"
    or "model_state_dict"; strips a "module." prefix (DataParallel); renames the old
    torchvision key names to the current ones.
    """
    in_path = os.fspath(in_path)
    try:
        obj = load_pth(in_path)
    except FileNotFoundError:
        raise FileNotFoundError("{}: no such file. torchvision's COCO Mask R-CNN is {}; "
                                "download it and give its path.".format(
                                    in_path, TORCHVISION_COCO_URL)) from None
    except PthError as e:
        obj = _load_with_torch(in_path, e)
    state = obj
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                state = obj[key]
                break
    if not isinstance(state, dict) or not state:
        raise ConversionError("{}: holds {} rather than a state_dict (a dict of tensors, or a "
                              "checkpoint dict with one under 'model')".format(
                                  in_path, type(state).__name__))
    out = OrderedDict()
    for name, value in state.items():
        if not isinstance(value, np.ndarray):
            continue
        name = str(name)
        if name.startswith("module."):
            name = name[len("module."):]
        for pattern, repl in _OLD_KEYS:
            name = pattern.sub(repl, name)
        m = _OLD_MASK.match(name)
        if m:
            name = "roi_heads.mask_head.{}.0.{}".format(int(m.group(1)) - 1, m.group(2))
        out[name] = value
    if not out:
        raise ConversionError("{}: the state_dict holds no tensors".format(in_path))
    return out


def _load_with_torch(in_path, error):
    """Fallback for a file the NumPy reader refuses: torch.load when installed."""
    try:
        import torch
    except ImportError:
        raise ConversionError("{} ({}); {}".format(error, "unreadable without PyTorch",
                                                   INSTALL_TORCH)) from None
    try:
        obj = torch.load(in_path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds
        raise ConversionError("{}: neither mrcnn's reader ({}) nor torch.load ({}) can read "
                              "it; the file is damaged or not a PyTorch checkpoint".format(
                                  in_path, error, e)) from None

    def to_numpy(v):
        if isinstance(v, dict):
            return OrderedDict((k, to_numpy(x)) for k, x in v.items())
        if hasattr(v, "detach"):
            return v.detach().float().numpy() if str(v.dtype) == "torch.bfloat16" \
                else v.detach().numpy()
        return v
    return to_numpy(obj)


def _conv(w):
    """[out, in, kh, kw] -> [kh, kw, in, out]."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


class _Mapper(object):
    """Takes tensors out of the state_dict by name, remembering what was used."""

    def __init__(self, state, path):
        self.state, self.path, self.used = state, path, set()

    def get(self, name):
        if name not in self.state:
            raise ConversionError("{}: no tensor {!r}; {}".format(self.path, name, self.hint()))
        self.used.add(name)
        return np.asarray(self.state[name], dtype=np.float32)

    def has(self, name):
        return name in self.state

    def hint(self):
        keys = list(self.state)
        return ("it holds {} tensors ({}{}). Expected torchvision's maskrcnn_resnet50_fpn "
                "(v1; the v2 model's heads differ) or a torchvision ResNet-50/101".format(
                    len(keys), ", ".join(keys[:4]), ", ..." if len(keys) > 4 else ""))

    def unused(self):
        return [k for k in self.state if k not in self.used and
                not k.endswith("num_batches_tracked")]


def _resnet_layers(m, prefix):
    """The classic ResNet layers from torchvision's ResNet under ``prefix``."""
    layers = OrderedDict()

    def bn(name, src):
        layers[name] = [("gamma", m.get(src + ".weight")), ("beta", m.get(src + ".bias")),
                        ("moving_mean", m.get(src + ".running_mean")),
                        ("moving_variance", m.get(src + ".running_var"))]

    def conv(name, src):
        w = m.get(src + ".weight")
        layers[name] = [("kernel", _conv(w)), ("bias", np.zeros(w.shape[0], np.float32))]

    conv("conv1", prefix + "conv1")
    bn("bn_conv1", prefix + "bn1")
    for stage in range(1, 5):
        i = 0
        while m.has("{}layer{}.{}.conv1.weight".format(prefix, stage, i)):
            src = "{}layer{}.{}".format(prefix, stage, i)
            dst = "{}{}".format(stage + 1, chr(97 + i))
            for k, letter in ((1, "a"), (2, "b"), (3, "c")):
                conv("res{}_branch2{}".format(dst, letter), "{}.conv{}".format(src, k))
                bn("bn{}_branch2{}".format(dst, letter), "{}.bn{}".format(src, k))
            if m.has(src + ".downsample.0.weight"):
                conv("res{}_branch1".format(dst), src + ".downsample.0")
                bn("bn{}_branch1".format(dst), src + ".downsample.1")
            i += 1
        if i == 0:
            raise ConversionError("{}: no {}layer{}.* tensors; {}".format(
                m.path, prefix, stage, m.hint()))
    return layers


def _resnet_depth(m, prefix):
    blocks = 0
    while m.has("{}layer3.{}.conv1.weight".format(prefix, blocks)):
        blocks += 1
    depths = {6: "resnet50", 23: "resnet101"}
    if blocks not in depths:
        raise ConversionError("{}: a ResNet with {} blocks in layer3; only ResNet-50 (6) and "
                              "ResNet-101 (23) bottleneck ResNets convert".format(
                                  m.path, blocks))
    return depths[blocks]


def _swap_xy(a, axis):
    """Reorder groups of 4 along axis from torchvision's (dx, dy, dw, dh) to ours
    (dy, dx, dh, dw)."""
    a = np.moveaxis(a, axis, 0)
    n = a.shape[0] // 4
    a = a.reshape((n, 4) + a.shape[1:])[:, [1, 0, 3, 2]].reshape((4 * n,) + a.shape[1:])
    return np.ascontiguousarray(np.moveaxis(a, 0, axis))


def maskrcnn_layers(m, num_classes=None):
    """{classic layer: [(weight name, array)]} of a torchvision Mask R-CNN v1."""
    if m.has("roi_heads.box_head.0.0.weight"):
        raise ConversionError("{}: this is maskrcnn_resnet50_fpn_v2 (its box head has convs "
                              "and batch norms), which mrcnn does not reproduce; use the v1 "
                              "model, maskrcnn_resnet50_fpn".format(m.path))
    layers = _resnet_layers(m, "backbone.body.")
    for k in range(4):
        for kind, name in (("inner_blocks", "fpn_c{0}p{0}"), ("layer_blocks", "fpn_p{0}")):
            src = "backbone.fpn.{}.{}.0".format(kind, k)
            layers[name.format(k + 2)] = [("kernel", _conv(m.get(src + ".weight"))),
                                          ("bias", m.get(src + ".bias"))]
    # RPN (stored inside the nested rpn_model group)
    layers["rpn_conv_shared"] = [("kernel", _conv(m.get("rpn.head.conv.0.0.weight"))),
                                 ("bias", m.get("rpn.head.conv.0.0.bias"))]
    w = m.get("rpn.head.cls_logits.weight")  # [A, C, 1, 1]
    b = m.get("rpn.head.cls_logits.bias")
    anchors = w.shape[0]
    kernel = np.zeros((1, 1, w.shape[1], 2 * anchors), np.float32)
    kernel[0, 0, :, 1::2] = w[:, :, 0, 0].T
    bias = np.zeros(2 * anchors, np.float32)
    bias[1::2] = b
    layers["rpn_class_raw"] = [("kernel", kernel), ("bias", bias)]
    layers["rpn_bbox_pred"] = [
        ("kernel", _swap_xy(_conv(m.get("rpn.head.bbox_pred.weight")), 3)),
        ("bias", _swap_xy(m.get("rpn.head.bbox_pred.bias"), 0))]
    # box head: fc6 reads the pooled [C, 7, 7] features flattened in C, H, W order
    w6 = m.get("roi_heads.box_head.fc6.weight")
    channels = layers["fpn_p2"][0][1].shape[3]
    pool = int(round(np.sqrt(w6.shape[1] / channels)))
    if pool * pool * channels != w6.shape[1]:
        raise ConversionError("{}: roi_heads.box_head.fc6.weight {} does not read {}-channel "
                              "square pooled features".format(m.path, w6.shape, channels))
    w6 = w6.reshape(w6.shape[0], channels, pool, pool)
    layers["mrcnn_class_conv1"] = [("kernel", _conv(w6)),
                                   ("bias", m.get("roi_heads.box_head.fc6.bias"))]
    w7 = m.get("roi_heads.box_head.fc7.weight")
    layers["mrcnn_class_conv2"] = [("kernel", w7.T.reshape(1, 1, w7.shape[1], w7.shape[0])),
                                   ("bias", m.get("roi_heads.box_head.fc7.bias"))]
    cls = m.get("roi_heads.box_predictor.cls_score.weight")
    file_classes = cls.shape[0]
    if num_classes is not None and int(num_classes) != file_classes:
        raise ConversionError(
            "{}: its box predictor has {} classes (roi_heads.box_predictor.cls_score.weight "
            "{}), not --num-classes {}. Convert without --num-classes (NUM_CLASSES = {}), "
            "then fine-tune for your classes with load_weights(..., by_name=True, exclude="
            "['mrcnn_class_logits', 'mrcnn_bbox_fc', 'mrcnn_bbox', 'mrcnn_mask'])".format(
                m.path, file_classes, list(cls.shape), num_classes, file_classes))
    layers["mrcnn_class_logits"] = [("kernel", np.ascontiguousarray(cls.T)),
                                    ("bias", m.get("roi_heads.box_predictor.cls_score.bias"))]
    layers["mrcnn_bbox_fc"] = [
        ("kernel", _swap_xy(np.ascontiguousarray(
            m.get("roi_heads.box_predictor.bbox_pred.weight").T), 1)),
        ("bias", _swap_xy(m.get("roi_heads.box_predictor.bbox_pred.bias"), 0))]
    for k in range(4):
        src = "roi_heads.mask_head.{}.0".format(k)
        layers["mrcnn_mask_conv{}".format(k + 1)] = [("kernel", _conv(m.get(src + ".weight"))),
                                                     ("bias", m.get(src + ".bias"))]
    wd = m.get("roi_heads.mask_predictor.conv5_mask.weight")  # [in, out, kh, kw]
    layers["mrcnn_mask_deconv"] = [
        ("kernel", np.ascontiguousarray(np.transpose(wd, (2, 3, 1, 0)))),
        ("bias", m.get("roi_heads.mask_predictor.conv5_mask.bias"))]
    layers["mrcnn_mask"] = [
        ("kernel", _conv(m.get("roi_heads.mask_predictor.mask_fcn_logits.weight"))),
        ("bias", m.get("roi_heads.mask_predictor.mask_fcn_logits.bias"))]
    return layers, file_classes


RPN_LAYERS = ("rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred")


def write_classic_h5(layers, out_path):
    """Write {layer: [(weight name, array)]} as a classic Keras 2 HDF5 weight file
    (the RPN layers inside the nested ``rpn_model`` group). Written to a temporary
    name and renamed when complete."""
    out_path = os.fspath(out_path)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)) or ".", exist_ok=True)
    groups = OrderedDict()
    for name, weights in layers.items():
        group = "rpn_model" if name in RPN_LAYERS else name
        groups.setdefault(group, []).extend(
            ("{}/{}:0".format(name, short), array) for short, array in weights)
    tmp = out_path + ".part"
    with h5py.File(tmp, "w") as f:
        f.attrs["layer_names"] = np.array([g.encode("utf8") for g in groups], dtype="S")
        f.attrs["backend"] = b"tensorflow"
        f.attrs["converted_from"] = b"torchvision"
        for group, weights in groups.items():
            g = f.create_group(group)
            g.attrs["weight_names"] = np.array([n.encode("utf8") for n, _ in weights], dtype="S")
            for n, array in weights:
                array = np.asarray(array, dtype=np.float32)
                g.create_dataset(n, data=array, fletcher32=array.ndim > 0 and array.size > 0)
    os.replace(tmp, out_path)
    return out_path


def config_path_for(out_path):
    """The JSON written beside a converted file: OUT.h5 -> OUT.json."""
    root, ext = os.path.splitext(os.fspath(out_path))
    return (root if ext.lower() in (".h5", ".hdf5") else os.fspath(out_path)) + ".json"


def torchvision_settings(num_classes=None, backbone="resnet50"):
    """The TorchvisionConfig values (as JSON-ready values) with NUM_CLASSES and BACKBONE."""
    from .config import TORCHVISION_SETTINGS, TorchvisionConfig, _plain
    data = {k: _plain(getattr(TorchvisionConfig, k)) for k in TORCHVISION_SETTINGS}
    data["BACKBONE"] = backbone
    if num_classes is not None:
        data["NUM_CLASSES"] = int(num_classes)
    data["_class"] = "mrcnn.config:TorchvisionConfig"
    return data


def convert_torchvision(in_path, out_path, num_classes=None, write_config=True):
    """Convert a torchvision checkpoint to classic-layout HDF5 weights.

    in_path: a torchvision ``maskrcnn_resnet50_fpn`` (v1) state_dict or checkpoint
        (``.pth``), or a torchvision ResNet-50/101 ImageNet state_dict (backbone only).
    out_path: the ``.h5`` to write. num_classes: when given, the file's box predictor
        must have that many classes (background included).
    Writes ``config_path_for(out_path)`` too (unless write_config is False): the
    TorchvisionConfig settings with NUM_CLASSES (none for a backbone) and BACKBONE.
    Returns {"weights": out_path, "config": json path or None, "kind": "maskrcnn" or
    "backbone", "num_classes": int or None, "backbone": "resnet50"/"resnet101",
    "layers": number of layers written}.
    """
    in_path = os.fspath(in_path)
    state = read_state_dict(in_path)
    m = _Mapper(state, in_path)
    if m.has("backbone.body.conv1.weight"):
        kind = "maskrcnn"
        backbone = _resnet_depth(m, "backbone.body.")
        layers, file_classes = maskrcnn_layers(m, num_classes)
        extra = [k for k in m.unused()]
    elif m.has("conv1.weight") and m.has("layer1.0.conv1.weight"):
        kind = "backbone"
        if num_classes is not None:
            raise ConversionError("{}: a ResNet backbone (ImageNet classifier) has no Mask "
                                  "R-CNN classes; drop --num-classes".format(in_path))
        backbone = _resnet_depth(m, "")
        layers, file_classes = _resnet_layers(m, ""), None
        extra = [k for k in m.unused() if not k.startswith("fc.")]
    else:
        raise ConversionError("{}: not a torchvision Mask R-CNN or ResNet; {}".format(
            in_path, m.hint()))
    if extra:
        raise ConversionError("{}: {} tensors this converter does not map ({}{}); the file "
                              "is not torchvision's maskrcnn_resnet50_fpn v1 or ResNet".format(
                                  in_path, len(extra), ", ".join(extra[:5]),
                                  ", ..." if len(extra) > 5 else ""))
    for name, weights in layers.items():
        for short, array in weights:
            if not np.all(np.isfinite(array)):
                raise ConversionError("{}: layer {} ({}) holds NaN or infinite values; the "
                                      "file is damaged".format(in_path, name, short))
    write_classic_h5(layers, out_path)
    config_file = None
    if write_config:
        config_file = config_path_for(out_path)
        data = torchvision_settings(file_classes, backbone)
        data["_converted_from"] = os.path.basename(in_path)
        tmp = config_file + ".part"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, config_file)
    return {"weights": os.fspath(out_path), "config": config_file, "kind": kind,
            "num_classes": file_classes, "backbone": backbone, "layers": len(layers)}


def torchvision_resize(image, min_size=800, max_size=1333):
    """Resize an image as torchvision's GeneralizedRCNNTransform does before the
    network: scale = min(min_size / short side, max_size / long side), bilinear
    (align_corners=False, no antialiasing), on the float image.

    image: [H, W, C] uint8 or float. Returns (the resized image, uint8 rounded for a
    uint8 input, else float32; scale). Detections on the result map back to the input by 1 / scale.
    (torchvision resizes after normalising; resizing is linear, so the order does not
    change the values beyond float rounding.)
    """
    from .masks import _torch_bilinear_weights
    image = np.asarray(image)
    h, w = image.shape[:2]
    scale = min(float(min_size) / min(h, w), float(max_size) / max(h, w))
    # torchvision: interpolate(scale_factor=scale, recompute_scale_factor=True)
    nh, nw = int(np.floor(h * scale)), int(np.floor(w * scale))
    wy = _torch_bilinear_weights(h, nh)
    wx = _torch_bilinear_weights(w, nw)
    x = image.astype(np.float32)
    out = np.einsum("yh,hwc->ywc", wy, x)
    out = np.einsum("xw,ywc->yxc", wx, out)
    if image.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8), scale
    return out.astype(np.float32), scale
