"""What the export and the web demo share: a ready inference model from files.

``load_inference_model(weights, config)`` turns a weight file and a Config (class,
instance or ``"module:Class"`` spec) into an inference ``MaskRCNN`` that takes one
image at a time, and ``read_class_names`` finds the class names that the samples'
``train`` command writes beside the checkpoints (``class_names.json``).
"""
import json
import os

from .config import Config, ConfigError, load_config_class


def inference_config(config):
    """A copy of ``config`` (Config instance, class or ``"module:Class"``) for inference.

    The batch becomes one image. A training-only resize mode ("crop") is refused
    with the fix, since the result would depend on a random crop.
    """
    if isinstance(config, str):
        config = load_config_class(config)
    if isinstance(config, type):
        config = config()
    if not isinstance(config, Config):
        raise ConfigError("expected a Config subclass, instance or 'module:Class', got {!r}"
                          .format(config))
    if config.IMAGE_RESIZE_MODE == "crop":
        raise ConfigError("{}.IMAGE_RESIZE_MODE is 'crop', a training mode (random crops). "
                          "Use the sample's inference config (e.g. samples.nucleus.nucleus:"
                          "NucleusInferenceConfig) or a subclass with IMAGE_RESIZE_MODE = "
                          "'pad64' or 'square'.".format(type(config).__name__))
    attrs = {"GPU_COUNT": 1, "IMAGES_PER_GPU": 1}
    single = type(type(config).__name__, (type(config),), attrs)()
    # keep values set on the instance (not only on the class)
    for key, value in vars(config).items():
        if key.isupper() and key not in attrs and key not in ("BATCH_SIZE", "IMAGE_SHAPE",
                                                              "IMAGE_META_SIZE"):
            setattr(single, key, value)
    single.validate()
    return single


def load_inference_model(weights, config, model_dir=None):
    """An inference MaskRCNN with ``weights`` loaded (by name, strictly for the heads).

    weights: path to an .h5 / .weights.h5 file; config: see ``inference_config``.
    model_dir: the model's model_dir (default: the folder of ``weights``; inference
    writes nothing there).
    """
    from . import model as modellib
    if not weights or not os.path.isfile(weights):
        raise FileNotFoundError("weight file not found: {}; give the path of a checkpoint "
                                "(e.g. logs/<run>/mask_rcnn_<name>_0010.h5)".format(weights))
    config = inference_config(config)
    # an inference model writes nothing to model_dir: the weights' folder (the training
    # run's) serves, and no empty temporary folder is left behind per call
    model_dir = model_dir or os.path.dirname(os.path.abspath(weights))
    model = modellib.MaskRCNN("inference", config, model_dir)
    model.load_weights(weights, by_name=True)
    return model


def default_class_names(num_classes):
    """"BG", "class_1", ... for a model whose class names nobody wrote down."""
    return ["BG"] + ["class_{}".format(i) for i in range(1, num_classes)]


def class_names_beside(weights):
    """The list in ``class_names.json`` beside a weight file (the samples' ``train``
    writes it there), or None when there is none."""
    path = os.path.join(os.path.dirname(os.path.abspath(weights)), "class_names.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_class_names(weights, num_classes, names=None):
    """Class names for a model: ``names`` if given (a list or a JSON file path), else
    ``class_names.json`` beside the weights, else "BG", "class_1", ... The list has
    NUM_CLASSES entries, background first.
    """
    source = "--class-names"
    if isinstance(names, str):
        source = names
        with open(names) as f:
            names = json.load(f)
    if names is None:
        names = class_names_beside(weights)
        source = "class_names.json beside {}".format(weights)
    if names is None:
        return default_class_names(num_classes)
    names = [str(n) for n in names]
    if len(names) == num_classes - 1:
        names = ["BG"] + names
    if len(names) != num_classes:
        raise ValueError("{}: {} class names, but NUM_CLASSES is {} (background included); "
                         "give NUM_CLASSES names, background first, or NUM_CLASSES - 1 without it"
                         .format(source, len(names), num_classes))
    return names
