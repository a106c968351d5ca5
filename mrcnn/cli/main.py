"""The command lines: ``mrcnn <command>`` (installed) and the samples' ``train.py``.

Both are built by ``build_parser(sample)``; the installed command is the sample whose
loader reads ``--format`` (see ``mrcnn.cli.data``), plus ``calculate-ap`` and the
``export``, ``demo`` and ``modelcard`` commands of ``python -m mrcnn.export`` /
``mrcnn.demo`` / ``mrcnn.modelcard``, to which it hands its arguments.
"""
import argparse
import logging
import os
import sys

from . import logs
from .common import DEFAULT_LOGS, CliError, MrcnnConfig, Sample
from .data import FormatLoader, add_format_arguments
from .data import FORMATS_HELP

DELEGATES = {
    "export": ("mrcnn.export", "export weights as a SavedModel or ONNX file "
                               "(python -m mrcnn.export)"),
    "demo": ("mrcnn.demo", "serve a web page that runs a model on uploaded images "
                           "(python -m mrcnn.demo)"),
    "modelcard": ("mrcnn.modelcard", "write MODEL_CARD.md for trained weights "
                                     "(python -m mrcnn.modelcard)"),
    "launch": ("mrcnn.launch", "start N local workers of one multi-worker training run: "
                               "launch --workers N -- train ... (python -m mrcnn.launch)"),
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option's default in its help, unless the help
    says it already or there is none to say (a flag, or an option without a value)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default == [] \
                or default is argparse.SUPPRESS or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def _sub(sub, name, help_text, description=None):
    return sub.add_parser(name, help=help_text, description=description or help_text,
                          formatter_class=HelpFormatter)


def _common(q, dataset_required, weights_required=True):
    q.add_argument("--dataset", required=dataset_required, default=None, metavar="PATH",
                   help="the dataset (a folder, or an annotation file)" +
                   ("" if dataset_required else "; detect takes its class names from it "
                    "(default: none)"))
    q.add_argument("--weights", "--model", dest="weights", required=weights_required,
                   metavar="WEIGHTS",
                   help="coco | torchvision-coco | imagenet | last | none | the path of a .h5 "
                        "file (--model is the classic coco sample's name for it; "
                        "torchvision-coco: torchvision's COCO Mask R-CNN, converted once)")
    q.add_argument("--logs", default=DEFAULT_LOGS, metavar="DIR",
                   help="folder of training runs and checkpoints")
    q.add_argument("--config", default=None, metavar="SPEC",
                   help="the Config: module:Class, file.py:Class, file.py, or a run's "
                        "config.json (default: the sample's; for mrcnn, the config.json "
                        "beside the weights, else the classic defaults)")
    _set_and_verbose(q)


def _set_and_verbose(q):
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a Config value, e.g. --set IMAGES_PER_GPU=4 --set "
                        "MEAN_PIXEL=[120,115,100]; values are Python/JSON literals; "
                        "repeatable; checked like the Config itself (default: none)")
    q.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's own log lines (hidden by default)")


