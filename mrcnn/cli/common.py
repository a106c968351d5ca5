"""What every command shares: the Sample description, errors, configs, weights, class
names, the run block.

A *sample* is a Config and a loader: ``Sample(name, config, load_dataset, ...)``. The
installed ``mrcnn`` command is the sample whose loader reads ``--format``; the scripts
under ``samples/`` are samples with a fixed loader of their own.
"""
import json
import logging
import os

from ..config import (Config, ConfigError, apply_overrides, inference_config_class,
                      parse_overrides)
from ..config import load_config_class as _load_config_class
from ..inference_model import class_names_beside, default_class_names

log = logging.getLogger("mrcnn.cli")

WEIGHT_CHOICES = ("coco", "torchvision-coco", "imagenet", "last", "none")
# the converted torchvision COCO Mask R-CNN (see mrcnn.cli.convert)
TORCHVISION_COCO = "torchvision-coco"
DEFAULT_LOGS = "logs"

# The 80 COCO "thing" classes in the order of the published mask_rcnn_coco.h5 outputs.
COCO_CLASS_NAMES = [
    "BG", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
    "boat", "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird",
    "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
    "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet", "tv",
    "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster",
    "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush"]


class CliError(Exception):
    """A problem with the command line or the data, reported in one line (exit code 2)."""


SampleError = CliError  # the name the samples used


class MrcnnConfig(Config):
    """The configuration of ``mrcnn train`` without --config: the classic defaults
    (ResNet-101, 1024 px, the COCO weights' architecture), NUM_CLASSES from the data."""
    NAME = "mrcnn"


class Sample(object):
    """What a sample tells the command line.

    name: used in help texts and the MLflow experiment.
    config: the training Config class; inference_config: the inference one (default:
        ``mrcnn.config.inference_config_class`` of the training one).
    load_dataset(dataset_dir, subset, args): a prepared Dataset; subset is "train", "val",
        "test" or "all". Raise CliError when the folder holds no data.
    class_names: names for ``detect`` when the weights' folder has no class_names.json
        (index 0 is the background).
    add_arguments(parser, command): more options for a command (optional).
    commands: {name: (add_arguments(parser), run(args))} for extra commands (download).
    classes_from_data: NUM_CLASSES comes from the data (1 + its classes), not the config.
    default_eval_subset: what ``evaluate`` scores without --subset.
    config_from_weights: without --config, use the config.json that ``train`` wrote
        beside the weights (the installed ``mrcnn`` command does).
    prog: the program name in help texts.
    """

    def __init__(self, name, config, load_dataset, class_names=None, inference_config=None,
                 add_arguments=None, commands=None, description=None,
                 classes_from_data=False, default_eval_subset="val", config_from_weights=False,
                 prog=None):
        self.name = name
        self.config = config
        self.inference_config = inference_config or inference_config_class(config)
        self.load_dataset = load_dataset
        self.class_names = list(class_names) if class_names else None
        self.add_arguments = add_arguments
        self.commands = dict(commands or {})
        self.description = description
        self.classes_from_data = classes_from_data
        self.default_eval_subset = default_eval_subset
        self.config_from_weights = config_from_weights
        self.prog = prog or "python -m samples.{}.train".format(name)


def inference_version(config_class):
    """The inference config class of a training one (see
    ``mrcnn.config.inference_config_class``; kept under the samples' old name)."""
    return inference_config_class(config_class)


def load_config_class(spec):
    """``module:Class``, ``file.py:Class``, ``file.py`` or a run's ``config.json`` -> the
    Config class; CliError naming the problem. A module may import TensorFlow (a
    callable BACKBONE): it is imported first, quietly (see ``mrcnn.cli.logs``)."""
    from . import logs
    if not str(spec).endswith(".json"):
        logs.import_tensorflow()
    try:
        return _load_config_class(spec)
    except ConfigError as e:
        raise CliError(str(e))


# ---------------------------------------------------------------- weights

def coco_weights_path():
    """Where the COCO weights are looked for: $MRCNN_COCO_WEIGHTS, else
    weights/mask_rcnn_coco.h5 (downloaded there on first use when online)."""
    return os.environ.get("MRCNN_COCO_WEIGHTS") or os.path.join("weights", "mask_rcnn_coco.h5")


