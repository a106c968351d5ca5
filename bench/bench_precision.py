"""Compute-precision benchmark: detect() in float32 against bfloat16 (or float16), same run.

    .venv/bin/python bench/bench_precision.py [--runs 5] [--warmup 2] [--size 1024]
        [--dtypes float32 bfloat16] [--weights mask_rcnn_coco.h5] [--image PATH] [--record]

One ResNet-50 FPN model (81 classes, 100 detections, score threshold 0 unless --weights
is given) with the same weights in every dtype: the float32 child builds it (seeded
random weights, or --weights) and saves its weights; each other dtype's child loads that
file with Config.COMPUTE_DTYPE set. Each dtype runs in its own process (Keras' dtype
policy is per process). The report: the machine (CPU, ISA flags such as AVX512_BF16 and
AMX, threads, matmul peak), per dtype the median detect and graph time and peak memory,
and the agreement of each dtype's detections with float32's: detections matched one to
one by class and box IoU >= 0.5 (greedy, by float32 score), their box IoU, score
difference and mask IoU. Random weights give near-uniform scores, so the agreement
figures mean most with trained weights (--weights).
--record appends the report to bench/RESULTS.md.

    .venv/bin/python bench/bench_precision.py --shapes-weights out/shapes/.../mask_rcnn_shapes_0015.h5

The accuracy cost on a trained model: the shapes sample's checkpoint (its --quick config,
as the demo trains it) detects its 50 held-out images (seed 1001, as the sample draws
them) in each dtype; the report gives mAP@0.5 (the sample's figure) and mask AP@[.5:.95]
per dtype, and their differences from float32.

    .venv/bin/python bench/bench_precision.py --nucleus-weights logs/nucleus.../mask_rcnn_nucleus_0012.h5

The same on a nucleus sample checkpoint (samples/nucleus/train.py, its default config):
the 13 validation images of the sample's fixed split, whole and at full resolution, in
each dtype; the report gives COCO mask AP and AP50, box AP, and the classic per-image
mAP@0.5, and their differences from float32.
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _child  # noqa: E402
from bench_inference import bench_config, default_image  # noqa: E402

ROOT = os.path.dirname(HERE)


def child(args):
    import numpy as np
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    import keras
    from mrcnn import model as modellib

    keras.utils.set_random_seed(0)
    config = bench_config(args.size, 1, args.child, 0.0 if not args.weights else 0.5)
    model = modellib.MaskRCNN("inference", config, os.path.join(ROOT, "logs"))
    if args.child == "float32" and not args.weights:
        model.save_weights(args.shared_weights)
    model.load_weights(args.weights or args.shared_weights, by_name=True)
    image = default_image(args.size) if not args.image else np.asarray(
        __import__("PIL.Image", fromlist=["Image"]).open(args.image).convert("RGB"))
    for _ in range(args.warmup):
        model.detect([image])
    times, graph = [], []
    r = None
    for _ in range(args.runs):
        t0 = time.perf_counter()
        r = model.detect([image])[0]
        times.append(time.perf_counter() - t0)
        molded, metas, _ = model.mold_inputs([image])
        anchors = model.get_anchors(molded[0].shape)[None]
        t1 = time.perf_counter()
        model._predict(molded, metas, anchors)
        graph.append(time.perf_counter() - t1)
    peak = _child.work_peak_rss_mb()    # (before the machine report's matmul probe)
    np.savez_compressed(args.out, rois=r["rois"], class_ids=r["class_ids"],
                        scores=r["scores"], masks=r["masks"])
    return {"dtype": args.child, "times": times, "graph_times": graph,
            "detections": int(len(r["scores"])), "peak_rss_mb": peak,
            "machine": _child.machine_report()}


def child_shapes(args):
    """mAP@0.5 and mask AP@[.5:.95] of the shapes checkpoint on its held-out images."""
    import numpy as np
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    from mrcnn import metrics, model as modellib, utils
    from samples.shapes.shapes import ShapesDataset
    from samples.shapes.train import QuickShapesConfig, make_inference_config

    from mrcnn.config import apply_overrides
    config = apply_overrides(type(make_inference_config(QuickShapesConfig())),
                             {"COMPUTE_DTYPE": args.child})()
    model = modellib.MaskRCNN("inference", config, os.path.join(ROOT, "logs"))
    model.load_weights(args.shapes_weights, by_name=True)
    val = ShapesDataset()
    val.load_shapes(args.shapes_images, 64, 64, seed=1001)
    val.prepare()
    ap50, ap_range, t0 = [], [], time.perf_counter()
    for image_id in val.image_ids:
        gt_mask, gt_ids = val.load_mask(image_id)
        r = model.detect([val.load_image(image_id)])[0]
        aps = metrics.compute_ap_thresholds(
            utils.extract_bboxes(gt_mask), gt_ids, gt_mask, r["rois"], r["class_ids"],
            r["scores"], r["masks"], metrics.RANGE_THRESHOLDS)
        ap50.append(aps[0])
        ap_range.append(float(np.mean(aps)))
    return {"dtype": args.child, "map50": float(np.nanmean(ap50)),
            "map_range": float(np.nanmean(ap_range)), "images": len(ap50),
            "seconds": time.perf_counter() - t0, "machine": _child.machine_report()}


def child_nucleus(args):
    """COCO mask and box AP and the per-image mAP@0.5 of a nucleus checkpoint on the 13
    validation images (whole, full resolution)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    from mrcnn import evaluate, model as modellib
    from mrcnn.config import apply_overrides
    from samples.nucleus.nucleus import NucleusInferenceConfig, load_nucleus

    config = apply_overrides(NucleusInferenceConfig, {"COMPUTE_DTYPE": args.child})()
    model = modellib.MaskRCNN("inference", config, os.path.join(ROOT, "logs"))
    model.load_weights(args.nucleus_weights, by_name=True)
    val = load_nucleus(args.nucleus_data, "val")
    t0 = time.perf_counter()
    report = evaluate.evaluate_model(model, val, progress=False)
    return {"dtype": args.child, "mask_ap": report["coco"]["segm"]["AP"],
            "mask_ap50": report["coco"]["segm"]["AP50"],
            "box_ap": report["coco"]["bbox"]["AP"], "map50": report["per_image"]["mAP"],
            "detections": report["coco"]["num_detections"], "images": report["images"],
            "seconds": time.perf_counter() - t0, "machine": _child.machine_report()}


