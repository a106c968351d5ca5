"""Export a trained model as a TensorFlow SavedModel or an ONNX file.

    python -m mrcnn.export --weights W.h5 --config module:Class --format onnx --out DIR

The exported model is the whole of ``detect()`` in one graph: it takes one RGB image,
``uint8 [height, width, 3]`` of any size, and returns, in that image's pixels,

    boxes      int32   [N, 4]  (y1, x1, y2, x2), y2/x2 exclusive, as ``detect()``'s rois
    class_ids  int32   [N]     1..NUM_CLASSES-1 (names in export.json)
    scores     float32 [N]
    masks      uint8   [N, height, width]  1 inside the instance, 0 outside

Resizing and padding (IMAGE_RESIZE_MODE), the mean-pixel subtraction, the anchors,
the box transform back to the original image and the pasting of the 28x28 masks all
run inside the graph, reproducing ``detect()``'s NumPy/scikit-image steps (bilinear
resize with zero fill at the edges, rounding to uint8, masks thresholded at 0.5), so
a user needs neither this library nor TensorFlow to run the ONNX file: onnxruntime
is enough. Detections are sorted by score; N is at most DETECTION_MAX_INSTANCES.

Beside the model, ``export.json`` records the class names, the input and outputs and
the config values the graph was built with.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

from .inference_model import default_class_names, load_inference_model, read_class_names

FORMATS = ("savedmodel", "onnx")
# tf2onnx needs NonMaxSuppression (opset 10) and Resize/Loop forms of CropAndResize
# (opset 11); 13 is the oldest opset this export is tested with.
MIN_OPSET = 13
DEFAULT_OPSET = 17
OUTPUT_NAMES = ("boxes", "class_ids", "scores", "masks")


class ExportError(RuntimeError):
    """The model cannot be exported as asked; the message says why and what to do."""


# ---------------------------------------------------------------- graph pieces

def _resize_bilinear_zero_edge(image, out_h, out_w):
    """``skimage.transform.resize(order=1, mode='constant', cval=0)`` as TF ops.

    image: [H, W, C] (any real dtype); out_h, out_w: int32 scalars. Returns float64.
    Output pixel i samples the input at (i + 0.5) * H / out_h - 0.5, bilinear, where
    pixels outside the image count as 0 (scipy's "grid-constant" edges, which
    scikit-image's resize uses); then, as its clip=True does, values are clipped to
    the input's range. Computed in float64 with gathers, as scipy does, so that the
    uint8 rounding after it agrees with ``detect()``'s pixel for pixel.
    """
    import tensorflow as tf
    image = tf.cast(image, tf.float64)
    out = _resize_axis(image, out_h, 0)
    out = _resize_axis(out, out_w, 1)
    return tf.clip_by_value(out, tf.reduce_min(image), tf.reduce_max(image))


def _resize_axis(values, out_size, axis):
    """Linear resampling along one axis with zero fill outside (float64)."""
    import tensorflow as tf
    size = tf.shape(values)[axis]
    pad = [[0, 0]] * 3
    pad[axis] = [1, 1]
    padded = tf.pad(values, pad)
    step = tf.cast(size, tf.float64) / tf.cast(out_size, tf.float64)
    coords = (tf.cast(tf.range(out_size), tf.float64) + 0.5) * step - 0.5
    low = tf.floor(coords)
    frac = coords - low
    i0 = tf.clip_by_value(tf.cast(low, tf.int32) + 1, 0, size + 1)
    i1 = tf.clip_by_value(tf.cast(low, tf.int32) + 2, 0, size + 1)
    shape = [1, 1, 1]
    shape[axis] = -1
    frac = tf.reshape(frac, shape)
    return (tf.gather(padded, i0, axis=axis) * (1.0 - frac) +
            tf.gather(padded, i1, axis=axis) * frac)


def _sampling_box(src_size, out_size, start, length):
    """(b1, b2) for crop_and_resize on a source padded by one zero pixel per side.

    Output index i (0 .. out_size - 1) samples source coordinate
    (i - start + 0.5) * src_size / length - 0.5, i.e. ``length`` output pixels from
    ``start`` cover the whole source, as scikit-image's resize maps them.
    """
    import tensorflow as tf
    out_f = tf.cast(out_size, tf.float32)
    padded_last = src_size + 1.0                  # (src_size + 2) - 1
    step = src_size / length
    b1 = ((0.5 - start) * step + 0.5) / padded_last
    b2 = b1 + step * (out_f - 1.0) / padded_last
    return [b1, b2]


def _pyramid_anchors_graph(config, molded_h, molded_w):
    """``utils.generate_pyramid_anchors`` + ``norm_boxes`` for a molded size (tensors)."""
    import tensorflow as tf
    ratios = np.asarray(config.RPN_ANCHOR_RATIOS, np.float64)
    levels = []
    for scale, stride in zip(config.RPN_ANCHOR_SCALES, config.BACKBONE_STRIDES):
        heights = tf.constant(scale / np.sqrt(ratios), tf.float32)
        widths = tf.constant(scale * np.sqrt(ratios), tf.float32)
        fh = tf.cast(tf.math.ceil(tf.cast(molded_h, tf.float32) / stride), tf.int32)
        fw = tf.cast(tf.math.ceil(tf.cast(molded_w, tf.float32) / stride), tf.int32)
        ys = tf.cast(tf.range(0, fh, config.RPN_ANCHOR_STRIDE) * stride, tf.float32)
        xs = tf.cast(tf.range(0, fw, config.RPN_ANCHOR_STRIDE) * stride, tf.float32)
        cy = ys[:, None, None] + tf.zeros_like(xs)[None, :, None] + tf.zeros_like(heights)
        cx = xs[None, :, None] + tf.zeros_like(ys)[:, None, None] + tf.zeros_like(widths)
        bh = heights + tf.zeros_like(cy)
        bw = widths + tf.zeros_like(cx)
        boxes = tf.stack([cy - 0.5 * bh, cx - 0.5 * bw, cy + 0.5 * bh, cx + 0.5 * bw], -1)
        levels.append(tf.reshape(boxes, [-1, 4]))
    anchors = tf.concat(levels, axis=0)
    h = tf.cast(molded_h, tf.float32)
    w = tf.cast(molded_w, tf.float32)
    scale = tf.stack([h, w, h, w]) - 1.0
    return (anchors - tf.constant([0.0, 0.0, 1.0, 1.0])) / scale


def _mold_graph(config, image, square_anchors=None):
    """resize_image + mold_image + compose_image_meta for one uint8 image (tensors).

    square_anchors: the fixed normalised anchors of square mode (``MaskRCNN.get_anchors``);
    other modes compute them in the graph for the molded size.
    Returns molded float32 [H', W', 3], image_meta [META], window (int32 y1, x1, y2, x2)
    and the anchors.
    """
    import tensorflow as tf
    mode = config.IMAGE_RESIZE_MODE
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    # the scale in float64, with Python's round-half-even, as resize_image computes it
    h64 = tf.cast(h, tf.float64)
    w64 = tf.cast(w, tf.float64)
    scale = tf.constant(1.0, tf.float64)
    if mode != "none":
        if config.IMAGE_MIN_DIM:
            scale = tf.maximum(scale, config.IMAGE_MIN_DIM / tf.minimum(h64, w64))
        if config.IMAGE_MIN_SCALE:
            scale = tf.maximum(scale, tf.constant(float(config.IMAGE_MIN_SCALE), tf.float64))
        if mode == "square" and config.IMAGE_MAX_DIM:
            image_max = tf.maximum(h64, w64)
            scale = tf.where(tf.round(image_max * scale) > config.IMAGE_MAX_DIM,
                             config.IMAGE_MAX_DIM / image_max, scale)
    new_h = tf.cast(tf.round(h64 * scale), tf.int32)
    new_w = tf.cast(tf.round(w64 * scale), tf.int32)
    pixels = tf.cast(image, tf.float64)
    resized = tf.cond(tf.equal(scale, 1.0), lambda: pixels,
                      lambda: tf.round(_resize_bilinear_zero_edge(pixels, new_h, new_w)))
    if mode == "square":
        top = (config.IMAGE_MAX_DIM - new_h) // 2
        left = (config.IMAGE_MAX_DIM - new_w) // 2
        bottom = config.IMAGE_MAX_DIM - new_h - top
        right = config.IMAGE_MAX_DIM - new_w - left
    elif mode == "pad64":
        extra_h = (64 - new_h % 64) % 64
        extra_w = (64 - new_w % 64) % 64
        top, left = extra_h // 2, extra_w // 2
        bottom, right = extra_h - top, extra_w - left
    else:
        top = left = bottom = right = tf.constant(0, tf.int32)
    padded = tf.pad(resized, [[top, bottom], [left, right], [0, 0]])
    # in float64, then float32, as mold_image's NumPy arithmetic: the same bits
    molded = tf.cast(padded - tf.constant(np.asarray(config.MEAN_PIXEL, np.float64)),
                     tf.float32)
    molded_h = new_h + top + bottom
    molded_w = new_w + left + right
    window = tf.stack([top, left, top + new_h, left + new_w])
    channels = config.IMAGE_CHANNEL_COUNT
    meta = tf.concat([
        tf.zeros([1], tf.float32),
        tf.cast(tf.stack([h, w, channels, molded_h, molded_w, channels]), tf.float32),
        tf.cast(window, tf.float32),
        tf.cast(scale, tf.float32)[None],
        tf.zeros([config.NUM_CLASSES], tf.float32)], axis=0)
    if square_anchors is not None:
        anchors = tf.constant(square_anchors, tf.float32)
    else:
        anchors = _pyramid_anchors_graph(config, molded_h, molded_w)
    return molded, meta, window, anchors


def _paste_masks_graph(masks, boxes, height, width, threshold=0.5):
    """``utils.unmold_mask`` for all detections: [N, 28, 28] probs -> uint8 [N, H, W].

    Each mask is resized to its box as scikit-image does (bilinear, zero fill at the
    edges, clipped to the mask's own range), thresholded (DETECTION_MASK_THRESHOLD), and
    placed in the box; zero outside it.
    """
    import tensorflow as tf
    n = tf.shape(masks)[0]
    mh = tf.cast(tf.shape(masks)[1], tf.float32)
    mw = tf.cast(tf.shape(masks)[2], tf.float32)
    padded = tf.pad(masks, [[0, 0], [1, 1], [1, 1]])[..., None]
    fb = tf.cast(boxes, tf.float32)
    bh = tf.maximum(fb[:, 2] - fb[:, 0], 1.0)
    bw = tf.maximum(fb[:, 3] - fb[:, 1], 1.0)
    y1, y2 = _sampling_box(mh, height, fb[:, 0], bh)
    x1, x2 = _sampling_box(mw, width, fb[:, 1], bw)
    sample_boxes = tf.stack([y1, x1, y2, x2], axis=1)
    full = tf.image.crop_and_resize(padded, sample_boxes, tf.range(n),
                                    tf.stack([height, width]), method="bilinear",
                                    extrapolation_value=0.0)[..., 0]
    low = tf.reduce_min(masks, axis=[1, 2])[:, None, None]
    high = tf.reduce_max(masks, axis=[1, 2])[:, None, None]
    full = tf.minimum(tf.maximum(full, low), high)
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = tf.logical_and(
        tf.logical_and(rows >= boxes[:, 0, None, None], rows < boxes[:, 2, None, None]),
        tf.logical_and(cols >= boxes[:, 1, None, None], cols < boxes[:, 3, None, None]))
    return tf.cast(tf.logical_and(full >= threshold, inside), tf.uint8)


def _unmold_graph(detections, mrcnn_mask, molded_h, molded_w, window, height, width,
                  mask_threshold=0.5):
    """``MaskRCNN.unmold_detections`` as TF ops, for one image."""
    import tensorflow as tf
    valid = tf.cast(detections[:, 4] > 0, tf.int32)
    n = tf.reduce_sum(tf.math.cumprod(valid))          # rows before the first padding
    detections = detections[:n]
    class_ids = tf.cast(detections[:, 4], tf.int32)
    scores = detections[:, 5]
    masks = tf.gather_nd(tf.transpose(mrcnn_mask[:n], [0, 3, 1, 2]),
                         tf.stack([tf.range(n), class_ids], axis=1))
    mh = tf.cast(molded_h, tf.float32) - 1.0
    mw = tf.cast(molded_w, tf.float32) - 1.0
    win = tf.cast(window, tf.float32)
    # window to normalised molded coordinates (norm_boxes), then boxes into it
    wy1, wx1 = win[0] / mh, win[1] / mw
    wy2, wx2 = (win[2] - 1.0) / mh, (win[3] - 1.0) / mw
    shift = tf.stack([wy1, wx1, wy1, wx1])
    scale = tf.stack([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    boxes = (detections[:, :4] - shift) / scale
    size = tf.cast(tf.stack([height, width, height, width]), tf.float32) - 1.0
    boxes = tf.cast(tf.round(boxes * size + tf.constant([0.0, 0.0, 1.0, 1.0])), tf.int32)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = tf.where(area > 0)[:, 0]
    boxes = tf.gather(boxes, keep)
    class_ids = tf.gather(class_ids, keep)
    scores = tf.gather(scores, keep)
    masks = _paste_masks_graph(tf.gather(masks, keep), boxes, height, width, mask_threshold)
    return boxes, class_ids, scores, masks


def serving_function(model):
    """A ``tf.function`` image uint8 [H, W, 3] -> {boxes, class_ids, scores, masks}.

    model: an inference ``MaskRCNN``. This is what both formats export.
    """
    import tensorflow as tf
    config = model.config
    keras_model = model.keras_model
    if callable(config.BACKBONE) and config.IMAGE_RESIZE_MODE != "square":
        raise ExportError(
            "a custom (callable) BACKBONE has its feature sizes from "
            "COMPUTE_BACKBONE_SHAPE, a Python function the graph cannot call for any "
            "image size; export it with IMAGE_RESIZE_MODE = 'square' (fixed size)")
    if config.IMAGE_CHANNEL_COUNT != 3:
        raise ExportError("the export takes RGB images; IMAGE_CHANNEL_COUNT is {}"
                          .format(config.IMAGE_CHANNEL_COUNT))
    flavour = ["PIXEL_STD"] if config.PIXEL_STD is not None else []
    flavour += [k for k, classic in (("BOX_NORMALIZATION", "classic"),
                                     ("RPN_ANCHOR_ROUNDING", False), ("MASK_PASTE", "classic"))
                if getattr(config, k) != classic]
    if flavour:
        raise ExportError("the export's in-graph molding and pasting are the classic ones; "
                          "this config sets {} (the torchvision flavour), which the export "
                          "does not reproduce yet. Use detect() for these weights".format(
                              ", ".join(flavour)))

    square_anchors = (model.get_anchors(config.IMAGE_SHAPE)
                      if config.IMAGE_RESIZE_MODE == "square" else None)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
    def serve(image):
        height = tf.shape(image)[0]
        width = tf.shape(image)[1]
        molded, meta, window, anchors = _mold_graph(config, image, square_anchors)
        outputs = keras_model([molded[None], meta[None], anchors[None]], training=False)
        detections, mrcnn_mask = outputs[0][0], outputs[3][0]
        boxes, class_ids, scores, masks = _unmold_graph(
            detections, mrcnn_mask, tf.shape(molded)[0], tf.shape(molded)[1], window,
            height, width, float(config.DETECTION_MASK_THRESHOLD))
        return {"boxes": tf.identity(boxes, name="boxes"),
                "class_ids": tf.identity(class_ids, name="class_ids"),
                "scores": tf.identity(scores, name="scores"),
                "masks": tf.identity(masks, name="masks")}

    return serve


# ---------------------------------------------------------------- writers

def _metadata(model, class_names, fmt, extra=None):
    config = model.config
    keys = ("NAME", "NUM_CLASSES", "BACKBONE", "IMAGE_RESIZE_MODE", "IMAGE_MIN_DIM",
            "IMAGE_MAX_DIM", "IMAGE_MIN_SCALE", "MEAN_PIXEL", "DETECTION_MIN_CONFIDENCE",
            "DETECTION_NMS_THRESHOLD", "DETECTION_MAX_INSTANCES", "DETECTION_PER_CLASS")
    values = {}
    for k in keys:
        v = getattr(config, k, None)
        if callable(v):
            v = getattr(v, "__name__", "custom")
        values[k] = np.asarray(v).tolist() if isinstance(v, (tuple, list, np.ndarray)) else v
    info = {
        "format": fmt,
        "class_names": class_names,
        "input": {"name": "image", "dtype": "uint8", "shape": ["height", "width", 3],
                  "channels": "RGB"},
        "outputs": {
            "boxes": {"dtype": "int32", "shape": ["N", 4],
                      "meaning": "y1, x1, y2, x2 in input pixels; y2 and x2 exclusive"},
            "class_ids": {"dtype": "int32", "shape": ["N"],
                          "meaning": "index into class_names (0 = background never appears)"},
            "scores": {"dtype": "float32", "shape": ["N"], "meaning": "class probability"},
            "masks": {"dtype": "uint8", "shape": ["N", "height", "width"],
                      "meaning": "1 inside the instance"}},
        "config": values,
    }
    info.update(extra or {})
    return info


def _write_json(path, data):
    tmp = path + ".part"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def _staging(out_dir):
    """Write into ``<out>.part`` and move it into place at the end: an interrupted or
    failed export leaves an existing ``out`` as it was."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ExportError("--out {} is a file; give a folder".format(out_dir))
    stage = out_dir + ".part"
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    return out_dir, stage


def _commit(stage, out_dir):
    if os.path.isdir(out_dir):
        old = out_dir + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
        os.replace(stage, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, out_dir)


def export_savedmodel(model, out_dir, class_names=None):
    """Write a SavedModel with one signature, ``serving_default``: image -> outputs.

    Returns the folder. Load it with ``tf.saved_model.load(out_dir)`` and call
    ``.signatures["serving_default"](image=tf.constant(rgb_uint8))``.
    """
    import tensorflow as tf
    out_dir, stage = _staging(out_dir)
    serve = serving_function(model)
    # The module holds the weights the function reads, not the Keras model: saving a
    # Keras model also serialises each layer's own functions, which nothing here loads
    # (only the signature is served): save 5.2 -> 2.3 s, load 1.8 -> 1.25 s for the
    # tests' small model, the same outputs.
    module = tf.Module()
    module.weights = list(model.keras_model.weights)
    module.serve = serve
    try:
        tf.saved_model.save(module, os.path.join(stage, "saved_model"),
                            signatures={"serving_default": serve.get_concrete_function()})
    except Exception:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    names = class_names or default_class_names(model.config.NUM_CLASSES)
    _write_json(os.path.join(stage, "export.json"),
                _metadata(model, names, "savedmodel", {"model": "saved_model"}))
    _commit(stage, out_dir)
    return out_dir


def _check_opset(opset):
    try:
        from tf2onnx import constants
    except ImportError:
        raise ExportError("ONNX export needs tf2onnx and onnx: pip install 'mrcnn[export]' "
                          "(or pip install tf2onnx onnx onnxruntime)") from None
    newest = max(constants.OPSET_TO_IR_VERSION)
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ExportError("opset {!r} is not supported: the graph needs ONNX opset >= {} "
                          "(NonMaxSuppression, CropAndResize via Resize and Loop) and this "
                          "tf2onnx writes at most opset {}; use --opset {}"
                          .format(opset, MIN_OPSET, newest, DEFAULT_OPSET))


def export_onnx(model, out_dir, class_names=None, opset=DEFAULT_OPSET):
    """Write ``model.onnx`` (tf2onnx) and export.json. Returns the folder.

    Unsupported TensorFlow ops or opsets raise ExportError naming them.
    """
    _check_opset(opset)
    import tensorflow as tf
    import tf2onnx
    out_dir, stage = _staging(out_dir)
    serve = serving_function(model)
    path = os.path.join(stage, "model.onnx")
    try:
        model_proto, _ = tf2onnx.convert.from_function(
            serve, input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")],
            opset=opset, output_path=path)
    except Exception as e:
        shutil.rmtree(stage, ignore_errors=True)
        text = str(e)
        unsupported = sorted(set(_unsupported_ops(text)))
        if unsupported:
            raise ExportError("ONNX opset {} cannot express these TensorFlow ops: {}. Try a "
                              "newer --opset, or export --format savedmodel"
                              .format(opset, ", ".join(unsupported))) from None
        raise ExportError("tf2onnx failed at opset {}: {}: {}".format(
            opset, type(e).__name__, text.strip().splitlines()[-1] if text.strip() else ""))
    outputs = [o.name for o in model_proto.graph.output]
    if sorted(outputs) != sorted(OUTPUT_NAMES):
        shutil.rmtree(stage, ignore_errors=True)
        raise ExportError("the ONNX graph has outputs {}, expected {}".format(
            outputs, list(OUTPUT_NAMES)))
    names = class_names or default_class_names(model.config.NUM_CLASSES)
    _write_json(os.path.join(stage, "export.json"),
                _metadata(model, names, "onnx", {"model": "model.onnx", "opset": opset}))
    _commit(stage, out_dir)
    return out_dir


def _unsupported_ops(text):
    import re
    for m in re.finditer(r"Tensorflow op \[[^\]]*: ([A-Za-z0-9_]+)\] is not supported", text):
        yield m.group(1)
    for m in re.finditer(r"Unsupported ops: Counter\(\{([^}]*)\}\)", text):
        for op in re.findall(r"'([A-Za-z0-9_]+)'", m.group(1)):
            yield op


def export(model, out_dir, fmt="savedmodel", class_names=None, opset=DEFAULT_OPSET):
    """Export an inference MaskRCNN; ``fmt`` is "savedmodel" or "onnx"."""
    if fmt not in FORMATS:
        raise ExportError("unknown format {!r}; use {}".format(fmt, " or ".join(FORMATS)))
    if getattr(model, "mode", "inference") != "inference":
        raise ExportError("export needs a model built with mode='inference'")
    if fmt == "onnx":
        return export_onnx(model, out_dir, class_names, opset)
    return export_savedmodel(model, out_dir, class_names)


# ---------------------------------------------------------------- running exports

def load_savedmodel(path):
    """Load an exported SavedModel (the export folder or its saved_model/ folder) for
    run_savedmodel: loading takes a second or two, so load once for many images."""
    import tensorflow as tf
    folder = os.path.join(path, "saved_model") if os.path.isdir(
        os.path.join(path, "saved_model")) else path
    return tf.saved_model.load(folder)


def run_savedmodel(path, image, loaded=None):
    """Run an exported SavedModel folder on one RGB uint8 image -> dict of NumPy arrays.
    loaded: what load_savedmodel(path) returned (loaded here when not given)."""
    import tensorflow as tf
    loaded = loaded if loaded is not None else load_savedmodel(path)
    out = loaded.signatures["serving_default"](image=tf.constant(np.asarray(image, np.uint8)))
    return {k: v.numpy() for k, v in out.items()}


def run_onnx(path, image, session=None):
    """Run an exported ONNX file (or export folder) with onnxruntime -> dict of arrays."""
    import onnxruntime as ort
    if os.path.isdir(path):
        path = os.path.join(path, "model.onnx")
    session = session or ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {session.get_inputs()[0].name: np.asarray(image, np.uint8)})
    return dict(zip(names, values))


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m mrcnn.export",
        description="Export trained weights as a SavedModel or ONNX file that takes a "
                    "uint8 RGB image of any size and returns boxes, class ids, scores and "
                    "masks in its pixels.")
    p.add_argument("--weights", required=True, help="checkpoint (.h5 or .weights.h5)")
    p.add_argument("--config", required=True,
                   help="module:Class or file.py:Class of an inference Config")
    p.add_argument("--format", choices=FORMATS, default="savedmodel")
    p.add_argument("--out", required=True, help="folder to write (replaced when done)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help="ONNX opset (default %(default)s, at least {})".format(MIN_OPSET))
    p.add_argument("--class-names", default=None,
                   help="JSON list of class names (default: class_names.json beside the "
                        "weights)")
    p.add_argument("--check", default=None, metavar="IMAGE",
                   help="after exporting, run the export on this image and print what it found")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .config import ConfigError
    try:
        if args.format == "onnx":
            _check_opset(args.opset)
        model = load_inference_model(args.weights, args.config)
        names = read_class_names(args.weights, model.config.NUM_CLASSES, args.class_names)
        print("exporting {} ({}, {} classes) as {} ...".format(
            args.weights, type(model.config).__name__, model.config.NUM_CLASSES, args.format),
            flush=True)
        out = export(model, args.out, args.format, names, args.opset)
        print("wrote", out)
        if args.check:
            from .imageops import read_image
            image = read_image(args.check)
            run = run_onnx if args.format == "onnx" else run_savedmodel
            result = run(out, image)
            print("{}: {} detections".format(args.check, len(result["scores"])))
            for box, cid, score in zip(result["boxes"], result["class_ids"], result["scores"]):
                print("  {:<20} {:.3f} {}".format(names[int(cid)], float(score),
                                                  box.tolist()))
    except (ExportError, ConfigError, ValueError, OSError) as e:
        print("error: {}".format(e), file=sys.stderr)
        raise SystemExit(2)
    return out


if __name__ == "__main__":
    main()
