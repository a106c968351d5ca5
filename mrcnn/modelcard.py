"""Write a model card (MODEL_CARD.md) for trained weights.

    python -m mrcnn.modelcard --weights logs/traffic20261122T0900/mask_rcnn_traffic_0060.h5 \\
        --config samples.traffic.traffic:TrafficConfig --eval out/eval/evaluation.json \\
        [--about about.json] [--out MODEL_CARD.md]

What it knows by itself: the architecture and backbone and the main config values
(from the Config class), the classes (``class_names.json`` beside the weights, written
by the samples' train command), the training schedule and final losses
(``history.json`` there), the weight file's size and date, and the metrics of an
evaluation JSON written by ``samples ... evaluate`` or ``mrcnn.evaluate.save_report``
(the COCO table and the per-image mAP).

What only you know goes in ``--about`` (a JSON object, every key optional):
``{"description", "training_data", "intended_use", "out_of_scope", "limitations",
"biases", "license", "authors", "citation"}``; strings, or lists of strings for bullet
lists. Sections you leave out say so instead of inventing text.

No TensorFlow is imported: a card can be written on any machine.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import sys

ABOUT_KEYS = ("description", "training_data", "intended_use", "out_of_scope", "limitations",
              "biases", "license", "authors", "citation")
NOT_GIVEN = "_Not provided. Pass it in `--about` (key `{}`)._"


def load_config(spec):
    """``module:Class`` or ``file.py:Class`` -> a Config instance."""
    from .config import load_config_class
    return load_config_class(spec)()


def _side_file(weights, name):
    path = os.path.join(os.path.dirname(os.path.abspath(weights)), name)
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return None


def _num(v, digits=3):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float) and v < 0:
        return "-"  # pycocotools: nothing to average
    return "{:.{}f}".format(v, digits) if isinstance(v, float) else str(v)


def _rate(value):
    """A learning rate as history.json holds it (a float at the epoch's end, or a text)."""
    return "{:.4g}".format(value) if isinstance(value, (int, float)) else str(value)


def _text(value, key):
    if value in (None, "", []):
        return NOT_GIVEN.format(key)
    if isinstance(value, (list, tuple)):
        return "\n".join("- {}".format(v) for v in value)
    return str(value)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def architecture_section(config):
    backbone = config.BACKBONE if isinstance(config.BACKBONE, str) else \
        "custom ({})".format(getattr(config.BACKBONE, "__name__", "callable"))
    rows = [
        ("Architecture", "Mask R-CNN (FPN), Matterport-style, Keras 3 / TensorFlow 2"),
        ("Backbone", backbone),
        ("Classes (incl. background)", config.NUM_CLASSES),
        ("Input", "{} resize, IMAGE_MIN_DIM {}, IMAGE_MAX_DIM {}, {} channels".format(
            config.IMAGE_RESIZE_MODE, config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM,
            config.IMAGE_CHANNEL_COUNT)),
        ("Anchors", "scales {}, ratios {}".format(tuple(config.RPN_ANCHOR_SCALES),
                                                  list(config.RPN_ANCHOR_RATIOS))),
        ("Detection", "up to {} instances, min confidence {}, NMS {}".format(
            config.DETECTION_MAX_INSTANCES, config.DETECTION_MIN_CONFIDENCE,
            config.DETECTION_NMS_THRESHOLD)),
        ("Masks", "{}x{} per instance, pasted at the image size".format(*config.MASK_SHAPE)),
    ]
    lines = ["| | |", "|---|---|"] + ["| {} | {} |".format(k, v) for k, v in rows]
    return "\n".join(lines)


def _data_text(run):
    """'240 images (ShapesDataset, /data/shapes); validated on 60 images (...)' from
    run.json, or None."""
    stages = (run or {}).get("stages") or []
    if not stages:
        return None

    def one(summary):
        where = summary.get("folder") or "built in memory"
        return "{} images ({}, `{}`)".format(summary["images"], summary["class"], where)
    first = stages[0]
    text = "Trained on " + one(first["train_dataset"]) if first.get("train_dataset") else \
        "Training data not recorded"
    if first.get("val_dataset"):
        text += "; validated on " + one(first["val_dataset"])
    return text + " (from run.json)."


def _hardware_text(run):
    stages = (run or {}).get("stages") or []
    if not run or not run.get("machine"):
        return None
    from .machine import one_line
    seconds = sum(s.get("seconds", 0) for s in stages)
    return "**Hardware and time.** {}; {:.1f} minutes of training over {} stage{}.".format(
        one_line(run["machine"]), seconds / 60.0, len(stages), "" if len(stages) == 1 else "s")


def _start_text(run):
    if not run:
        return None
    start = run.get("initial_weights")
    if not start:
        return "**Fine-tuned from:** nothing: trained from random weights."
    excluded = ", excluding {}".format(", ".join(start["excluded"])) if start.get("excluded") \
        else ""
    return "**Fine-tuned from:** `{}` (sha256 `{}`, {} layers loaded{}).".format(
        os.path.basename(start["path"]), start["sha256"][:16], start.get("layers_loaded"),
        excluded)


def training_section(config, history, about, run=None):
    data = about.get("training_data") or _data_text(run)
    lines = ["**Data.** " + _text(data, "training_data"), ""]
    for text in (_start_text(run), _hardware_text(run)):
        if text:
            lines += [text, ""]
    if history:
        stages = []   # [layers, first epoch, last epoch, first lr, last lr]
        for h in history:
            if not stages or stages[-1][0] != h.get("layers"):
                stages.append([h.get("layers"), h["epoch"], h["epoch"], h.get("lr"),
                               h.get("lr")])
            stages[-1][2], stages[-1][4] = h["epoch"], h.get("lr")
        lines.append("**Schedule** (from history.json): " + "; ".join(
            "layers `{}` for epochs {}-{} at lr {}".format(
                layers, a, b, _rate(lr0) if lr0 == lr1 or not isinstance(lr0, (int, float))
                else "{} -> {}".format(_rate(lr0), _rate(lr1)))
            for layers, a, b, lr0, lr1 in stages) + ".")
        last = history[-1]
        losses = ", ".join("{} {:.4f}".format(k, v) for k, v in sorted(last.items())
                           if k.endswith("loss") and isinstance(v, (int, float)))
        lines.append("")
        lines.append("**Final losses** (epoch {}): {}.".format(last["epoch"], losses))
    else:
        lines.append("**Schedule:** no history.json beside the weights (it is written by the "
                     "samples' train command).")
    lines.append("")
    optimizer = "SGD, momentum {}".format(config.LEARNING_MOMENTUM) \
        if config.OPTIMIZER == "SGD" else config.OPTIMIZER
    lines.append("Optimiser: {}, gradient norm clipped at {}, weight decay {}; "
                 "{} image(s) per step; TRAIN_BN = {}, TRAIN_BN_AFFINE = {}.".format(
                     optimizer, config.GRADIENT_CLIP_NORM, config.WEIGHT_DECAY,
                     config.BATCH_SIZE, config.TRAIN_BN, config.TRAIN_BN_AFFINE))
    return "\n".join(lines)


def metrics_section(report):
    if not report:
        return ("_No evaluation given. Run `python -m samples.<name>.train evaluate ...` and "
                "pass its evaluation.json with `--eval`._")
    lines = []
    coco = report.get("coco", {})
    types = [t for t in ("bbox", "segm") if t in coco]
    if types:
        lines.append("COCO-style (pycocotools) on {} images, {} detections:".format(
            coco.get("num_images"), coco.get("num_detections")))
        lines.append("")
        lines.append("| metric | " + " | ".join(types) + " |")
        lines.append("|---|" + "---|" * len(types))
        for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100"):
            if all(name in coco[t] for t in types):
                lines.append("| {} | {} |".format(name, " | ".join(_num(coco[t][name])
                                                                   for t in types)))
        cats = coco[types[0]].get("per_category") or {}
        if cats:
            lines += ["", "Per class (AP / AP50):", "",
                      "| class | " + " | ".join("{} AP | {} AP50".format(t, t)
                                                for t in types) + " |",
                      "|---|" + "---|---|" * len(types)]
            for c in cats:
                entry = cats[c]
                label = "{} ({})".format(entry.get("name", c), entry["category_id"]) \
                    if "category_id" in entry else str(c)
                lines.append("| {} | {} |".format(label, " | ".join(
                    "{} | {}".format(_num(coco[t]["per_category"][c]["AP"]),
                                     _num(coco[t]["per_category"][c]["AP50"]))
                    for t in types)))
    per = report.get("per_image")
    if per:
        lines += ["", "Per image, the classic way (`utils.compute_ap`, mean over {} images with "
                  "ground truth; {} without were left out):".format(per.get("num_images"),
                                                                    per.get("num_skipped")),
                  "", "- mAP @ IoU {}: {}".format(per.get("iou_threshold", 0.5),
                                                  _num(per.get("mAP")))]
        for key in sorted(k for k in per if k.startswith("mAP@")):
            lines.append("- mAP @ IoU {}: {}".format(key[4:], _num(per[key])))
        lines.append("- mAP @ IoU 0.50:0.95: {}".format(_num(per.get("mAP_range"))))
    if report.get("dataset"):
        lines += ["", "Evaluated on: `{}`.".format(report["dataset"])]
    return "\n".join(lines)


def getting_started(weights, config, config_spec=None):
    """A snippet that loads these weights and detects, in Python and on the command line."""
    name = os.path.basename(weights)
    module, _, cls = (config_spec or "").rpartition(":")
    if not cls or not module:
        module, cls = "my_config", type(config).__name__
    if module.endswith((".py", ".json")) or os.sep in module:
        load = ["from mrcnn.config import load_config_class",
                "{} = load_config_class(\"{}:{}\")".format(cls, module, cls)]
    else:
        load = ["from {} import {}".format(module, cls)]
    return "\n".join([
        "```python",
        "from mrcnn import model as modellib, utils"] + load + [
        "",
        "class InferenceConfig({}):".format(cls),
        "    GPU_COUNT = 1",
        "    IMAGES_PER_GPU = 1",
        "",
        "model = modellib.MaskRCNN(\"inference\", InferenceConfig(), \"logs\")",
        "model.load_weights(\"{}\", by_name=True)".format(name),
        "r = model.detect([utils.read_image(\"photo.jpg\")])[0]   # rois, class_ids, scores, masks",
        "```", "",
        "or: `mrcnn detect --weights {} --config {}:{} --image photo.jpg --out out/`"
        .format(name, module, cls)])


def known_use(config, class_names, run):
    """What the record says the model is for (used when --about gives no intended_use)."""
    classes = ", ".join(class_names[1:]) if class_names else \
        "{} classes".format(config.NUM_CLASSES - 1)
    data = _data_text(run)
    if data:
        data = data[0].lower() + data[1:].replace(" (from run.json).", "")
    text = ["Instance segmentation (boxes and masks) of: {}.".format(classes),
            "Images like the training data{}.".format(": " + data if data else "")]
    return [t + " _(derived from the training record; give your own with --about)_"
            for t in text]


def known_limitations(config, run, report, class_names):
    """Limitations that follow from the config and the record."""
    items = []
    stages = (run or {}).get("stages") or []
    if stages and stages[0].get("train_dataset"):
        n = stages[0]["train_dataset"]["images"]
        if n < 1000:
            items.append("Trained on only {} images: expect it to miss what those images "
                         "do not show.".format(n))
    smallest = min(config.RPN_ANCHOR_SCALES)
    mode = config.IMAGE_RESIZE_MODE
    if mode == "crop":
        size = "Trained on random {0}x{0} crops of the images".format(config.IMAGE_MIN_DIM)
    elif mode == "square":
        size = "Images are resized to fit {0}x{0}".format(config.IMAGE_MAX_DIM)
    else:
        size = "Images are used at their own size (padded to a multiple of 64)"
    items.append("{}; objects much smaller than the smallest anchor ({} px at that size) are "
                 "often missed.".format(size, smallest))
    items.append("At most {} instances per image; detections below a score of {} are "
                 "dropped.".format(config.DETECTION_MAX_INSTANCES,
                                   config.DETECTION_MIN_CONFIDENCE))
    if not report:
        items.append("Not evaluated: no metrics were given for this card.")
    return [t + " _(derived)_" for t in items]


def build_card(weights, config, eval_report=None, about=None, title=None, config_spec=None):
    """The MODEL_CARD.md text. config_spec: the ``module:Class`` of the config, for the
    getting-started snippet."""
    about = about or {}
    unknown = sorted(set(about) - set(ABOUT_KEYS))
    if unknown:
        raise ValueError("--about has unknown keys {}; use {}".format(unknown, list(ABOUT_KEYS)))
    class_names = _side_file(weights, "class_names.json")
    history = _side_file(weights, "history.json")
    run = _side_file(weights, "run.json")
    if class_names and len(class_names) != config.NUM_CLASSES:
        raise ValueError("class_names.json beside {} has {} names but {}.NUM_CLASSES is {}: "
                         "is --config the one these weights were trained with?".format(
                             weights, len(class_names), type(config).__name__,
                             config.NUM_CLASSES))
    stat = os.stat(weights)
    name = title or "Mask R-CNN: {}".format(config.NAME)
    parts = [
        "# Model card: {}".format(name), "",
        _text(about.get("description"), "description"), "",
        "## Model details", "",
        architecture_section(config), "",
        "Weights: `{}` ({:.1f} MB, {}), sha256 `{}`.".format(
            os.path.basename(weights), stat.st_size / 1e6,
            datetime.datetime.fromtimestamp(stat.st_mtime).strftime("%Y-%m-%d %H:%M"),
            sha256(weights)[:16]), "",
        "Classes: " + (", ".join(class_names[1:]) if class_names else
                       "{} classes (no class_names.json beside the weights)".format(
                           config.NUM_CLASSES - 1)) + ".", "",
        "## Getting started", "",
        getting_started(weights, config, config_spec), "",
        "## Training", "",
        training_section(config, history, about, run), "",
        "## Metrics", "",
        metrics_section(eval_report), "",
        "## Intended use", "",
        _text(about.get("intended_use") or known_use(config, class_names, run),
              "intended_use"), "",
        "Out of scope: " + _text(about.get("out_of_scope"), "out_of_scope"), "",
        "## Limitations", "",
        _text(about.get("limitations") or known_limitations(config, run, eval_report,
                                                            class_names),
              "limitations"), "",
        "## Known biases of the data", "",
        _text(about.get("biases"), "biases"), "",
        "## License and citation", "",
        "License: " + _text(about.get("license"), "license"), "",
        "Authors: " + _text(about.get("authors"), "authors"), "",
        "Citation: " + _text(about.get("citation"), "citation"), "",
        "---",
        "_Written by `python -m mrcnn.modelcard` on {}._".format(
            datetime.date.today().isoformat()), "",
    ]
    return "\n".join(parts)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mrcnn.modelcard",
                                description="Write MODEL_CARD.md for trained weights")
    p.add_argument("--weights", required=True)
    p.add_argument("--config", required=True, help="module:Class of the training Config")
    p.add_argument("--eval", default=None, help="evaluation.json from the evaluate command")
    p.add_argument("--about", default=None, help="JSON with description, intended_use, "
                                                 "limitations, biases, ...")
    p.add_argument("--title", default=None)
    p.add_argument("--out", default="MODEL_CARD.md")
    args = p.parse_args(argv)
    try:
        if not os.path.isfile(args.weights):
            raise ValueError("--weights {}: no such file".format(args.weights))
        config = load_config(args.config)
        report = about = None
        if args.eval:
            with open(args.eval) as f:
                report = json.load(f)
        if args.about:
            with open(args.about) as f:
                about = json.load(f)
        text = build_card(args.weights, config, report, about, args.title,
                          config_spec=args.config)
    except (ValueError, OSError, ImportError, AttributeError) as e:
        print("error: {}".format(e), file=sys.stderr)
        raise SystemExit(2)
    tmp = args.out + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)
    print("wrote", args.out)
    return args.out


if __name__ == "__main__":
    main()
