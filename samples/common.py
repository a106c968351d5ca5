"""What the sample scripts share: the ``train`` / ``evaluate`` / ``detect`` commands.

A sample describes itself with a :class:`Sample` (its config, how to load a dataset,
its class names) and calls :func:`main`; every sample then has the same command line::

    python -m samples.<name>.train train    --dataset DIR --weights coco --layers heads --epochs 10
    python -m samples.<name>.train train    --dataset DIR --weights coco --schedule heads:10,4+:20,all:30
    python -m samples.<name>.train evaluate --dataset DIR --weights last [--limit N]
    python -m samples.<name>.train detect   --weights last --image PATH|DIR [--video PATH] [--splash]
    python -m samples.<name>.train inspect  --dataset DIR [--subset train] [--count 4]

``--weights`` takes ``coco`` (the published mask_rcnn_coco.h5), ``imagenet`` (a ResNet-50
backbone), ``last`` (the newest checkpoint under --logs), ``none`` (random weights) or a
file path. When the file was trained for another NUM_CLASSES, the four class-specific
layers are left out by themselves.
"""
import argparse
import csv
import json
import logging
import os
import re
import sys

import numpy as np

from mrcnn.datasets._common import IMAGE_EXTENSIONS
from mrcnn.deploy import class_names_beside

log = logging.getLogger("mrcnn.samples")

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
WEIGHT_CHOICES = ("coco", "imagenet", "last", "none")
DEFAULT_LOGS = "logs"


class SampleError(Exception):
    """A problem with the command line or the data, reported without a traceback."""


class Sample(object):
    """What a sample tells :func:`main`.

    name: used for help texts.
    config: the training Config class; inference_config: the inference one (default: the
        training one with one image per batch).
    load_dataset(dataset_dir, subset, args): a prepared Dataset; subset is "train" or
        "val". Raise SampleError when the folder holds no data.
    class_names: names for ``detect`` when the weights' folder has no class_names.json
        (index 0 is the background).
    add_arguments(parser, command): more options for a command (optional).
    commands: {name: (add_arguments(parser), run(args))} for extra commands (download).
    classes_from_data: NUM_CLASSES comes from the data (1 + its classes), not the config.
    default_eval_subset: what ``evaluate`` scores without --subset.
    """

    def __init__(self, name, config, load_dataset, class_names=None, inference_config=None,
                 add_arguments=None, commands=None, description=None,
                 classes_from_data=False, default_eval_subset="val"):
        self.name = name
        self.config = config
        self.inference_config = inference_config or inference_version(config)
        self.load_dataset = load_dataset
        self.class_names = list(class_names) if class_names else None
        self.add_arguments = add_arguments
        self.commands = dict(commands or {})
        self.description = description
        self.classes_from_data = classes_from_data
        self.default_eval_subset = default_eval_subset


def inference_version(config_class):
    """The config class for detection: one image per batch; a training config that
    takes random crops detects on whole images padded to a multiple of 64."""
    class InferenceConfig(config_class):
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
    if config_class.IMAGE_RESIZE_MODE == "crop":
        InferenceConfig.IMAGE_RESIZE_MODE = "pad64"
        InferenceConfig.IMAGE_MIN_DIM = 64
        InferenceConfig.IMAGE_MAX_DIM = max(2048, config_class.IMAGE_MAX_DIM)
    InferenceConfig.__name__ = config_class.__name__.replace("Config", "") + "InferenceConfig"
    return InferenceConfig


# ---------------------------------------------------------------- arguments

def check_layers(spec):
    """A layer preset or a regex that compiles; SampleError otherwise."""
    from mrcnn.training import LAYER_PRESETS
    if spec in LAYER_PRESETS:
        return spec
    try:
        re.compile(spec)
    except re.error as e:
        raise SampleError("--layers {!r}: not a preset ({}) and not a valid regular expression "
                          "({}). Quote it in the shell, e.g. --layers 'mrcnn_.*'.".format(
                              spec, ", ".join(LAYER_PRESETS), e))
    return spec


