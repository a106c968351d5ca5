"""``evaluate`` (COCO metrics, per-image AP, PR curves, and the loss on the subset) and
``calculate-ap`` (the classic per-image ``compute_ap`` table)."""
import csv
import json
import os
import warnings

import numpy as np

from ..config import apply_overrides
from .common import (CliError, configs, load_initial_weights, resolve_weights,
                     weights_file)


def inference_model(sample, args, class_names=None, weights_path=None):
    """An inference MaskRCNN with --config/--set, --min-confidence and --mask-threshold
    applied and --weights loaded; returns (model, weights path)."""
    from . import logs
    config = configs(sample, args, class_names, weights_path)[1]()
    for option, attr in (("min_confidence", "DETECTION_MIN_CONFIDENCE"),
                         ("mask_threshold", "DETECTION_MASK_THRESHOLD")):
        value = getattr(args, option, None)
        if value is None:
            continue
        if not 0 <= value <= 1:
            raise CliError("--{} {}: a probability is needed, between 0 and 1 "
                           "(it overrides {})".format(option.replace("_", "-"), value, attr))
        setattr(config, attr, value)
    logs.import_tensorflow()
    from .. import model as modellib
    model = modellib.MaskRCNN("inference", config, args.logs)
    path = load_initial_weights(model, args.weights, args.logs, run_name(sample, args))
    return model, path


def run_name(sample, args):
    """The NAME whose runs ``--weights last`` looks in: --config's, else the sample's;
    None (any run) for the installed command without --config."""
    if getattr(args, "config", None):
        from .common import load_config_class
        return load_config_class(args.config).NAME
    return None if sample.config_from_weights else sample.config.NAME


def weights_for(sample, args):
    """The weight file of --weights when known before building a model (else None); a
    missing 'last' is reported here, before anything is loaded."""
    name = run_name(sample, args)
    args._run_name = name
    path = weights_file(args.weights, name, args.logs)
    if args.weights in ("coco", "torchvision-coco") and path is None:
        path = resolve_weights(None, args.weights)  # download now, or say why not
    if args.weights == "last" and path is None:
        raise CliError("--weights last: no checkpoint{} under {}. Train first, or pass --logs "
                       "where the checkpoints are.".format(
                           " of a {}* run".format(name.lower()) if name else "", args.logs))
    return path


def subset_loss(sample, args, dataset, weights_path, class_names):
    """The five training losses (and their weighted sum) of the weights on ``dataset``,
    one image per batch, each image once (training model, inference-mode layers)."""
    import keras
    from .. import model as modellib
    from ..pipeline import make_dataset
    train_cls = configs(sample, args, class_names, weights_path)[0]
    cls = apply_overrides(train_cls, {"GPU_COUNT": 1, "IMAGES_PER_GPU": 1})
    model = modellib.MaskRCNN("training", cls(), args.logs)
    model.load_weights(weights_path, by_name=True)
    with model.strategy.scope():
        model.keras_model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=False)
    ds = make_dataset(dataset, model.config, shuffle=False, repeat=False, seed=0)
    try:
        with warnings.catch_warnings():
            # the pipeline ends after one pass; Keras warns that the data "ran out"
            warnings.filterwarnings("ignore", message=".*ran out of data.*")
            values = model.keras_model.evaluate(ds, verbose=0, return_dict=True)
    finally:
        ds.loader.close()
    return {k: float(v) for k, v in values.items()}