def build_parser(sample, extra_commands=True):
    """(parser, {command: run(sample, args)}) for a sample."""
    from .detect import cmd_detect, cmd_inspect
    from .evaluate import cmd_calculate_ap, cmd_evaluate
    from .train import DEFAULT_EPOCHS, cmd_train
    generic = sample.config_from_weights
    p = argparse.ArgumentParser(
        prog=sample.prog, formatter_class=HelpFormatter,
        description=sample.description or "Mask R-CNN sample: {}".format(sample.name))
    from .. import __version__
    p.add_argument("--version", action="version", version="mrcnn " + __version__,
                   help="print the version of mrcnn and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = _sub(sub, "train", "train (one stage, or --schedule), for --epochs or --minutes",
             "Train. Loads and checks the data and the configuration first, prints a\n"
             "short run block, and writes config.json, split.json, class_names.json and\n"
             "run.json beside the checkpoints; after each epoch, losses.csv and\n"
             "history.json; losses.png at most once a minute and at the end.")
    _common(t, True)
    t.add_argument("--layers", default="heads",
                   help="heads | 3+ | 4+ | 5+ | all | a regex of layer names")
    t.add_argument("--epochs", type=int, default=None,
                   help="the epoch to train up to, cumulative (default: {}, or as many as "
                        "--minutes allows)".format(DEFAULT_EPOCHS))
    t.add_argument("--minutes", type=float, default=None,
                   help="time budget: stop at the epoch (or step) where it is spent and keep "
                        "that checkpoint (default: no budget)")
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: the config's LEARNING_RATE)")
    t.add_argument("--schedule", default=None,
                   help="staged training, e.g. heads:40,4+:120,all:160@0.0001 (cumulative "
                        "epochs; a stage without @LR uses --lr; replaces --layers/--epochs; "
                        "default: one stage)")
    t.add_argument("--augment", action="store_true", help="flips, scale/rotate, brightness")
    t.add_argument("--steps", type=int, default=None,
                   help="training steps per epoch (default: the config's STEPS_PER_EPOCH)")
    t.add_argument("--val-steps", type=int, default=None,
                   help="validation steps per epoch (default: the config's VALIDATION_STEPS)")
    t.add_argument("--seed", type=int, default=None,
                   help="repeatable image order and augmentation, and the split's seed; "
                        "later --schedule stages and resumed runs derive theirs from it "
                        "(default: a random order; split seed 0)")
    t.add_argument("--quiet", action="store_true", help="one line per epoch, no progress bar")
    t.add_argument("--save-every", type=int, default=1, metavar="N",
                   help="write the epoch's checkpoint every N epochs (and after the last); "
                        "the best one by val_loss is kept as mask_rcnn_<name>_best.h5 "
                        "(default: 1)")
    t.add_argument("--mlflow", default=None, metavar="URI",
                   help="also log to MLflow (a folder such as mlruns, sqlite:///x.db, a URL; "
                        "default: no MLflow; uploads the best and the last checkpoint)")

    e = _sub(sub, "evaluate", "COCO metrics, per-image AP and PR curves (and the loss on "
                              "--subset test)")
    _common(e, True)
    e.add_argument("--subset", default=None,
                   help="which part to evaluate: train, val, test or all (default: {})".format(
                       sample.default_eval_subset))
    e.add_argument("--limit", type=int, default=None,
                   help="the first N images only (default: all)")
    e.add_argument("--iou", type=float, nargs="+", default=[0.5],
                   help="IoU thresholds of the per-image AP")
    e.add_argument("--min-confidence", type=float, default=None,
                   help="override DETECTION_MIN_CONFIDENCE (default: the config's)")
    e.add_argument("--mask-threshold", type=float, default=None,
                   help="override DETECTION_MASK_THRESHOLD (default: the config's)")
    e.add_argument("--loss", action=argparse.BooleanOptionalAction, default=None,
                   help="also compute the training losses on the subset (default: only for "
                        "--subset test)")
    e.add_argument("--out", default="out/evaluation", help="folder for JSON, CSV, PNG")
    e.add_argument("--mlflow", default=None, metavar="URI",
                   help="also log the metrics and PNGs to MLflow (default: no MLflow)")
    e.add_argument("--mlflow-run", default=None,
                   help="the run to add them to (default: the training run of the weights)")

    d = _sub(sub, "detect", "detect on images or a video; write PNGs / a video and "
                            "detections.json")
    _common(d, False)
    d.add_argument("--image", default=None,
                   help="an image file or a folder of images (default: none)")
    d.add_argument("--video", default=None,
                   help="a video file, written back with the masks (default: none)")
    d.add_argument("--splash", action="store_true",
                   help="colour splash: gray image, instances in colour")
    d.add_argument("--min-confidence", type=float, default=None,
                   help="override DETECTION_MIN_CONFIDENCE (default: the config's)")
    d.add_argument("--mask-threshold", type=float, default=None,
                   help="override DETECTION_MASK_THRESHOLD (default: the config's)")
    d.add_argument("--out", default="out/detect", help="output folder")

    i = _sub(sub, "inspect", "draw dataset images with their ground truth (PNG)")
    i.add_argument("--dataset", required=True, metavar="PATH",
                   help="the dataset (a folder, or an annotation file)")
    i.add_argument("--subset", default=None, help="train, val, test or all (default: train)")
    i.add_argument("--count", type=int, default=4, help="images to draw")
    i.add_argument("--dpi", type=int, default=60, help="resolution of the PNG")
    i.add_argument("--out", default="out/inspect", help="output folder")
    i.add_argument("--verbose", action="store_true", help="show all log lines")

    commands = {"train": cmd_train, "evaluate": cmd_evaluate, "detect": cmd_detect,
                "inspect": cmd_inspect}
    parsers = {"train": t, "evaluate": e, "detect": d, "inspect": i}
    if extra_commands:
        c = _sub(sub, "calculate-ap", "per-image AP (the classic compute_ap): a table and "
                                      "a CSV")
        add_calculate_ap_arguments(c, sample)
        commands["calculate-ap"] = cmd_calculate_ap
        parsers["calculate-ap"] = c
    for name, (add, run) in sample.commands.items():
        q = _sub(sub, name, (run.__doc__ or "").strip().split("\n")[0])
        add(q)
        commands[name] = run
    if sample.add_arguments:
        for name, q in parsers.items():
            sample.add_arguments(q, name)
    if generic:
        from .convert import add_convert_arguments, cmd_convert
        q = _sub(sub, "convert", "convert torchvision weights (.pth) to mrcnn weights (.h5)",
                 "Convert a torchvision Mask R-CNN v1 (maskrcnn_resnet50_fpn) state_dict or\n"
                 "checkpoint, or a torchvision ResNet-50/101 (the backbone alone), to mrcnn's\n"
                 "classic HDF5 layout, and write OUT.json beside it: the TorchvisionConfig\n"
                 "settings and NUM_CLASSES, for --config. PyTorch is not needed.")
        add_convert_arguments(q)
        commands["convert"] = cmd_convert
        for name, (module, text) in DELEGATES.items():
            sub.add_parser(name, help=text, add_help=False)
    return p, commands


