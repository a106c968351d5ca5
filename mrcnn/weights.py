"""Reading and writing weights by layer name, in the classic Keras 2 HDF5 layout.

Reads:
- classic Keras 2 files (``save_weights`` or a full-model save with ``model_weights/``):
  root attr ``layer_names`` (bytes or str, possibly split into ``layer_names0``,
  ``layer_names1``, ...), one group per layer with attr ``weight_names``
  (``conv1/kernel:0``; the nested RPN as group ``rpn_model`` holding
  ``rpn_conv_shared/kernel:0`` or ``rpn_model/rpn_conv_shared/kernel:0``);
- Keras 3 ``.weights.h5`` files (``layers/.../vars`` groups carrying the layer name);
- our own checkpoints, which use the classic layout, so classic tools read them too.

Weights of a layer are matched by their short name (kernel, bias, gamma, beta,
moving_mean, moving_variance), falling back to their order.
"""
import logging
import os
import re

import h5py
import numpy as np

log = logging.getLogger(__name__)

# a numbered checkpoint: mask_rcnn_<name>_<epoch:04d>.h5 (not the _best.h5 file)
CHECKPOINT_NAME = re.compile(r"mask_rcnn_.*_\d{4}\.h5")

CLASS_SPECIFIC_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")


class WeightsError(ValueError):
    """A weight file that cannot be loaded into this model; the message says why."""


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf8")
    return str(value)


def _read_name_list(group, name):
    """A list attribute, joined from name0, name1, ... chunks when it was split."""
    if name in group.attrs:
        return [_decode(v) for v in np.atleast_1d(group.attrs[name])]
    values, chunk = [], 0
    while "{}{}".format(name, chunk) in group.attrs:
        values.extend(_decode(v) for v in np.atleast_1d(group.attrs["{}{}".format(name, chunk)]))
        chunk += 1
    return values if chunk else None


def _short_name(weight_name):
    """'rpn_model/rpn_conv_shared/kernel:0' -> 'kernel'."""
    return re.sub(r":\d+$", "", weight_name.split("/")[-1])


def weight_layers(keras_model):
    """{layer name: layer} of every layer holding weights, nested models expanded.

    The nested ``rpn_model`` appears both as itself and through its own layers.
    """
    out = {}

    def walk(model):
        for layer in model.layers:
            if hasattr(layer, "layers") and layer.weights:
                out[layer.name] = layer
                walk(layer)
            elif layer.weights:
                out[layer.name] = layer
    walk(keras_model)
    return out


def read_weight_file(filepath):
    """{layer name: [(short weight name, array), ...]} from a weight file, plus the
    file's format ("keras2" or "keras3").

    A nested model group (rpn_model) is expanded into its inner layers.
    """
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError("weight file not found: {}. See weights/README.md for "
                                "where weight files go and how to get them.".format(filepath))
    try:
        f = h5py.File(filepath, mode="r")
    except OSError as e:
        size = os.path.getsize(filepath)
        raise WeightsError("cannot open {} ({} bytes) as HDF5: {}. The file is truncated or "
                           "not a Keras weight file; download it again.".format(
                               filepath, size, e)) from None
    try:
        with f:
            if _read_name_list(f, "layer_names") is None and "model_weights" in f:
                return _read_keras2(f["model_weights"], filepath), "keras2"
            if _read_name_list(f, "layer_names") is not None:
                return _read_keras2(f, filepath), "keras2"
            if "layers" in f or "vars" in f:
                return _read_keras3(f, filepath), "keras3"
            raise WeightsError("{} is HDF5 but holds no Keras weights (no 'layer_names' "
                               "attribute, 'model_weights' or 'layers' group)".format(filepath))
    except (OSError, KeyError, RuntimeError) as e:
        raise WeightsError("cannot read weights from {}: {}. The file is damaged or "
                           "truncated; download it again.".format(filepath, e)) from None


def weights_num_classes(filepath):
    """NUM_CLASSES the file's class-specific layers were trained for (the width of
    mrcnn_class_logits), or None when the file has no such layer (a backbone file)."""
    layers, _ = read_weight_file(filepath)
    for group, entries in layers.items():
        for inner, short, array in entries:
            if (inner == "mrcnn_class_logits" or group == "mrcnn_class_logits") and \
                    array.ndim == 2:
                return int(array.shape[-1])
    return None


