"""Inference benchmark: mrcnn.detect vs torchvision maskrcnn_resnet50_fpn, same run.

    .venv/bin/python bench/bench_inference.py [--runs 5] [--size 1024]
        [--torch-python .venv-torch/bin/python] [--image PATH] [--record]
        [--batch 1] [--dtype float32|float16|bfloat16] [--device auto|cpu|cuda]
        [--rounds 1]

Both models: ResNet-50 FPN, 81 classes (torchvision: 91, its COCO head), random weights
(no pretrained files are needed to time them), one 1024x1024 image, score threshold 0
and 100 detections, so the mask head runs on 100 boxes in both. Each model runs in its
own process (ours in this interpreter's environment, torchvision in the one given by
--torch-python), after warm-up runs; the parent reports the median wall time of
``detect`` / ``model(images)`` (post-processing included), its GFLOP/s, and each
process's peak resident memory. --record appends the result to bench/RESULTS.md.
--batch B runs B copies of the image per call (IMAGES_PER_GPU = B; times are per call);
--dtype sets mrcnn's COMPUTE_DTYPE and runs torchvision under autocast to that type;
--device places torchvision (auto: the GPU when torch sees one; TensorFlow uses a GPU
whenever it sees one). --rounds N runs the two sides alternately N times each and
reports the median of the rounds' ratios (bench/README.md: the host's speed drifts).
"""
import argparse
import datetime
import json
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _child  # noqa: E402
ROOT = os.path.dirname(HERE)


def default_image(size):
    """A real photo (the COCO sample's first image) resized to size x size, or noise."""
    import numpy as np
    sample = os.path.join(ROOT, "..", "shared", "data", "coco_val2017_sample", "images")
    if os.path.isdir(sample):
        from PIL import Image
        name = sorted(os.listdir(sample))[0]
        with Image.open(os.path.join(sample, name)) as im:
            return np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
    return (np.random.RandomState(0).rand(size, size, 3) * 255).astype(np.uint8)


# ---------------------------------------------------------------------------- children

def bench_config(size, batch=1, dtype="float32", min_confidence=0.0):
    """The inference benchmarks' config: ResNet-50 FPN, 81 classes, size x size images,
    score threshold 0 (so the mask head runs on 100 detections)."""
    sys.path.insert(0, ROOT)
    from mrcnn.config import Config

    class BenchConfig(Config):
        NAME = "bench"
        BACKBONE = "resnet50"
        NUM_CLASSES = 81
        IMAGES_PER_GPU = batch
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        DETECTION_MIN_CONFIDENCE = min_confidence
        COMPUTE_DTYPE = dtype

    return BenchConfig()


def child_mrcnn(args):
    import numpy as np
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    from mrcnn import model as modellib

    model = modellib.MaskRCNN("inference", bench_config(args.size, args.batch, args.dtype),
                              os.path.join(ROOT, "logs"))
    image = default_image(args.size) if not args.image else np.asarray(
        __import__("PIL.Image", fromlist=["Image"]).open(args.image).convert("RGB"))
    images = [image] * args.batch
    for _ in range(args.warmup):
        model.detect(images)
    times, n = [], None
    for _ in range(args.runs):
        t0 = time.perf_counter()
        r = model.detect(images)[0]
        times.append(time.perf_counter() - t0)
        n = int(r["rois"].shape[0])
    # detect's parts, timed one by one: molding, the graph, unmolding (boxes and masks
    # back to the image)
    split = {"mold": [], "graph": [], "unmold": []}
    for _ in range(args.runs):
        t0 = time.perf_counter()
        molded, metas, windows = model.mold_inputs(images)
        anchors = np.broadcast_to(model.get_anchors(molded[0].shape)[None],
                                  (args.batch,) + model.get_anchors(molded[0].shape).shape)
        t1 = time.perf_counter()
        detections, masks = model._predict(molded, metas, anchors)
        t2 = time.perf_counter()
        model.unmold_detections(detections[0], masks[0], image.shape, molded[0].shape,
                                windows[0])
        t3 = time.perf_counter()
        split["mold"].append(t1 - t0)
        split["graph"].append(t2 - t1)
        split["unmold"].append(t3 - t2)
    peak = _child.work_peak_rss_mb()    # (before the FLOP count and the machine report)
    return {"times": times, "graph_times": split["graph"], "split": split, "detections": n,
            "peak_rss_mb": peak,
            "gflop": count_mrcnn_gflop(model, molded[:1], metas[:1], anchors[:1])
            if args.batch == 1 and not args.light else None,
            "machine": None if args.light else _child.machine_report()}