def parse_schedule(text, learning_rate):
    """``heads:40,4+:120,all:160`` -> [(layers, epochs, lr), ...].

    Epochs are cumulative, as for ``train(epochs=...)``: the example trains heads for
    epochs 1-40, 4+ for 41-120 and all layers for 121-160. A stage may set its own
    learning rate with ``@``: ``all:160@0.0001``; otherwise it uses --lr.
    """
    stages = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        m = re.fullmatch(r"(.+):(\d+)(?:@([0-9.eE+-]+))?", part)
        if not m:
            raise SampleError("--schedule: {!r} is not LAYERS:EPOCH[@LR] (example: "
                              "heads:40,4+:120,all:160@0.0001)".format(part))
        layers, epoch, lr = m.group(1), int(m.group(2)), m.group(3)
        try:
            lr = float(lr) if lr else learning_rate
        except ValueError:
            raise SampleError("--schedule: {!r} has a bad learning rate".format(part))
        if stages and epoch <= stages[-1][1]:
            raise SampleError("--schedule: epochs are cumulative (the epoch each stage trains "
                              "up to), so they must grow: {!r} after {}".format(part,
                                                                             stages[-1][1]))
        stages.append((check_layers(layers), epoch, lr))
    if not stages:
        raise SampleError("--schedule is empty")
    return stages


# ---------------------------------------------------------------- weights

def coco_weights_path():
    """Where the COCO weights are looked for: $MRCNN_COCO_WEIGHTS, else
    weights/mask_rcnn_coco.h5 (downloaded there on first use when online)."""
    return os.environ.get("MRCNN_COCO_WEIGHTS") or os.path.join("weights", "mask_rcnn_coco.h5")


def resolve_weights(model, spec):
    """The file a --weights value names (None for 'none')."""
    from mrcnn import utils
    if spec == "none":
        return None
    if spec == "coco":
        path = coco_weights_path()
        if not os.path.isfile(path):
            try:
                utils.download_trained_weights(path)
            except RuntimeError as e:
                raise SampleError(str(e))
        return path
    if spec == "imagenet":
        try:
            return model.get_imagenet_weights()
        except FileNotFoundError as e:
            raise SampleError(str(e))
    if spec == "last":
        try:
            return model.find_last()
        except FileNotFoundError as e:
            raise SampleError("--weights last: no checkpoint to resume from ({}). Train "
                              "first, or pass --logs where the checkpoints are.".format(e))
    if not os.path.isfile(spec):
        raise SampleError("--weights {}: no such file (use coco, imagenet, last, none or the "
                          "path of a .h5 file)".format(spec))
    return spec


def load_initial_weights(model, spec):
    """Load --weights into ``model``; returns the path (or None).

    Files trained for another NUM_CLASSES (the COCO weights for a 4-class model) are
    loaded without the class-specific layers, which then start from random values.
    """
    from mrcnn.weights import CLASS_SPECIFIC_LAYERS, WeightsError, weights_num_classes
    path = resolve_weights(model, spec)
    if path is None:
        log.info("starting from random weights")
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
        raise SampleError(str(e))
    print("loaded weights", path)
    return path


def weights_guess(spec, config_class, logs):
    """The file --weights names when that is known without a model (a path, or the
    last checkpoint), else None."""
    from mrcnn.model import find_last_checkpoint
    if spec == "last":
        try:
            return find_last_checkpoint(logs, config_class.NAME)
        except FileNotFoundError:
            return None
    return spec if spec not in WEIGHT_CHOICES and os.path.isfile(spec) else None


def class_names_for(weights_path, sample, args):
    """Class names for detection: class_names.json beside the weights (written by the
    train command), else the --dataset's, else the sample's, else "class k"."""
    if weights_path:
        beside = class_names_beside(weights_path)
        if beside is not None:
            return beside
    if getattr(args, "dataset", None):
        return list(sample.load_dataset(args.dataset, "val", args).class_names)
    if sample.class_names:
        return list(sample.class_names)
    n = configs(sample, args)[0].NUM_CLASSES
    return ["BG"] + ["class {}".format(k) for k in range(1, n)]


def with_num_classes(config_class, class_names):
    """The config class with NUM_CLASSES = len(class_names)."""
    return type(config_class.__name__, (config_class,), {"NUM_CLASSES": len(class_names)})


# ---------------------------------------------------------------- commands

def load_config_class(spec):
    """``module:Class`` (or ``path/to/file.py:Class``) -> the Config class."""
    from mrcnn.config import ConfigError
    from mrcnn.config import load_config_class as load
    try:
        return load(spec)
    except ConfigError as e:
        raise SampleError(str(e))


