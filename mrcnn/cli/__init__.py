"""The ``mrcnn`` command line (``mrcnn COMMAND`` or ``python -m mrcnn COMMAND``) and what
the sample scripts under ``samples/`` build on.

    mrcnn train    --format coco --dataset export/ --weights coco --epochs 10
    mrcnn evaluate --format coco --dataset export/ --weights last --subset val
    mrcnn detect   --weights last --image photo.jpg
    mrcnn inspect  --format instance-png --dataset PNGImages --masks PedMasks

Modules: ``main`` (the parsers), ``common`` (Sample, configs, weights, class names),
``data`` (``--format`` loaders and the split), ``train``, ``evaluate`` (and
calculate-ap), ``detect`` (and inspect), ``logs`` (quiet TensorFlow start-up).
"""
from .common import (COCO_CLASS_NAMES, CliError, MrcnnConfig, Sample, SampleError,
                     class_names_for, configs, load_config_class, parse_schedule)
from .main import build_parser, main, run_sample

__all__ = ["COCO_CLASS_NAMES", "CliError", "MrcnnConfig", "Sample", "SampleError",
           "build_parser", "class_names_for", "configs", "load_config_class", "main",
           "parse_schedule", "run_sample"]