def add_calculate_ap_arguments(c, sample):
    _common(c, True)
    c.add_argument("--subset", default=None,
                   help="train, val, test or all (default: {})".format(
                       sample.default_eval_subset))
    c.add_argument("--iou", type=float, nargs="+", default=[0.5],
                   help="IoU thresholds (the first is the main one)")
    c.add_argument("--limit", type=int, default=None, help="the first N images (default: all)")
    c.add_argument("--min-confidence", type=float, default=None,
                   help="override DETECTION_MIN_CONFIDENCE (default: the config's)")
    c.add_argument("--csv", default="out/per_image_ap.csv", help="the CSV to write")


def run_command(sample, run, args):
    """Run a parsed command; a CliError prints one line and exits with code 2."""
    logs.setup(getattr(args, "verbose", False))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command in ("train", "evaluate", "detect", "inspect", "calculate-ap"):
            return run(sample, args)
        return run(args)
    except CliError as e:
        print("error: {}".format(e), file=sys.stderr)
        raise SystemExit(2)
    except KeyboardInterrupt as e:
        # Ctrl-C: one line, not a traceback; what was finished is on disk
        hint = {"train": "the epochs finished before it are saved; resume with "
                         "--weights last",
                "download": "run the same command again to resume"}.get(args.command,
                                                                        "stopped")
        print("interrupted: {}".format(str(e) or hint), file=sys.stderr)
        raise SystemExit(130)


def run_sample(sample, argv=None):
    """Parse the command line of a sample and run the command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = build_parser(sample)
    args = parser.parse_args(argv)
    args._argv = argv
    return run_command(sample, commands[args.command], args)


# ---------------------------------------------------------------- the installed command

def mrcnn_sample():
    """The installed command as a Sample: the --format loaders, the classic defaults."""
    return Sample(
        "mrcnn", MrcnnConfig, FormatLoader(), add_arguments=add_format_arguments,
        classes_from_data=True, default_eval_subset="val", config_from_weights=True,
        prog="mrcnn",
        description="Mask R-CNN: train, evaluate and run models on your own data, with "
                    "no Python to write.\n\nmrcnn COMMAND --help shows a command's options."
                    "\n\n" + FORMATS_HELP)


def _option_value(argv, name):
    for k, a in enumerate(argv):
        if a == name and k + 1 < len(argv):
            return argv[k + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1:]
    return None


def delegate(command, argv):
    """Hand ``argv`` to ``python -m mrcnn.<command>``'s main. Without --config, the run's
    config.json beside --weights (written by train) is used."""
    import importlib
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    logs.setup(verbose)
    weights = _option_value(argv, "--weights")
    if command != "launch" and weights and _option_value(argv, "--config") is None and \
            "-h" not in argv and \
            "--help" not in argv:
        saved = os.path.join(os.path.dirname(os.path.abspath(weights)), "config.json")
        if os.path.isfile(saved):
            argv = argv + ["--config", saved]
            print("config: {} (beside the weights)".format(saved))
    if command in ("export", "demo") and not any(a in ("-h", "--help") for a in argv):
        logs.import_tensorflow()
    module = importlib.import_module(DELEGATES[command][0])
    if command == "modelcard" and not verbose:
        # a --config module may import TensorFlow; its start-up lines are filtered (the
        # card itself is quick, so holding back stderr until it is written is fine)
        with logs.filtered_stderr():
            return module.main(argv)
    return module.main(argv)


def main(argv=None):
    """``mrcnn COMMAND ...``; errors print one line and exit with code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATES:
        return delegate(argv[0], argv[1:])
    sample = mrcnn_sample()
    return run_sample(sample, argv)