def configs(sample, args, class_names=None):
    """(training config class, inference config class), --config applied, and
    NUM_CLASSES from class_names for samples whose classes come from the data."""
    if getattr(args, "config", None):
        train_cls = load_config_class(args.config)
        infer_cls = inference_version(train_cls)
    else:
        train_cls, infer_cls = sample.config, sample.inference_config
    if class_names is not None and sample.classes_from_data:
        train_cls = with_num_classes(train_cls, class_names)
        infer_cls = with_num_classes(infer_cls, class_names)
    return train_cls, infer_cls


def cmd_train(sample, args):
    from mrcnn import model as modellib
    train = sample.load_dataset(args.dataset, "train", args)
    val = sample.load_dataset(args.dataset, "val", args)
    config = configs(sample, args, train.class_names)[0]()
    if args.steps:
        config.STEPS_PER_EPOCH = args.steps
    if args.val_steps:
        config.VALIDATION_STEPS = args.val_steps
    if args.schedule:
        stages = parse_schedule(args.schedule, args.lr)
    else:
        stages = [(check_layers(args.layers), args.epochs, args.lr)]
    print("training on {} images, validating on {}".format(len(train.image_ids),
                                                          len(val.image_ids)))
    config.display()
    model = modellib.MaskRCNN("training", config, args.logs)
    load_initial_weights(model, args.weights)
    augmentation = default_augmentation() if args.augment else None
    callbacks = []
    if args.mlflow:
        from mrcnn.tracking import MLflowCallback
        callbacks.append(MLflowCallback(model, tracking_uri=args.mlflow, experiment=sample.name))
    history = []
    for layers, epochs, lr in stages:
        print("stage: layers={} up to epoch {} at lr {}".format(layers, epochs, lr))
        h = model.train(train, val, learning_rate=lr, epochs=epochs, layers=layers,
                        augmentation=augmentation, seed=args.seed, custom_callbacks=callbacks,
                        verbose=2 if args.quiet else 1)
        for i, epoch in enumerate(h.epoch):
            history.append({"epoch": epoch + 1, "layers": layers, "lr": lr,
                            **{k: float(v[i]) for k, v in h.history.items()}})
        # the class names go beside the checkpoints, for detect and evaluate
        with open(os.path.join(model.log_dir, "class_names.json"), "w") as f:
            json.dump(list(train.class_names), f)
    last = model.find_last()
    history_path = os.path.join(model.log_dir, "history.json")
    if os.path.isfile(history_path):  # a resumed run: keep the earlier epochs
        with open(history_path) as f:
            done = [h for h in json.load(f) if h["epoch"] < (history or [{"epoch": 1e9}])[0]
                    ["epoch"]]
        history = done + history
    with open(history_path, "w") as f:
        json.dump(history, f, indent=1)
    if callbacks:
        with open(os.path.join(model.log_dir, "mlflow.json"), "w") as f:
            json.dump({"tracking_uri": callbacks[0].tracking_uri,
                       "run_id": callbacks[0].run_id}, f)
        print("MLflow run", callbacks[0].run_id, "in", callbacks[0].tracking_uri)
    print("last checkpoint:", last)
    return last


def default_augmentation():
    """The --augment pipeline: flips, small scale/rotation, brightness (imgaug)."""
    import imgaug.augmenters as iaa
    return iaa.Sequential([
        iaa.Fliplr(0.5),
        iaa.Sometimes(0.5, iaa.Affine(scale=(0.8, 1.2), rotate=(-10, 10))),
        iaa.Sometimes(0.5, iaa.Multiply((0.8, 1.2))),
    ])


def inference_model(sample, args, class_names=None):
    from mrcnn import model as modellib
    config = configs(sample, args, class_names)[1]()
    for option, attr in (("min_confidence", "DETECTION_MIN_CONFIDENCE"),
                         ("mask_threshold", "DETECTION_MASK_THRESHOLD")):
        value = getattr(args, option, None)
        if value is None:
            continue
        if not 0 <= value <= 1:
            raise SampleError("--{} {}: a probability is needed, between 0 and 1 "
                              "(it overrides {})".format(option.replace("_", "-"), value, attr))
        setattr(config, attr, value)
    model = modellib.MaskRCNN("inference", config, args.logs)
    path = load_initial_weights(model, args.weights)
    return model, path


