"""Train Mask R-CNN on the synthetic shapes from scratch (CPU friendly), then detect on
held-out images, print mAP@0.5 and write a picture of detections beside ground truth.

    python samples/shapes/train.py --minutes 22 --out out/shapes
    python samples/shapes/train.py --quick        # the demo's run: QuickShapesConfig
    (or python -m samples.shapes.train ... from the repository root)

Without pretrained weights (none can be downloaded here), the network starts from
random weights; the default config uses a small residual backbone (a callable BACKBONE,
as the classic API allows) with trainable batch norm, 64x64 images and few ROIs, so
that it learns within minutes on two CPU cores. --backbone resnet50 uses the classic one.
"""
if not __package__:  # run as a file (python samples/shapes/train.py): find the samples package
    import os
    import sys
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "samples.shapes"
if __name__ == "__main__":  # quiet TensorFlow start-up unless --verbose
    import sys
    from mrcnn.cli import logs
    logs.setup("--verbose" in sys.argv)
    logs.import_tensorflow()

import argparse
import json
import os
import time

import keras
import numpy as np

from mrcnn import utils, visualize
from mrcnn import model as modellib
from mrcnn.callbacks import EpochProgress, TimeBudget, TimeCosine
from mrcnn.backbone import small_backbone, small_backbone_shapes
from mrcnn.config import apply_overrides, inference_config_class
from samples.shapes.shapes import ShapesConfig, ShapesDataset


class ShapesTrainConfig(ShapesConfig):
    """Shapes from scratch on a CPU."""
    NAME = "shapes"
    IMAGES_PER_GPU = 4
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    BACKBONE = staticmethod(small_backbone)
    COMPUTE_BACKBONE_SHAPE = staticmethod(small_backbone_shapes)
    TRAIN_BN = None               # from scratch: batch norm must learn
    TOP_DOWN_PYRAMID_SIZE = 128
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    # the shapes are 20-37 px wide: their anchors (16, 32) on the dense levels P2, P3
    RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    POST_NMS_ROIS_TRAINING = 200
    POST_NMS_ROIS_INFERENCE = 100
    TRAIN_ROIS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 8
    MINI_MASK_SHAPE = (28, 28)
    MASK_HEAD_CHANNELS = 64       # a quarter of the classic width: 3.7x faster steps
    DETECTION_MIN_CONFIDENCE = 0.5
    STEPS_PER_EPOCH = 500
    VALIDATION_STEPS = 2
    LEARNING_RATE = 0.02
    WEIGHT_DECAY = 0.0001


# what the --quick run (the demo) should reach on held-out shapes, mAP@0.5
QUICK_TARGET = 0.9
QUICK_MINUTES = 4.5


class QuickShapesConfig(ShapesTrainConfig):
    """The demo's config: mAP@0.5 >= QUICK_TARGET on held-out shapes in QUICK_MINUTES
    of training on 2 CPU cores (bench/RESULTS.md). A narrower network (a step costs 40% of
    ShapesTrainConfig's), GT boxes among the training ROIs (the heads learn from the
    first step), AdamW, and masks without batch norm, sampled pixel-aligned."""
    IMAGES_PER_GPU = 8
    STEPS_PER_EPOCH = 100
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    RPN_HEAD_CHANNELS = 128
    MASK_HEAD_CHANNELS = 32
    MASK_HEAD_BN = False
    ROI_ALIGN_PIXEL_ALIGNED = True
    TRAIN_ROIS_INCLUDE_GT = True
    OPTIMIZER = "AdamW"
    LEARNING_RATE = 0.003
    # most of what the short run gets wrong is the class of a shape found twice (as a
    # square and as a triangle): twice the weight on the classifier's loss halves those
    LOSS_WEIGHTS = dict(ShapesTrainConfig.LOSS_WEIGHTS, mrcnn_class_loss=2.0)
    # Detection as torchvision evaluates: a candidate per class per ROI, down to a score
    # of 0.05. A shape the short run scores as square 0.6 and triangle 0.4 is then also
    # found as its true class; low-score candidates rank after the others, so they can
    # only add to AP. On the same checkpoints (bench/RESULTS.md, demo): +0.02 to +0.03
    # mAP@0.5 at the end of a run, +0.1 after 3 epochs, against the classic rule at 0.3.
    # The picture shows the best of them per shape, when it scores DRAW_MIN_SCORE or more.
    DETECTION_PER_CLASS = True
    DETECTION_MIN_CONFIDENCE = 0.05


