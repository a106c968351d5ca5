"""The names the sample scripts used to import from here. The command line moved into the
installed package (``mrcnn.cli``); this module only re-exports it for older scripts::

    from samples import common
    common.main(common.Sample("mine", MyConfig, load_mine), argv)
"""
from mrcnn.cli.common import (COCO_CLASS_NAMES, DEFAULT_LOGS, WEIGHT_CHOICES,  # noqa: F401
                              CliError, Sample, SampleError, check_layers, class_names_for,
                              coco_weights_path, configs, inference_version,
                              load_config_class, load_initial_weights, parse_schedule,
                              resolve_weights, weights_file, with_num_classes)
from mrcnn.cli.detect import (VIDEO_EXTENSIONS, cmd_detect, cmd_inspect,  # noqa: F401
                              detect_video, detection_record, list_images, render)
from mrcnn.cli.evaluate import (cmd_evaluate, inference_model,  # noqa: F401
                                log_evaluation_to_mlflow, write_per_image_csv)
from mrcnn.cli.main import build_parser  # noqa: F401
from mrcnn.cli.main import run_sample as main  # noqa: F401
from mrcnn.cli.train import cmd_train, default_augmentation  # noqa: F401