def cmd_evaluate(sample, args):
    from mrcnn import evaluate
    subset = args.subset or sample.default_eval_subset
    dataset = sample.load_dataset(args.dataset, subset, args)
    model, path = inference_model(sample, args, dataset.class_names)
    os.makedirs(args.out, exist_ok=True)
    report = evaluate.evaluate_model(model, dataset, limit=args.limit,
                                     iou_thresholds=args.iou, plot_dir=args.out)
    report["weights"] = path
    report["dataset"] = os.path.abspath(args.dataset) if args.dataset else None
    print(evaluate.format_report(report))
    json_path = evaluate.save_report(report, os.path.join(args.out, "evaluation.json"))
    csv_path = write_per_image_csv(report["per_image"], os.path.join(args.out, "per_image_ap.csv"))
    print("wrote", json_path)
    print("wrote", csv_path)
    for p in report["coco"].get("pr_curves", {}).values():
        print("wrote", p)
    if args.mlflow:
        log_evaluation_to_mlflow(sample, args, model, path, report, json_path)
    return report


def log_evaluation_to_mlflow(sample, args, model, weights_path, report, json_path):
    """Add the evaluation to --mlflow-run, else to the training run recorded beside the
    weights (mlflow.json), else to a new run."""
    from mrcnn.tracking import MLflowCallback
    tracker = MLflowCallback(model, tracking_uri=args.mlflow, experiment=sample.name,
                             run_name="evaluate")
    run_id = args.mlflow_run
    side = os.path.join(os.path.dirname(os.path.abspath(weights_path or ".")), "mlflow.json")
    if not run_id and weights_path and os.path.isfile(side):
        with open(side) as f:
            run_id = json.load(f).get("run_id")
    tracker.run_id = run_id
    tracker.log_evaluation(report, json_path=json_path)
    print("MLflow run", tracker.run_id, "in", tracker.tracking_uri)
    return tracker.run_id


def write_per_image_csv(per_image, path):
    """The per-image AP rows of a calculate_ap report as CSV (one AP column per IoU)."""
    rows = per_image["per_image"]
    ap_keys = [k for k in (rows[0] if rows else {}) if k.startswith("AP")]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "reference", "num_gt", "num_pred"] + ap_keys)
        for r in rows:
            w.writerow([r["image_id"], r["reference"], r["num_gt"], r["num_pred"]] +
                       ["" if r[k] is None or np.isnan(r[k]) else "{:.4f}".format(r[k])
                        for k in ap_keys])
        w.writerow(["mean", "", "", ""] + ["{:.4f}".format(per_image[m]) if
                                           not np.isnan(per_image[m]) else ""
                                           for m in _mean_keys(ap_keys)])
    return path


def _mean_keys(ap_keys):
    return ["mAP" + k[2:] for k in ap_keys]


def list_images(path):
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path)
                       if n.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise SampleError("--image {}: the folder holds no images ({})".format(
                path, ", ".join(IMAGE_EXTENSIONS)))
        return files
    if not os.path.exists(path):
        raise SampleError("--image {}: no such file or folder".format(path))
    return [path]


def render(image, r, class_names, splash):
    from mrcnn import visualize
    if splash:
        return visualize.color_splash(image, r["masks"])
    return visualize.draw_detections(image, r["rois"], r["masks"], r["class_ids"],
                                     class_names, r["scores"])


def detection_record(name, r, class_names):
    return {"image": name, "detections": [
        {"class_id": int(c), "class_name": class_names[int(c)] if int(c) < len(class_names)
         else str(int(c)), "score": round(float(s), 4),
         "box_yxyx": [int(v) for v in b], "mask_pixels": int(r["masks"][:, :, i].sum())}
        for i, (c, s, b) in enumerate(zip(r["class_ids"], r["scores"], r["rois"]))]}


def cmd_detect(sample, args):
    from mrcnn import utils
    from PIL import Image
    if not args.image and not args.video:
        raise SampleError("detect needs --image PATH|DIR or --video PATH")
    images = list_images(args.image) if args.image else []
    if args.video and not os.path.isfile(args.video):
        raise SampleError("--video {}: no such file".format(args.video))
    names = class_names_for(weights_guess(args.weights, configs(sample, args)[0], args.logs),
                            sample, args)
    model, path = inference_model(sample, args, names)
    os.makedirs(args.out, exist_ok=True)
    suffix = "splash" if args.splash else "detections"
    records, written = [], []
    for file in images:
        try:
            image = utils.read_image(file)
        except Exception as e:  # a corrupt file: say which, go on with the others
            print("skipping {}: {}".format(file, e), file=sys.stderr)
            continue
        r = model.detect([image], verbose=0)[0]
        stem = os.path.splitext(os.path.basename(file))[0]
        target = os.path.join(args.out, "{}_{}.png".format(stem, suffix))
        Image.fromarray(render(image, r, names, args.splash)).save(target)
        records.append(detection_record(os.path.basename(file), r, names))
        written.append(target)
        print("{}: {} instances -> {}".format(file, len(r["class_ids"]), target))
    if args.video:
        written.append(detect_video(model, args.video, args.out, names, args.splash,
                                    records))
    with open(os.path.join(args.out, "detections.json"), "w") as f:
        json.dump(records, f, indent=1)
    return written