def find_last(logs, name=None):
    """The newest numbered checkpoint (never ``_best.h5``) that opens, under ``logs``: of
    the runs named ``name`` (the classic ``find_last``), or, without a name, of any run
    (by file time)."""
    from ..weights import CHECKPOINT_NAME, checkpoint_problem, find_last_checkpoint
    if name:
        return find_last_checkpoint(logs, name)
    found = []
    if os.path.isdir(logs):
        for d in os.listdir(logs):
            folder = os.path.join(logs, d)
            if not os.path.isdir(folder):
                continue
            for f in os.listdir(folder):
                if CHECKPOINT_NAME.fullmatch(f):
                    path = os.path.join(folder, f)
                    found.append((os.path.getmtime(path), path))
    for _, path in sorted(found, reverse=True):
        if checkpoint_problem(path) is None:
            return path
    raise FileNotFoundError("no checkpoint (mask_rcnn_<name>_<epoch>.h5) in any run folder "
                            "under {}".format(logs))


def weights_file(spec, name, logs):
    """The file a --weights value names when that is known without building a model
    (a path, the last checkpoint, the COCO file when present), else None."""
    if spec in (None, "none", "imagenet"):
        return None
    if spec == "coco":
        path = coco_weights_path()
        return path if os.path.isfile(path) else None
    if spec == TORCHVISION_COCO:
        path = os.path.join(os.environ.get("MRCNN_WEIGHTS_DIR") or "weights",
                            "maskrcnn_resnet50_fpn_coco.h5")
        return path if os.path.isfile(path) else None
    if spec == "last":
        try:
            return find_last(logs, name)
        except FileNotFoundError:
            return None
    return spec if os.path.isfile(spec) else None


def resolve_weights(model, spec, logs=None, name=None):
    """The file a --weights value names (None for 'none'); downloads the COCO weights
    when they are missing and the machine is online."""
    from .. import utils
    if spec == "none":
        return None
    if spec == "coco":
        path = coco_weights_path()
        if not os.path.isfile(path):
            try:
                utils.download_trained_weights(path)
            except RuntimeError as e:
                raise CliError("--weights coco: {} Or set MRCNN_COCO_WEIGHTS to the file."
                               .format(e))
        return path
    if spec == TORCHVISION_COCO:
        from .convert import torchvision_coco_weights
        return torchvision_coco_weights()
    if spec == "imagenet":
        try:
            return model.get_imagenet_weights()
        except FileNotFoundError as e:
            raise CliError(str(e))
    if spec == "last":
        try:
            return find_last(logs if logs is not None else model.model_dir, name)
        except FileNotFoundError as e:
            raise CliError("--weights last: no checkpoint to resume from ({}). Train "
                           "first, or pass --logs where the checkpoints are.".format(e))
    if not os.path.isfile(spec):
        raise CliError("--weights {}: no such file (use coco, torchvision-coco, imagenet, "
                       "last, none or the path of a .h5 file)".format(spec))
    return spec


def load_initial_weights(model, spec, logs=None, name=None):
    """Load --weights into ``model``; returns the path (or None).

    Files trained for another NUM_CLASSES (the COCO weights for a 4-class model) are
    loaded without the class-specific layers, which then start from random values.
    """
    from ..weights import CLASS_SPECIFIC_LAYERS, WeightsError, weights_num_classes
    path = resolve_weights(model, spec, logs, name)
    if path is None:
        return None
    try:
        file_classes = weights_num_classes(path)
        exclude = []
        if file_classes is not None and file_classes != model.config.NUM_CLASSES:
            exclude = list(CLASS_SPECIFIC_LAYERS)
            print("{} was trained for {} classes, this model has {}: loading it without "
                  "{}".format(path, file_classes, model.config.NUM_CLASSES, ", ".join(exclude)))
        model.load_weights(path, by_name=True, exclude=exclude)
    except WeightsError as e:
        raise CliError(str(e))
    return path


# ---------------------------------------------------------------- configs and classes

def beside(weights_path, name):
    """``name`` in the folder of ``weights_path`` when it exists there, else None."""
    if not weights_path:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(weights_path)), name)
    return path if os.path.isfile(path) else None