# what each accuracy mode reports: (key, label) in the order printed
ACCURACY_FIGURES = {
    "shapes": [("map50", "shapes mAP@0.5"), ("map_range", "mask AP@[.5:.95]")],
    "nucleus": [("mask_ap", "nucleus mask AP"), ("mask_ap50", "mask AP50"),
                ("box_ap", "box AP"), ("map50", "per-image mAP@0.5")],
}


def accuracy(args, kind):
    """Run the checkpoint of ``kind`` (shapes or nucleus) in each dtype, in its own
    process, and report its accuracy figures against the first dtype's."""
    weights = args.shapes_weights if kind == "shapes" else args.nucleus_weights
    extra = (["--shapes-weights", weights, "--shapes-images", str(args.shapes_images)]
             if kind == "shapes" else
             ["--nucleus-weights", weights, "--nucleus-data", args.nucleus_data])
    results = {}
    for dtype in args.dtypes:
        print("{}: the {} checkpoint ...".format(dtype, kind), flush=True)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", dtype] + extra
        results[dtype] = _child.run_child(cmd, dtype)
    ref = results[args.dtypes[0]]
    lines = _child.machine_lines(ref["machine"])
    for dtype in args.dtypes:
        r = results[dtype]
        figures = ", ".join("{} {:.3f} ({:+.3f})".format(label, r[key], r[key] - ref[key])
                            for key, label in ACCURACY_FIGURES[kind])
        lines.append("{:9} {} on {} {} images; {:.1f} s".format(
            dtype, figures, r["images"], "held-out" if kind == "shapes" else "validation",
            r["seconds"]))
    lines.append("weights: {}".format(weights))
    print("\n".join(lines))
    if args.record:
        with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
            f.write("\n## Compute precision, accuracy on the {} checkpoint ({}, {})\n\n"
                    .format(kind, datetime.date.today().isoformat(),
                            lines[0].split(":", 1)[1].strip()))
            f.write("`python bench/bench_precision.py --{}-weights CHECKPOINT --dtypes {}`"
                    "\n\n```\n{}\n```\n".format(kind, " ".join(args.dtypes),
                                                   "\n".join(lines)))