def detect_video(model, video_path, out_dir, class_names, splash, records=None):
    """Detect on every frame of a video and write the rendered frames as a new video
    (<out_dir>/<name>_splash.mp4 or _detections.mp4), with a progress bar."""
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise SampleError("video needs imageio and imageio-ffmpeg: pip install imageio "
                          "imageio-ffmpeg")
    from tqdm import tqdm
    stem = os.path.splitext(os.path.basename(video_path))[0]
    target = os.path.join(out_dir, "{}_{}.mp4".format(stem, "splash" if splash else
                                                      "detections"))
    try:
        reader = imageio.get_reader(video_path)
    except Exception as e:
        raise SampleError("--video {}: cannot read it as a video ({})".format(video_path, e))
    meta = reader.get_meta_data()
    fps = meta.get("fps") or 25
    frames = meta.get("nframes")
    if not isinstance(frames, int):  # ffmpeg reports inf; estimate from the duration
        frames = int(round(meta["duration"] * fps)) if meta.get("duration") else None
    part = target + ".part.mp4"
    writer = imageio.get_writer(part, fps=fps, macro_block_size=1)
    count = 0
    try:
        for count, frame in enumerate(tqdm(reader, desc="video", unit="frame",
                                                  total=frames), start=1):
            frame = np.asarray(frame)[..., :3]
            r = model.detect([frame], verbose=0)[0]
            writer.append_data(render(frame, r, class_names, splash))
            if records is not None:
                records.append(detection_record("{}#{}".format(os.path.basename(video_path),
                                                               count - 1), r, class_names))
    finally:
        writer.close()
        reader.close()
    os.replace(part, target)
    print("{}: {} frames -> {}".format(video_path, count, target))
    return target