def _read_keras2(group, filepath):
    """{group name: [(inner layer name, short name, array)]}; the inner layer name is
    the path component before the short name (it differs from the group name for a
    nested model such as rpn_model)."""
    layers = {}
    for layer_name in _read_name_list(group, "layer_names"):
        g = group[layer_name]
        entries = layers.setdefault(layer_name, [])
        for weight_name in _read_name_list(g, "weight_names") or []:
            parts = weight_name.split("/")
            inner = parts[-2] if len(parts) >= 2 else layer_name
            try:
                array = np.asarray(g[weight_name])
            except (OSError, KeyError) as e:
                raise WeightsError("cannot read weights from {}: layer {} weight {}: {}. The "
                                   "file is damaged or truncated; download or copy it again."
                                   .format(filepath, layer_name, weight_name, e)) from None
            entries.append((inner, _short_name(weight_name), array))
    return layers


def _read_keras3(f, filepath):
    layers = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and name.split("/")[-1] == "vars" and len(obj):
            layer_name = _decode(obj.attrs.get("name", name.split("/")[-2]))
            keys = sorted(obj.keys(), key=lambda k: int(k) if k.isdigit() else k)
            layers[layer_name] = [(layer_name, None, np.asarray(obj[k])) for k in keys]
    f.visititems(visit)
    return layers


BACKBONE_LAYER = re.compile(r"(?:res|bn)(\d)([a-z]+)_branch\w+")
RESNET_DEPTHS = {50: {2: 3, 3: 4, 4: 6, 5: 3}, 101: {2: 3, 3: 4, 4: 23, 5: 3}}


def _backbone_blocks(names):
    """{stage: set of block letters} of the classic ResNet layer names among names."""
    blocks = {}
    for name in names:
        m = BACKBONE_LAYER.fullmatch(name)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(m.group(2))
    return blocks


def _block_range(letters):
    ordered = sorted(letters, key=lambda b: (len(b), b))
    return "{} block{} {}".format(len(ordered), "s" if len(ordered) > 1 else "",
                                  ordered[0] if len(ordered) == 1 else
                                  "{}..{}".format(ordered[0], ordered[-1]))


def _resnet_name(blocks):
    """'ResNet-50' / 'ResNet-101' when the stage-4 blocks say so, else a description."""
    for depth, stages in RESNET_DEPTHS.items():
        if len(blocks.get(4, ())) == stages[4]:
            return "ResNet-{}".format(depth)
    return "a ResNet with stage 4 of {}".format(_block_range(blocks[4])) if 4 in blocks \
        else "another backbone"


def backbone_mismatch(file_names, model_names):
    """A text describing how the file's ResNet backbone differs from the model's, or
    None when they agree (or either holds no ResNet layer).

    A stage differs when the file has blocks the model lacks (a ResNet-101 file for a
    ResNet-50 model), or when the file holds the stage from its first block on but
    fewer blocks than the model (ResNet-50 weights for a ResNet-101 model). A file with
    a few scattered layers of a stage (a hand-made or partial file) is not a mismatch.
    """
    in_file, in_model = _backbone_blocks(file_names), _backbone_blocks(model_names)
    if not in_file or not in_model:
        return None
    for stage in sorted(set(in_file) | set(in_model)):
        f, m = in_file.get(stage, set()), in_model.get(stage, set())
        if (f - m) or (f and "a" in f and (m - f)):
            return ("the file's backbone is {} (stage {}: {}), the model's is {} (stage {}: "
                    "{})".format(_resnet_name(in_file), stage, _block_range(f) if f else
                                 "none", _resnet_name(in_model), stage,
                                 _block_range(m) if m else "none"))
    return None


def _backbone_fix(file_names):
    name = _resnet_name(_backbone_blocks(file_names))
    if name in ("ResNet-50", "ResNet-101"):
        return "set BACKBONE = \"resnet{}\" in the config to match the file".format(
            name.split("-")[1])
    return "use a config whose BACKBONE matches the file"


def weights_backbone(filepath):
    """"resnet50" or "resnet101" when the file holds a classic ResNet backbone of that
    depth, else None (no backbone layers, or another one)."""
    layers, _ = read_weight_file(filepath)
    names = set(layers) | {inner for entries in layers.values() for inner, _, _ in entries}
    name = _resnet_name(_backbone_blocks(names))
    return {"ResNet-50": "resnet50", "ResNet-101": "resnet101"}.get(name)