def base_config_class(sample, args, weights_path=None):
    """(training class, inference class, where it came from): --config, else the
    config.json beside the weights (for samples that allow it), else the sample's."""
    spec = getattr(args, "config", None)
    if spec:
        train = load_config_class(spec)
        return train, inference_config_class(train), spec
    saved = beside(weights_path, "config.json") if sample.config_from_weights else None
    if saved:
        train = load_config_class(saved)
        return train, inference_config_class(train), saved
    return sample.config, sample.inference_config, None


def with_num_classes(config_class, class_names):
    """The config class with NUM_CLASSES = len(class_names)."""
    if config_class.NUM_CLASSES == len(class_names):
        return config_class
    cls = type(config_class.__name__, (config_class,), {"NUM_CLASSES": len(class_names)})
    cls.__module__ = config_class.__module__
    return cls


# the backbone of the weight files --weights can name without a path
KNOWN_BACKBONES = {"coco": "resnet101",       # Matterport's mask_rcnn_coco.h5
                   TORCHVISION_COCO: "resnet50",  # torchvision's maskrcnn_resnet50_fpn
                   "imagenet": "resnet50"}    # the Keras ImageNet ResNet-50


def match_flavour(config_class, args, overrides):
    """With --weights torchvision-coco, the config class with TorchvisionConfig's
    architecture settings (those not given with --set): the converted weights need
    torchvision's network. Returns (class, a note or None)."""
    if getattr(args, "weights", None) != TORCHVISION_COCO:
        return config_class, None
    from ..config import TORCHVISION_SETTINGS, TorchvisionConfig
    # the architecture and detection rule; resizing stays the config's (training
    # needs its fixed shape)
    values = {k: getattr(TorchvisionConfig, k) for k in TORCHVISION_SETTINGS
              if k not in overrides and k not in ("BACKBONE", "IMAGE_RESIZE_MODE",
                                                  "IMAGE_MIN_DIM", "IMAGE_MAX_DIM")}
    changed = {k: v for k, v in values.items()
               if _differs(getattr(config_class, k, None), v)}
    if not changed:
        return config_class, None
    cls = apply_overrides(config_class, changed)
    return cls, "torchvision's architecture for --weights torchvision-coco ({} settings of " \
        "TorchvisionConfig)".format(len(changed))


def _differs(a, b):
    import numpy as np
    try:
        return not np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
    except Exception:
        return a != b


def weights_backbone_for(spec, config_class, logs):
    """The ResNet ("resnet50" / "resnet101") of the file --weights names, when known
    without building a model, else None."""
    if spec in KNOWN_BACKBONES:
        return KNOWN_BACKBONES[spec]
    path = weights_file(spec, config_class.NAME, logs) if spec not in (None, "none") else None
    if not path:
        return None
    from ..weights import WeightsError, weights_backbone
    try:
        return weights_backbone(path)
    except (WeightsError, OSError):
        return None  # the load reports a broken file, naming it


def match_backbone(config_class, args, overrides):
    """The config class with BACKBONE set to the ResNet of the --weights file when the
    two differ (the published COCO weights are ResNet-101; most configs say ResNet-50),
    so that no backbone stage loads only in part. A BACKBONE given with --set, or a
    callable backbone, is left alone (a mismatch is then refused at load, with the fix).
    Returns (class, a note for the run block or None)."""
    if "BACKBONE" in overrides or not isinstance(config_class.BACKBONE, str):
        return config_class, None
    wanted = weights_backbone_for(getattr(args, "weights", None), config_class,
                                  getattr(args, "logs", None))
    if wanted is None or wanted == config_class.BACKBONE:
        return config_class, None
    note = "BACKBONE = {} to match the weights (the config says {})".format(
        wanted, config_class.BACKBONE)
    return apply_overrides(config_class, {"BACKBONE": wanted}), note