# detections drawn in the sample's picture (the mAP counts them all; see drawn())
DRAW_MIN_SCORE = 0.5


class ResNetShapesConfig(ShapesTrainConfig):
    BACKBONE = "resnet50"
    COMPUTE_BACKBONE_SHAPE = None
    TOP_DOWN_PYRAMID_SIZE = 256
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    MASK_HEAD_CHANNELS = 256


def make_inference_config(train_config):
    """The inference config of a training config instance (the package's one rule)."""
    return inference_config_class(type(train_config))()


def evaluate(model, dataset):
    """Mean compute_ap @ 0.5 (classic) over the dataset's images."""
    aps = []
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        gt_mask, gt_ids = dataset.load_mask(image_id)
        r = model.detect([image])[0]
        ap = utils.compute_ap(utils.extract_bboxes(gt_mask), gt_ids, gt_mask, r["rois"],
                              r["class_ids"], r["scores"], r["masks"])[0]
        aps.append(ap)
    return float(np.nanmean(aps))


def drawn(r, iou=0.5):
    """Which detections the picture shows: those scoring at least DRAW_MIN_SCORE, and of
    several that overlap (one shape found as two classes), the best-scoring one."""
    keep = np.zeros(len(r["scores"]), bool)
    above = np.where(r["scores"] >= DRAW_MIN_SCORE)[0]
    keep[above[utils.non_max_suppression(r["rois"][above], r["scores"][above], iou)]] = True
    return keep


def draw(model, dataset, path, count=4):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, count, figsize=(4 * count, 8.6))
    for k, image_id in enumerate(dataset.image_ids[:count]):
        image = dataset.load_image(image_id)
        mask, ids = dataset.load_mask(image_id)
        visualize.display_instances(image, utils.extract_bboxes(mask), mask, ids,
                                    dataset.class_names, ax=axes[0, k],
                                    title="ground truth {}".format(image_id))
        r = model.detect([image])[0]
        keep = drawn(r)
        visualize.display_instances(image, r["rois"][keep], r["masks"][..., keep],
                                    r["class_ids"][keep], dataset.class_names,
                                    r["scores"][keep], ax=axes[1, k],
                                    title="detections {} (score >= {:g})".format(
                                        image_id, DRAW_MIN_SCORE))
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def quick_verdict(mAP, minutes):
    """The line a --quick run (the demo) ends with: the figure it reached beside the one
    it should reach, and what to do when it fell short. minutes: how long it trained."""
    text = ("the demo should reach mAP@0.5 >= {:g} in {:g} minutes of training on 2 CPU "
            "cores (bench/RESULTS.md); this run trained {:.1f} minutes and reached {:.3f}: "
            .format(QUICK_TARGET, QUICK_MINUTES, minutes, mAP))
    if mAP >= QUICK_TARGET:
        return text + "goal reached"
    why = ("a shorter run than the demo's" if minutes < 0.95 * QUICK_MINUTES else
           "a slower or busier machine trains fewer steps in the same time")
    return text + ("goal not reached ({}): give it 6 minutes, with --minutes 6 here or "
                   "--train-minutes 6 for scripts/demo.sh".format(why))