def cmd_inspect(sample, args):
    """Draw the first --count images of a subset with their ground-truth masks and boxes
    (checks that a dataset loads as intended before training on it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mrcnn import utils, visualize
    subset = args.subset or "train"
    dataset = sample.load_dataset(args.dataset, subset, args)
    ids = list(dataset.image_ids[:args.count])
    cols = min(len(ids), 4)
    rows = (len(ids) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 4.5 * rows), squeeze=False)
    counts = []
    for ax, image_id in zip(axes.ravel(), ids):
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask_checked(image_id, image_shape=image.shape)
        counts.append(len(class_ids))
        crowded = len(class_ids) > 20  # many small instances: masks only, no captions
        visualize.display_instances(image, utils.extract_bboxes(masks), masks, class_ids,
                                    dataset.class_names, ax=ax, show_bbox=not crowded,
                                    captions=[""] * len(class_ids) if crowded else None,
                                    title="{} ({} instances)"
                                    .format(str(dataset.image_reference(image_id))[-24:],
                                            len(class_ids)))
    for ax in axes.ravel()[len(ids):]:
        ax.axis("off")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "{}_{}_ground_truth.png".format(sample.name, subset))
    fig.savefig(path, dpi=args.dpi, bbox_inches="tight")
    plt.close(fig)
    print("{} subset: {} images, {} classes ({}); drew {} images ({} instances) -> {}".format(
        subset, len(dataset.image_ids), dataset.num_classes - 1,
        ", ".join(dataset.class_names[1:6]) + (" ..." if dataset.num_classes > 6 else ""),
        len(ids), sum(counts), path))
    return path


# ---------------------------------------------------------------- command line

def build_parser(sample):
    p = argparse.ArgumentParser(
        prog="python -m samples.{}.train".format(sample.name),
        description=sample.description or "Mask R-CNN sample: {}".format(sample.name))
    sub = p.add_subparsers(dest="command", required=True)

    def common(q, dataset_required):
        q.add_argument("--dataset", required=dataset_required, default=None,
                       help="the dataset folder")
        q.add_argument("--weights", required=True,
                       help="coco | imagenet | last | none | PATH of a .h5 file")
        q.add_argument("--logs", default=DEFAULT_LOGS,
                       help="folder of training runs and checkpoints (default: logs)")
        q.add_argument("--config", default=None,
                       help="module:Class of another Config to use (default: the sample's)")

    t = sub.add_parser("train", help="train (one stage, or --schedule)")
    common(t, True)
    t.add_argument("--layers", default="heads",
                   help="heads | 3+ | 4+ | 5+ | all | a regex of layer names (default: heads)")
    t.add_argument("--epochs", type=int, default=10, help="epoch to train up to (cumulative)")
    t.add_argument("--lr", type=float, default=0.001, help="learning rate (default 0.001)")
    t.add_argument("--schedule", default=None,
                   help="staged training, e.g. heads:40,4+:120,all:160@0.0001 (cumulative "
                        "epochs; overrides --layers/--epochs)")
    t.add_argument("--augment", action="store_true", help="flips, scale/rotate, brightness")
    t.add_argument("--steps", type=int, default=None, help="override STEPS_PER_EPOCH")
    t.add_argument("--val-steps", type=int, default=None, help="override VALIDATION_STEPS")
    t.add_argument("--seed", type=int, default=None, help="repeatable image order")
    t.add_argument("--quiet", action="store_true", help="one line per epoch, no bar")
    t.add_argument("--mlflow", default=None, metavar="URI",
                   help="also log to MLflow (a folder such as mlruns, sqlite:///x.db, a URL)")

    e = sub.add_parser("evaluate", help="COCO table + per-image compute_ap report")
    common(e, True)
    e.add_argument("--subset", default=None,
                   help="which part to evaluate: train, val or all (default: {})".format(
                       sample.default_eval_subset))
    e.add_argument("--limit", type=int, default=None, help="first N images only (default: all)")
    e.add_argument("--iou", type=float, nargs="+", default=[0.5],
                   help="IoU thresholds of the per-image AP (default: 0.5)")
    e.add_argument("--min-confidence", type=float, default=None,
                   help="override DETECTION_MIN_CONFIDENCE")
    e.add_argument("--mask-threshold", type=float, default=None,
                   help="override DETECTION_MASK_THRESHOLD (default 0.5)")
    e.add_argument("--out", default="out/evaluation", help="folder for JSON, CSV, PNG")
    e.add_argument("--mlflow", default=None, metavar="URI",
                   help="also log the metrics and PNGs to MLflow")
    e.add_argument("--mlflow-run", default=None,
                   help="the run to add them to (default: the training run of the weights)")

    d = sub.add_parser("detect", help="detect on images or a video; write PNGs / a video")
    common(d, False)
    d.add_argument("--image", default=None, help="an image file or a folder of images")
    d.add_argument("--video", default=None, help="a video file (written back with masks)")
    d.add_argument("--splash", action="store_true",
                   help="colour splash: gray image, instances in colour")
    d.add_argument("--min-confidence", type=float, default=None,
                   help="override DETECTION_MIN_CONFIDENCE")
    d.add_argument("--mask-threshold", type=float, default=None,
                   help="override DETECTION_MASK_THRESHOLD (default 0.5)")
    d.add_argument("--out", default="out/detect", help="output folder")

    i = sub.add_parser("inspect", help="draw dataset images with their ground truth (PNG)")
    i.add_argument("--dataset", required=True, help="the dataset folder")
    i.add_argument("--subset", default=None, help="train, val or all (default: train)")
    i.add_argument("--count", type=int, default=4, help="images to draw (default 4)")
    i.add_argument("--dpi", type=int, default=60)
    i.add_argument("--out", default="out/inspect", help="output folder")

    commands = {"train": cmd_train, "evaluate": cmd_evaluate, "detect": cmd_detect,
                "inspect": cmd_inspect}
    for name, (add, run) in sample.commands.items():
        q = sub.add_parser(name, help=(run.__doc__ or "").strip().split("\n")[0])
        add(q)
        commands[name] = run
    if sample.add_arguments:
        for name, q in (("train", t), ("evaluate", e), ("detect", d), ("inspect", i)):
            sample.add_arguments(q, name)
    return p, commands


def main(sample, argv=None):
    """Parse the command line and run a command; errors print one line, exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser, commands = build_parser(sample)
    args = parser.parse_args(argv)
    run = commands[args.command]
    try:
        if args.command in ("train", "evaluate", "detect", "inspect"):
            return run(sample, args)
        return run(args)
    except SampleError as e:
        print("error: {}".format(e), file=sys.stderr)
        raise SystemExit(2)