def sha256_file(path):
    """The SHA-256 hex digest of a file (weights are identified by it in run.json,
    MLflow and model cards)."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_weights_by_name(keras_model, filepath, by_name=True, exclude=None,
                         allow_partial=False):
    """Load a weight file into a Keras model, matching layers by name.

    by_name=False requires the file to hold every weight layer of the model (and no
    other); by_name=True loads the layers the two share and leaves the rest.
    exclude: layer names to skip (e.g. the class-specific layers when NUM_CLASSES
    differs).
    allow_partial: by default a file whose ResNet backbone differs from the model's
    (ResNet-101 weights for a ResNet-50 model: by name, stage 4 would load only in
    part) raises WeightsError; True loads the shared layers and only warns.
    Raises WeightsError (naming the file and the layer) when the file shares no layer
    with the model, or holds NaN or infinite values. Nothing is changed unless the
    whole load can go ahead.
    Returns {"loaded": [...], "not_in_model": [...], "not_in_file": [...]}.
    """
    exclude = set(exclude or [])
    file_layers, file_format = read_weight_file(filepath)
    model_layers = weight_layers(keras_model)
    nested = {name for name, layer in model_layers.items() if hasattr(layer, "layers")}
    targets = {name: layer for name, layer in model_layers.items() if name not in nested}
    for name in nested:
        if name in exclude:
            exclude.update(l.name for l in model_layers[name].layers)

    # Resolve groups to layers: a group named like one of our weight layers is that
    # layer; any other group (a nested model) is split by its inner layer names.
    resolved = {}
    for group_name, entries in file_layers.items():
        for inner, short, array in entries:
            owner = group_name if group_name in targets else inner
            resolved.setdefault(owner, []).append((short, array))
    file_layers = resolved

    wanted = {n for n in targets if n not in exclude}
    available = {n for n in file_layers if n not in exclude}
    not_in_file = sorted(wanted - available)
    not_in_model = sorted(available - wanted - nested)
    if not (wanted & available):
        raise WeightsError(
            "{} shares no layer with the model: it holds {} layers ({}{}), none of them "
            "among the model's {} (e.g. {}){}. It is not a Mask R-CNN or ResNet weight file "
            "of this library's layer names; check the path.".format(
                filepath, len(available), ", ".join(sorted(available)[:5]),
                ", ..." if len(available) > 5 else "", len(wanted),
                ", ".join(sorted(wanted)[:3]),
                " (after exclude)" if exclude else ""))
    mismatch = backbone_mismatch(available, wanted)
    if mismatch:
        text = ("{}: {}, so loading by name would leave part of the backbone at random "
                "values. Fix: {}".format(filepath, mismatch, _backbone_fix(available)))
        if not allow_partial:
            raise WeightsError(text + " (or pass allow_partial=True to load the shared "
                                      "layers anyway).")
        log.warning("%s; loading the shared layers only (allow_partial=True)", text)
    for name in sorted(wanted & available):
        for short, array in file_layers[name]:
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise WeightsError(
                    "{}: layer {} weight {} holds {} NaN or infinite values of {}; the file "
                    "is damaged (bit rot, a bad copy) or was saved from a diverged model. "
                    "Download or copy it again, or use an earlier checkpoint.".format(
                        filepath, name, short or "#", int(np.sum(~np.isfinite(array))),
                        array.size))
    if not by_name and (not_in_file or not_in_model):
        raise WeightsError(
            "load_weights({}, by_name=False): the file and the model hold different layers "
            "(in the model only: {}; in the file only: {}). Use by_name=True to load the "
            "layers they share.".format(filepath, not_in_file[:10], not_in_model[:10]))

    assignments = []
    for name in sorted(wanted & available):
        layer = targets[name]
        saved = file_layers[name]
        variables = list(layer.weights)
        if len(saved) != len(variables):
            raise WeightsError("layer {}: the file has {} weights, the model {}".format(
                name, len(saved), len(variables)))
        by_short = {v.name: v for v in variables}
        use_names = all(s in by_short for s, _ in saved) and \
            len({s for s, _ in saved}) == len(saved) == len(by_short)
        for i, (short, array) in enumerate(saved):
            var = by_short[short] if use_names else variables[i]
            if tuple(var.shape) != tuple(array.shape):
                raise WeightsError(_shape_message(name, var, array, filepath))
            assignments.append((var, array))
    for var, array in assignments:  # nothing changes unless everything fits
        var.assign(array.astype(var.dtype))
    loaded = sorted(wanted & available)
    log.info("loaded %d layers from %s (%s format)", len(loaded), filepath, file_format)
    return {"loaded": loaded, "not_in_model": not_in_model, "not_in_file": not_in_file}


def _shape_message(name, var, array, filepath):
    text = ("layer {}: weight '{}' has shape {} in {} but {} in the model.".format(
        name, var.name, tuple(array.shape), os.path.basename(filepath), tuple(var.shape)))
    if name in CLASS_SPECIFIC_LAYERS:
        text += (" The file was trained with another NUM_CLASSES. To fine-tune on your "
                 "classes, load with exclude=[\"mrcnn_class_logits\", \"mrcnn_bbox_fc\", "
                 "\"mrcnn_bbox\", \"mrcnn_mask\"].")
    else:
        text += (" The file is for another architecture (check BACKBONE and the other "
                 "config values), or exclude this layer.")
    return text


def save_weights_classic(keras_model, filepath):
    """Write the model's weights in the classic Keras 2 HDF5 layout (by layer name).

    The nested rpn_model is stored as one group whose weight names carry the inner
    layer name. The file is written to a temporary name and renamed when complete.
    """
    filepath = os.fspath(filepath)
    os.makedirs(os.path.dirname(os.path.abspath(filepath)) or ".", exist_ok=True)
    tmp = filepath + ".part"
    layers = []
    for layer in keras_model.layers:
        if not layer.weights:
            continue
        layers.append(layer)
    with h5py.File(tmp, "w") as f:
        # Fixed-length byte strings, as Keras 2 wrote them
        f.attrs["layer_names"] = np.array([l.name.encode("utf8") for l in layers], dtype="S")
        f.attrs["backend"] = b"tensorflow"
        import keras
        f.attrs["keras_version"] = keras.__version__.encode("utf8")
        for layer in layers:
            g = f.create_group(layer.name)
            names = []
            if hasattr(layer, "layers"):
                for inner in layer.layers:
                    for v in inner.weights:
                        names.append(("{}/{}:0".format(inner.name, v.name), v))
            else:
                for v in layer.weights:
                    names.append(("{}/{}:0".format(layer.name, v.name), v))
            g.attrs["weight_names"] = np.array([n.encode("utf8") for n, _ in names], dtype="S")
            for n, v in names:
                # Fletcher-32 checksums: a file damaged later fails to read, naming
                # the dataset, instead of loading wrong values (any HDF5 reader
                # understands the filter)
                array = np.asarray(v.numpy())
                g.create_dataset(n, data=array, fletcher32=array.ndim > 0 and array.size > 0)
        f.flush()
    with open(tmp, "rb+") as f:  # on disk before the rename makes it the checkpoint
        os.fsync(f.fileno())
    os.replace(tmp, filepath)
    return filepath


def find_last_checkpoint(model_dir, name):
    """The last checkpoint of the latest training run named ``name`` under model_dir
    (what ``MaskRCNN.find_last`` returns, without building a model)."""
    name = (name or "").lower()
    dir_names = sorted(d for d in (os.listdir(model_dir) if os.path.isdir(model_dir) else [])
                       if d.startswith(name) and os.path.isdir(os.path.join(model_dir, d)))
    if not dir_names:
        raise FileNotFoundError(
            "Could not find a model directory for NAME={!r} under {}; train first, or "
            "give load_weights a path.".format(name, model_dir))
    for dir_name in reversed(dir_names):
        folder = os.path.join(model_dir, dir_name)
        checkpoints = sorted(f for f in os.listdir(folder)
                             if CHECKPOINT_NAME.fullmatch(f))
        for checkpoint in reversed(checkpoints):
            path = os.path.join(folder, checkpoint)
            problem = checkpoint_problem(path)
            if problem is None:
                return path
            log.warning("find_last: skipping %s (%s)", path, problem)
    raise FileNotFoundError("Could not find weight files in {} (newest run {})".format(
        model_dir, dir_names[-1]))


def checkpoint_problem(path):
    """Why a checkpoint file cannot be loaded (a short text), or None when it opens as a
    weight file. Checkpoints are written to a temporary name and renamed when complete,
    so this only catches files damaged afterwards (a disk that filled up, a partial copy)."""
    try:
        with h5py.File(path, "r") as f:
            if "layer_names" not in f.attrs and "model_weights" not in f and "layers" not in f:
                return "not a Keras weight file"
    except OSError as e:
        return "unreadable: {}".format(str(e).split(";")[0][:120])
    return None