def main(argv=None):
    from mrcnn.cli.main import HelpFormatter
    p = argparse.ArgumentParser(prog="samples/shapes/train.py", formatter_class=HelpFormatter,
                                description="Train shapes from scratch, detect, evaluate.")
    p.add_argument("--out", default="out/shapes", help="folder for logs, weights and PNGs")
    p.add_argument("--minutes", type=float, default=None,
                   help="training time budget (epochs of STEPS_PER_EPOCH until it is spent; "
                        "default: 22, or {:g} with --quick)".format(QUICK_MINUTES))
    p.add_argument("--epochs", type=int, default=0,
                   help="a fixed number of epochs instead (default: 0, use --minutes)")
    p.add_argument("--quick", action="store_true",
                   help="the demo's run: QuickShapesConfig (a narrower network, AdamW) for "
                        "{:g} minutes; it should reach mAP@0.5 >= {:g}".format(
                            QUICK_MINUTES, QUICK_TARGET))
    p.add_argument("--backbone", choices=["small", "resnet50"], default="small",
                   help="small: the small residual backbone of this script; resnet50: the "
                        "classic one")
    p.add_argument("--train-images", type=int, default=10000,
                   help="generated training images")
    p.add_argument("--val-images", type=int, default=50, help="generated held-out images")
    p.add_argument("--seed", type=int, default=1, help="seed of the images and the order")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16", "auto"],
                   default="float32",
                   help="Config.COMPUTE_DTYPE for training (default: float32; see "
                        "docs/config.md); auto: float32 or bfloat16, whichever trains a small "
                        "network faster on this CPU (a second to find out; the demo uses "
                        "it). Detection and mAP run in float32 (checkpoints hold float32 "
                        "weights)")
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's own log lines (hidden by default)")
    args = p.parse_args(argv)
    if args.minutes is None:
        args.minutes = QUICK_MINUTES if args.quick else 22.0
    if args.backbone == "resnet50":
        config = ResNetShapesConfig()
    else:
        config = QuickShapesConfig() if args.quick else ShapesTrainConfig()
    if args.dtype == "auto":
        from mrcnn.precision import faster_compute_dtype
        args.dtype, times = faster_compute_dtype()
        print("compute type: {} (a training step of a small network on this CPU: {})".format(
            args.dtype, ", ".join("{} {:.0f} ms".format(k, 1000 * v) for k, v in times.items())))
    config = apply_overrides(type(config), {"COMPUTE_DTYPE": args.dtype})()
    os.makedirs(args.out, exist_ok=True)
    train = ShapesDataset()
    train.load_shapes(args.train_images, 64, 64, seed=args.seed)
    train.prepare()
    val = ShapesDataset()
    val.load_shapes(args.val_images, 64, 64, seed=args.seed + 1000)
    val.prepare()

    model = modellib.MaskRCNN("training", config, os.path.join(args.out, "logs"))
    t0 = time.time()
    history = []

    def run(epochs, lr, label, callbacks):
        h = model.train(train, val, learning_rate=lr, epochs=epochs, layers="all",
                        seed=args.seed, verbose=2, custom_callbacks=callbacks)
        for i in range(len(h.epoch)):
            history.append({"epoch": h.epoch[i] + 1, "lr": label,
                            **{k: round(float(v[i]), 4) for k, v in h.history.items()}})

    base = config.LEARNING_RATE
    if args.epochs:
        # a fixed number of epochs: warm-up then half a cosine over their steps
        steps = args.epochs * config.STEPS_PER_EPOCH
        schedule = keras.optimizers.schedules.CosineDecay(
            base * 0.1, decay_steps=steps, warmup_target=base,
            warmup_steps=max(1, steps // 20))
        run(args.epochs, schedule, "warm-up and cosine {:g} -> 0 over {} steps".format(
            base, steps), [])
    else:
        # a time budget: one train() call (the graph is traced once), the learning rate
        # along a warm-up and half a cosine over the budget's time, stopped by it
        budget = TimeBudget(args.minutes, whole_epochs=False)
        run(10 ** 6, base, "warm-up and cosine {:g} -> 0 over {:g} min".format(
            base, args.minutes), [budget, TimeCosine(budget, base),
                                  EpochProgress(budget, open_ended=True)])
    epoch = model.epoch
    train_seconds = time.time() - t0
    weights = model.find_last()
    # class names beside the checkpoints, as the other samples' train command writes
    # them (read by python -m mrcnn.export / mrcnn.demo / mrcnn.modelcard)
    with open(os.path.join(os.path.dirname(weights), "class_names.json"), "w") as f:
        json.dump(train.class_names, f)

    infer_config = apply_overrides(type(make_inference_config(config)),
                                   {"COMPUTE_DTYPE": "float32"})()
    infer = modellib.MaskRCNN("inference", infer_config, os.path.join(args.out, "logs"))
    infer.load_weights(weights, by_name=True)
    mAP = evaluate(infer, val)
    picture = draw(infer, val, os.path.join(args.out, "shapes_detections.png"))
    summary = {"epochs": epoch, "steps_per_epoch": config.STEPS_PER_EPOCH,
               "compute_dtype": config.COMPUTE_DTYPE,
               "batch": config.BATCH_SIZE, "train_seconds": round(train_seconds, 1),
               "mAP50_heldout": mAP, "heldout_images": len(val.image_ids),
               "weights": weights, "picture": picture, "losses_per_epoch": history}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print("trained {} epochs in {:.0f} s; mAP@0.5 on {} held-out images: {:.3f}".format(
        epoch, train_seconds, len(val.image_ids), mAP))
    if args.quick:
        print(quick_verdict(mAP, train_seconds / 60.0))
    print("wrote", picture)
    return summary


if __name__ == "__main__":
    main()