def configs(sample, args, class_names=None, weights_path=None):
    """(training config class, inference config class), with --config (or the run's
    config.json), --set, the backbone of --weights and, for samples whose classes come
    from the data, NUM_CLASSES from class_names applied; CliError when a value is
    refused. The classes carry ``_backbone_note`` (not a config value) when the
    backbone was changed."""
    train, infer, _ = base_config_class(sample, args, weights_path)
    try:
        overrides = parse_overrides(getattr(args, "set", None) or [])
        if class_names is not None and sample.classes_from_data:
            train = with_num_classes(train, class_names)
            infer = with_num_classes(infer, class_names)
        train = apply_overrides(train, overrides)
        # detection takes one image at a time, whatever the training batch
        infer = apply_overrides(infer, {k: v for k, v in overrides.items()
                                        if k not in ("GPU_COUNT", "IMAGES_PER_GPU")})
        train, note = match_backbone(train, args, overrides)
        infer, _ = match_backbone(infer, args, overrides)
        train, flavour = match_flavour(train, args, overrides)
        infer, _ = match_flavour(infer, args, overrides)
    except ConfigError as e:
        raise CliError(str(e))
    if flavour:
        note = "; ".join(n for n in (note, flavour) if n)
    train._backbone_note = infer._backbone_note = note
    return train, infer


def class_names_for(weights_path, sample, args, spec=None):
    """Class names for detection, by the one rule: class_names.json beside the weights
    (``train`` writes it), else --classes, else the --dataset's, else the sample's, else
    the COCO names for --weights coco, else "class_1", "class_2", ...
    """
    if weights_path:
        names = class_names_beside(weights_path)
        if names is not None:
            return list(names)
    classes = getattr(args, "classes", None)
    if classes:
        return ["BG"] + split_names(classes)
    if getattr(args, "dataset", None):
        # the installed command's loader reads the whole dataset; a sample's has fixed parts
        subset = "all" if sample.config_from_weights else "val"
        return list(sample.load_dataset(args.dataset, subset, args).class_names)
    if sample.class_names:
        return list(sample.class_names)
    if spec == "coco":
        return list(COCO_CLASS_NAMES)
    if spec == TORCHVISION_COCO:
        from ..convert_torchvision import TORCHVISION_COCO_CATEGORIES
        return ["BG"] + list(TORCHVISION_COCO_CATEGORIES[1:])
    n = None
    if weights_path:
        from ..weights import weights_num_classes
        n = weights_num_classes(weights_path)
    return default_class_names(n or configs(sample, args)[1].NUM_CLASSES)


def split_names(text):
    """"a,b, c" -> ["a", "b", "c"] (a name may not be empty)."""
    names = [n.strip() for n in str(text).split(",")]
    if not names or any(not n for n in names):
        raise CliError("--classes {!r}: give the class names separated by commas, e.g. "
                       "--classes cat,dog".format(text))
    return names


# ---------------------------------------------------------------- schedules and layers

def check_layers(spec):
    """A layer preset or a regex that compiles; CliError otherwise."""
    import re
    presets = ("heads", "3+", "4+", "5+", "all")
    if spec in presets:
        return spec
    try:
        re.compile(spec)
    except re.error as e:
        raise CliError("--layers {!r}: not a preset ({}) and not a valid regular expression "
                       "({}). Quote it in the shell, e.g. --layers 'mrcnn_.*'.".format(
                           spec, ", ".join(presets), e))
    return spec


def parse_schedule(text, learning_rate):
    """``heads:40,4+:120,all:160`` -> [(layers, epochs, lr), ...].

    Epochs are cumulative, as for ``train(epochs=...)``: the example trains heads for
    epochs 1-40, 4+ for 41-120 and all layers for 121-160. A stage may set its own
    learning rate with ``@``: ``all:160@0.0001``; otherwise it uses ``learning_rate``.
    """
    import re
    stages = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        m = re.fullmatch(r"(.+):(\d+)(?:@([0-9.eE+-]+))?", part)
        if not m:
            raise CliError("--schedule: {!r} is not LAYERS:EPOCH[@LR] (example: "
                           "heads:40,4+:120,all:160@0.0001)".format(part))
        layers, epoch, lr = m.group(1), int(m.group(2)), m.group(3)
        try:
            lr = float(lr) if lr else learning_rate
        except ValueError:
            raise CliError("--schedule: {!r} has a bad learning rate".format(part))
        if stages and epoch <= stages[-1][1]:
            raise CliError("--schedule: epochs are cumulative (the epoch each stage trains "
                           "up to), so they must grow: {!r} after {}".format(part,
                                                                          stages[-1][1]))
        stages.append((check_layers(layers), epoch, lr))
    if not stages:
        raise CliError("--schedule is empty")
    return stages


def write_json(path, data):
    """Write JSON atomically; returns the path."""
    tmp = path + ".part"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
    return path