def box_iou(a, b):
    y1, x1 = max(a[0], b[0]), max(a[1], b[1])
    y2, x2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, y2 - y1) * max(0, x2 - x1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def agreement(ref, other):
    """Greedy one-to-one matching of other's detections to ref's (same class, box IoU >=
    0.5, ref in descending score): matched fraction of each, and over the matches the
    mean box IoU, the largest score difference and the mean mask IoU."""
    import numpy as np
    used, pairs = set(), []
    for i in np.argsort(-ref["scores"]):
        best, best_iou = None, 0.5
        for j in range(len(other["scores"])):
            if j in used or other["class_ids"][j] != ref["class_ids"][i]:
                continue
            iou = box_iou(ref["rois"][i], other["rois"][j])
            if iou >= best_iou:
                best, best_iou = j, iou
        if best is not None:
            used.add(best)
            pairs.append((i, best, best_iou))
    if not pairs:
        return {"matched_ref": 0.0, "matched_other": 0.0}
    mask_iou = []
    for i, j, _ in pairs:
        a, b = ref["masks"][..., i], other["masks"][..., j]
        union = np.logical_or(a, b).sum()
        mask_iou.append(np.logical_and(a, b).sum() / union if union else 1.0)
    return {"matched_ref": len(pairs) / max(1, len(ref["scores"])),
            "matched_other": len(pairs) / max(1, len(other["scores"])),
            "box_iou": float(np.mean([p[2] for p in pairs])),
            "max_score_diff": float(max(abs(ref["scores"][i] - other["scores"][j])
                                        for i, j, _ in pairs)),
            "mask_iou": float(np.mean(mask_iou))}


def main(argv=None):
    p = argparse.ArgumentParser(description="detect() in float32 vs bfloat16/float16")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                   choices=["float32", "bfloat16", "float16"],
                   help="the first is the reference the others are compared with")
    p.add_argument("--weights", default=None,
                   help="trained weights (default: seeded random weights)")
    p.add_argument("--image", default=None)
    p.add_argument("--shapes-weights", default=None,
                   help="a shapes sample checkpoint (samples/shapes/train.py --quick): "
                        "report mAP@0.5 and mask AP on its held-out images per dtype "
                        "instead of timing")
    p.add_argument("--shapes-images", type=int, default=50,
                   help="held-out shapes images for --shapes-weights")
    p.add_argument("--nucleus-weights", default=None,
                   help="a nucleus sample checkpoint: report COCO mask and box AP and the "
                        "per-image mAP@0.5 on its 13 validation images per dtype instead "
                        "of timing")
    p.add_argument("--nucleus-data", default=os.path.join(
        ROOT, "..", "shared", "data", "nucleus_dsb2018", "stage1_test"),
        help="the DSB2018 folder for --nucleus-weights (default: %(default)s)")
    p.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    p.add_argument("--child", choices=["float32", "bfloat16", "float16"],
                   help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--shared-weights", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        run = (child_shapes if args.shapes_weights else
               child_nucleus if args.nucleus_weights else child)
        print("RESULT " + json.dumps(run(args)))
        return
    if args.shapes_weights and args.nucleus_weights:
        p.error("--shapes-weights and --nucleus-weights: give one")
    if args.shapes_weights:
        return accuracy(args, "shapes")
    if args.nucleus_weights:
        return accuracy(args, "nucleus")
    import numpy as np
    if args.dtypes[0] != "float32" and not args.weights:
        p.error("--dtypes: the first must be float32 unless --weights is given (it writes "
                "the shared random weights)")
    with tempfile.TemporaryDirectory() as tmp:
        shared = os.path.join(tmp, "weights.h5")
        results, dets = {}, {}
        for dtype in args.dtypes:
            print("{}: {} warm-up + {} runs at {}x{} ...".format(
                dtype, args.warmup, args.runs, args.size, args.size), flush=True)
            out = os.path.join(tmp, dtype + ".npz")
            cmd = [sys.executable, os.path.abspath(__file__), "--child", dtype, "--runs",
                   str(args.runs), "--warmup", str(args.warmup), "--size", str(args.size),
                   "--out", out, "--shared-weights", shared]
            if args.weights:
                cmd += ["--weights", args.weights]
            if args.image:
                cmd += ["--image", args.image]
            results[dtype] = _child.run_child(cmd, dtype)
            with np.load(out) as f:
                dets[dtype] = {k: f[k] for k in f.files}
    ref = args.dtypes[0]
    lines = _child.machine_lines(results[ref]["machine"])
    base = statistics.median(results[ref]["times"])
    for dtype in args.dtypes:
        r = results[dtype]
        med = statistics.median(r["times"])
        lines.append("{:9} detect median {:.2f} s (graph {:.2f} s), {:.2f}x {}; peak RSS "
                     "{:.0f} MB; {} detections".format(
                         dtype, med, statistics.median(r["graph_times"]), med / base, ref,
                         r["peak_rss_mb"], r["detections"]))
        if dtype != ref:
            a = agreement(dets[ref], dets[dtype])
            if "box_iou" in a:
                lines.append("  vs {}: matched {:.0%} of {}'s and {:.0%} of {}'s detections; "
                             "over the matches box IoU {:.3f}, mask IoU {:.3f}, largest "
                             "score difference {:.4f}".format(
                                 ref, a["matched_ref"], ref, a["matched_other"], dtype,
                                 a["box_iou"], a["mask_iou"], a["max_score_diff"]))
            else:
                lines.append("  vs {}: no detection matched".format(ref))
    lines.append("weights: {}".format(args.weights or "seeded random (agreement figures "
                                                     "mean most with trained weights)"))
    print("\n".join(lines))
    if args.record:
        path = os.path.join(HERE, "RESULTS.md")
        with open(path, "a") as f:
            f.write("\n## Compute precision, {}x{}, ResNet-50 ({}, {})\n\n".format(
                args.size, args.size, datetime.date.today().isoformat(),
                lines[0].split(":", 1)[1].strip()))
            f.write("`python bench/bench_precision.py --runs {} --warmup {} --dtypes {}`\n\n"
                    "```\n{}\n```\n".format(args.runs, args.warmup, " ".join(args.dtypes),
                                           "\n".join(lines)))


if __name__ == "__main__":
    main()