def cmd_evaluate(sample, args):
    from .. import evaluate
    subset = args.subset or sample.default_eval_subset
    path = weights_for(sample, args)
    dataset = sample.load_dataset(args.dataset, subset, args)
    if dataset is None:
        raise CliError("--dataset {}: no {} images (the split gave none); use --subset all "
                       "or --val-fraction".format(args.dataset, subset))
    record = getattr(sample.load_dataset, "record", None) or {}
    if "recorded" in record:
        print("{} subset: {} images, as recorded in {}".format(subset, len(dataset.image_ids),
                                                              record["recorded"]))
    model, path = inference_model(sample, args, dataset.class_names, path)
    os.makedirs(args.out, exist_ok=True)
    report = evaluate.evaluate_model(model, dataset, limit=args.limit,
                                     iou_thresholds=args.iou, plot_dir=args.out)
    report["weights"] = path
    report["dataset"] = os.path.abspath(args.dataset) if args.dataset else None
    report["subset"] = subset
    want_loss = args.loss if args.loss is not None else subset == "test"
    if want_loss and path:
        report["loss"] = subset_loss(sample, args, dataset, path, dataset.class_names)
    print(evaluate.format_report(report))
    if "loss" in report:
        loss = report["loss"]
        print("{} loss {:.4f} ({})".format(subset, loss["loss"], ", ".join(
            "{} {:.4f}".format(k.replace("_loss", ""), v) for k, v in loss.items()
            if k != "loss")))
    json_path = evaluate.save_report(report, os.path.join(args.out, "evaluation.json"))
    csv_path = write_per_image_csv(report["per_image"], os.path.join(args.out, "per_image_ap.csv"))
    print("wrote", json_path)
    print("wrote", csv_path)
    for p in report["coco"].get("pr_curves", {}).values():
        print("wrote", p)
    if getattr(args, "mlflow", None):
        log_evaluation_to_mlflow(sample, args, model, path, report, json_path)
    return report


def log_evaluation_to_mlflow(sample, args, model, weights_path, report, json_path):
    """Add the evaluation to --mlflow-run, else to the training run recorded beside the
    weights (mlflow.json), else to a new run."""
    from ..tracking import MLflowCallback
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


def _mean_keys(ap_keys):
    return ["mAP" + k[2:] for k in ap_keys]


def write_per_image_csv(per_image, path):
    """The per-image AP rows of a calculate_ap report as CSV (one AP column per IoU)."""
    rows = per_image["per_image"]
    ap_keys = [k for k in (rows[0] if rows else {}) if k.startswith("AP")]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
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


def cmd_calculate_ap(sample, args):
    """Per-image AP (the classic ``utils.compute_ap``): one line per image, the means, a
    CSV."""
    from .. import evaluate
    path = weights_for(sample, args)
    dataset = sample.load_dataset(args.dataset, args.subset or sample.default_eval_subset,
                                  args)
    if dataset is None:
        raise CliError("--dataset {}: the subset holds no images; use --subset all"
                       .format(args.dataset))
    model, _ = inference_model(sample, args, dataset.class_names, path)
    # (scored image by image: the full-size masks of the set are never all in memory)
    report = evaluate.calculate_ap(dataset, evaluate.iter_detections(model, dataset,
                                                                     limit=args.limit),
                                   iou_threshold=args.iou)
    extra = ["AP@{:g}".format(t) for t in args.iou[1:]]
    print("{:>6}  {:<40} {:>4} {:>5} {:>7}{} {:>9}".format(
        "image", "reference", "gt", "pred", "AP@{:g}".format(args.iou[0]),
        "".join("{:>8}".format(k) for k in extra), "AP50:95"))
    for r in report["per_image"]:
        print("{:>6}  {:<40} {:>4} {:>5} {:>7.3f}{} {:>9.3f}".format(
            r["image_id"], str(r["reference"])[-40:], r["num_gt"], r["num_pred"], r["AP"],
            "".join("{:>8.3f}".format(r[k]) for k in extra), r["AP_range"]))
    print("mean over {} images: mAP@{:g} = {:.3f}{}, mAP@0.50:0.95 = {:.3f}".format(
        report["num_images"], args.iou[0], report["mAP"],
        "".join(", m{} = {:.3f}".format(k, report["m" + k]) for k in extra),
        report["mAP_range"]))
    print("wrote", write_per_image_csv(report, args.csv))
    return report