def count_mrcnn_gflop(model, molded, metas, anchors):
    """GFLOPs of one forward pass (2 FLOPs per multiply-add).

    Backbone, FPN and RPN: counted by TensorFlow's profiler on a graph traced with the
    fixed input shape. The heads run on ROIs whose count is only known at run time, so
    the profiler cannot see them; they are counted from their layers' kernel shapes
    (classifier on POST_NMS_ROIS_INFERENCE ROIs, mask head on DETECTION_MAX_INSTANCES).
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder
    keras_model = model.keras_model
    fn = tf.function(lambda a, b, c: keras_model([a, b, c], training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec(molded.shape, tf.float32),
                                        tf.TensorSpec(metas.shape, tf.float32),
                                        tf.TensorSpec(anchors.shape, tf.float32))
    opts = option_builder.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    try:
        info = model_analyzer.profile(concrete.graph, options=opts)
        static = info.total_float_ops / 1e9
    except Exception:
        return None

    def layer_flops(name, positions):
        kernel = keras_model.get_layer(name).weights[0].shape
        return 2.0 * float(np.prod(kernel)) * positions / 1e9
    c = model.config
    classifier = c.POST_NMS_ROIS_INFERENCE * (
        layer_flops("mrcnn_class_conv1", 1) + layer_flops("mrcnn_class_conv2", 1) +
        layer_flops("mrcnn_class_logits", 1) + layer_flops("mrcnn_bbox_fc", 1))
    p, m = c.MASK_POOL_SIZE, 2 * c.MASK_POOL_SIZE
    mask = c.DETECTION_MAX_INSTANCES * (
        sum(layer_flops("mrcnn_mask_conv{}".format(i), p * p) for i in range(1, 5)) +
        layer_flops("mrcnn_mask_deconv", p * p) + layer_flops("mrcnn_mask", m * m))
    return {"backbone_fpn_rpn": static, "classifier": classifier, "mask": mask,
            "total": static + classifier + mask}


def child_torchvision(args):
    import numpy as np
    import torch
    import torchvision
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    device = args.device if args.device != "auto" else \
        ("cuda" if torch.cuda.is_available() else "cpu")
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                  min_size=args.size, max_size=args.size,
                                  box_score_thresh=0.0, box_detections_per_img=100)
    model.eval().to(device)
    image = default_image(args.size)
    x = (torch.from_numpy(image).permute(2, 0, 1).float() / 255.0).to(device)
    autocast = torch.autocast(device, dtype=getattr(torch, args.dtype),
                              enabled=args.dtype != "float32")

    def run():
        with torch.inference_mode(), autocast:
            out = model([x] * args.batch)[0]
        if device == "cuda":
            torch.cuda.synchronize()
        return out
    times, n = [], None
    for _ in range(args.warmup):
        run()
    for _ in range(args.runs):
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
        n = int(out["boxes"].shape[0])
    return {"times": times, "detections": n, "torch": torch.__version__,
            "peak_rss_mb": _child.work_peak_rss_mb(),
            "torchvision": torchvision.__version__, "threads": torch.get_num_threads(),
            "device": device}


# ---------------------------------------------------------------------------- parent

def run_child(python, which, args, first=True):
    cmd = [python, os.path.abspath(__file__), "--child", which, "--runs", str(args.runs),
           "--warmup", str(args.warmup), "--size", str(args.size), "--batch", str(args.batch),
           "--dtype", args.dtype, "--device", args.device] + ([] if first else ["--light"])
    if args.image:
        cmd += ["--image", args.image]
    return _child.run_child(cmd, which)


def main(argv=None):
    p = argparse.ArgumentParser(description="mrcnn vs torchvision inference benchmark")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--image", default=None)
    p.add_argument("--batch", type=int, default=1, help="images per detect call")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="mrcnn's COMPUTE_DTYPE; torchvision runs under autocast to it")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="torchvision's device (auto: the GPU when torch sees one)")
    p.add_argument("--torch-python", default=os.path.join(ROOT, ".venv-torch", "bin", "python"))
    _child.add_round_arguments(p)
    p.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    p.add_argument("--child", choices=["mrcnn", "torchvision"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        fn = child_mrcnn if args.child == "mrcnn" else child_torchvision
        print("RESULT " + json.dumps(fn(args)))
        return

    have_peer = os.path.exists(args.torch_python)
    print("mrcnn{}{}: {} warm-up + {} runs each at {}x{}, batch {}, {} ...".format(
        ", then torchvision" if have_peer else "",
        " ({} rounds)".format(args.rounds) if args.rounds > 1 else "", args.warmup,
        args.runs, args.size, args.size, args.batch, args.dtype), flush=True)
    if not have_peer:
        print("torchvision not installed at {} (see bench/README.md); skipping the peer"
              .format(args.torch_python))
    our_rounds, peer_rounds, ours, peer = _child.run_both(run_child, args)

    med = statistics.median(ours["times"])
    gmed = statistics.median(ours["graph_times"])
    parts = {k: statistics.median(v) for k, v in ours["split"].items()}
    outside = parts["mold"] + parts["unmold"]
    lines = _child.machine_lines(ours["machine"], peer) + [
        "mrcnn detect:        median {:.2f} s  ({}); batch {}, {}".format(
            med, _child.runs_text(ours), args.batch, args.dtype),
        "  split:             mold {:.3f} s, graph {:.2f} s, unmold {:.3f} s: {:.1f}% "
        "outside the graph; {} detections".format(
            parts["mold"], gmed, parts["unmold"],
            100.0 * outside / (outside + gmed), ours["detections"]),
        "  peak RSS:          {:.0f} MB".format(ours["peak_rss_mb"]),
    ]
    g = ours.get("gflop")
    if g:
        peak = ours["machine"]["matmul_gflops"]
        lines.append("  FLOPs:             {:.0f} GFLOP per image (backbone+FPN+RPN {:.0f}, "
                     "classifier {:.0f}, mask head {:.0f}) -> {:.0f} GFLOP/s in the graph, "
                     "{:.0f}% of the matmul peak".format(
                         g["total"], g["backbone_fpn_rpn"], g["classifier"], g["mask"],
                         g["total"] / gmed, 100.0 * g["total"] / gmed / peak))
        lines.append("  floor:             {:.2f} s (GFLOP / matmul peak); detect is {:.2f}x "
                     "the floor".format(g["total"] / peak, med / (g["total"] / peak)))
    if peer:
        pmed = statistics.median(peer["times"])
        lines += [
            "torchvision {} (torch {}, {}): median {:.2f} s  ({}); {} detections".format(
                peer["torchvision"], peer["torch"], peer.get("device", "cpu"), pmed,
                _child.runs_text(peer), peer["detections"]),
            "  peak RSS:          {:.0f} MB".format(peer["peak_rss_mb"]),
            _child.ratio_line(our_rounds, peer_rounds),
        ]
    print("\n".join(lines))
    if args.record:
        record(args, lines)


def record(args, lines):
    path = os.path.join(HERE, "RESULTS.md")
    header = "" if os.path.exists(path) else "# Benchmark results\n"
    with open(path, "a") as f:
        f.write(header)
        f.write("\n## Inference, {}x{}, ResNet-50, 100 detections ({}, {})\n\n".format(
            args.size, args.size, datetime.date.today().isoformat(), lines[0].split(":", 1)[1]
            .strip()))
        f.write("`python bench/bench_inference.py --runs {} --warmup {} --size {} --batch {} "
                "--dtype {}{}`\n\n```\n{}\n```\n".format(
                    args.runs, args.warmup, args.size, args.batch, args.dtype,
                    _child.rounds_flag(args),
                    "\n".join(lines)))


if __name__ == "__main__":
    main()
