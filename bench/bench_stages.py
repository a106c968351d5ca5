"""Where the time of detect's graph and of a training step goes, stage by stage.

    .venv/bin/python bench/bench_stages.py [--size 1024] [--runs 5] [--record]
    .venv/bin/python bench/bench_stages.py --train [--size 512] [--batch 1]

Inference: the ResNet-50 inference graph (81 classes, 100 detections, score threshold 0,
as bench_inference.py) is cut after each stage into a prefix model (Keras functional
models share the layers, so every prefix runs the same weights and ops as the whole);
each prefix is traced once and timed (median of --runs after a warm-up). A stage's time
is its prefix's time less the previous prefix's: backbone (C2-C5), FPN (P2-P6), the RPN
head over five levels, proposals (deltas, top-k, NMS), ROIAlign and the classifier head,
the detection layer, ROIAlign and the mask head. The stages' GFLOP (TensorFlow's
profiler on the static part; the heads from their kernels) give each stage's GFLOP/s
against the machine's float32 matmul peak.

Training (--train): one step of bench_train.py's setup split into the forward pass with
the losses, the backward pass (gradients of the loss) and the optimizer update, each
timed as its own traced function on the same batch.
"""
import argparse
import datetime
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import _child  # noqa: E402

# (stage, the layers whose outputs end it: a prefix model runs only what they need, so
# the FPN stage names every level, or its top-down path would fall into the next stage)
INFERENCE_STAGES = [
    ("backbone C2-C5", ("res2c_out", "res3d_out", "res4f_out", "res5c_out")),
    ("FPN P2-P6", ("fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6")),
    ("RPN head, 5 levels", "rpn_bbox"),
    ("proposals: deltas, top-k, NMS", "ROI"),
    ("ROIAlign + classifier head", "mrcnn_bbox"),
    ("detection layer", "mrcnn_detection"),
    ("ROIAlign + mask head", "mrcnn_mask"),
]


def median_time(fn, runs, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def inference_stages(args):
    import keras
    import tensorflow as tf
    from bench_inference import bench_config, count_mrcnn_gflop, default_image
    from mrcnn import model as modellib

    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("inference", bench_config(args.size),
                              os.path.join(ROOT, "logs"))
    km = model.keras_model
    molded, metas, _ = model.mold_inputs([default_image(args.size)])
    anchors = model.get_anchors(molded[0].shape)[None]
    inputs = [tf.constant(molded, tf.float32), tf.constant(metas, tf.float32),
              tf.constant(anchors, tf.float32)]
    cumulative = []
    for stage, names in INFERENCE_STAGES:
        names = (names,) if isinstance(names, str) else names
        out = [km.get_layer(n).output for n in names]
        prefix = keras.Model(km.inputs, out)
        # each output summed to a scalar in the graph: copying P2 (64 MB) or the
        # anchors' scores out would be timed as if it were the stage's work
        fn = tf.function(lambda a, b, c, m=prefix: tf.add_n([
            tf.reduce_sum(tf.cast(t, tf.float32)) for t in tf.nest.flatten(
                m([a, b, c], training=False))]))
        fn(*inputs)
        cumulative.append(median_time(lambda f=fn: f(*inputs).numpy(), args.runs))
        print("  through {:32} {:.3f} s".format(stage, cumulative[-1]), flush=True)
    whole = tf.function(lambda a, b, c: km([a, b, c], training=False))
    whole(*inputs)
    total = median_time(lambda: [t.numpy() for t in whole(*inputs)], args.runs)
    g = count_mrcnn_gflop(model, molded, metas, anchors)
    stage_gflop = {"backbone C2-C5": None, "FPN P2-P6": None, "RPN head, 5 levels": None,
                   "ROIAlign + classifier head": g["classifier"] if g else None,
                   "ROIAlign + mask head": g["mask"] if g else None}
    times = [cumulative[0]] + [b - a for a, b in zip(cumulative, cumulative[1:])]
    return {"stages": [s for s, _ in INFERENCE_STAGES], "times": times, "total": total,
            "gflop": g, "stage_gflop": stage_gflop, "machine": _child.machine_report()}


def training_split(args):
    import keras
    import tensorflow as tf
    from bench_train import make_model_and_batch

    model, batch, _, _ = make_model_and_batch(args.size, args.batch)
    tm = model.keras_model
    variables = tm.trainable_variables
    optimizer = tm.optimizer
    data = batch

    @tf.function
    def forward():
        inputs = tm._model_inputs(data)
        outputs = tm(inputs, training=True)
        losses = tm.compute_mrcnn_losses(inputs, outputs)
        return tf.add_n(list(losses.values()))

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            inputs = tm._model_inputs(data)
            outputs = tm(inputs, training=True)
            loss = tf.add_n(list(tm.compute_mrcnn_losses(inputs, outputs).values()))
        return tape.gradient(loss, variables)

    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(gradients(), variables)]
    optimizer.build(variables)

    @tf.function
    def update():
        optimizer.apply_gradients(zip(grads, variables))

    t_forward = median_time(lambda: forward().numpy(), args.runs)
    t_grad = median_time(lambda: [g.numpy() for g in gradients() if g is not None], args.runs)
    t_update = median_time(lambda: (update(), variables[0].numpy()), args.runs)
    return {"forward": t_forward, "backward": t_grad - t_forward, "update": t_update,
            "step": t_grad + t_update, "machine": _child.machine_report()}


def main(argv=None):
    p = argparse.ArgumentParser(description="detect's graph and a training step, by stage")
    p.add_argument("--size", type=int, default=None,
                   help="image side (default: 1024 for inference, 512 with --train)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--train", action="store_true", help="split a training step instead")
    p.add_argument("--batch", type=int, default=1, help="images per training step (--train)")
    p.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = p.parse_args(argv)
    args.size = args.size or (512 if args.train else 1024)
    if args.train:
        r = training_split(args)
        lines = _child.machine_lines(r["machine"]) + [
            "training step {0}x{0}, batch {1}, all layers, ResNet-50 (median of {2}):".format(
                args.size, args.batch, args.runs)]
        for name in ("forward", "backward", "update"):
            lines.append("  {:36} {:.3f} s  {:5.1f}%".format(
                {"forward": "forward pass and the five losses",
                 "backward": "backward pass (gradients)",
                 "update": "optimizer update (SGD, momentum)"}[name], r[name],
                100.0 * r[name] / r["step"]))
        lines.append("  {:36} {:.3f} s".format("sum", r["step"]))
        title = "Training step by part, {0}x{0}, batch {1}".format(args.size, args.batch)
    else:
        r = inference_stages(args)
        peak = r["machine"]["matmul_gflops"]
        lines = _child.machine_lines(r["machine"]) + [
            "detect graph {0}x{0}, ResNet-50, 100 detections (median of {1}): {2:.3f} s "
            "whole".format(args.size, args.runs, r["total"])]
        for stage, t in zip(r["stages"], r["times"]):
            g = r["stage_gflop"].get(stage)
            rate = "" if not g else "  {:.0f} GFLOP, {:.0f} GFLOP/s ({:.0f}% of the peak)" \
                .format(g, g / t, 100.0 * g / t / peak) if t > 0 else ""
            lines.append("  {:32} {:.3f} s  {:5.1f}%{}".format(stage, t,
                                                               100.0 * t / r["total"], rate))
        g = r["gflop"]
        if g:
            static = sum(r["times"][:3])
            lines.append("  backbone + FPN + RPN head: {:.0f} GFLOP in {:.3f} s, {:.0f} GFLOP/s "
                         "({:.0f}% of the peak)".format(
                             g["backbone_fpn_rpn"], static, g["backbone_fpn_rpn"] / static,
                             100.0 * g["backbone_fpn_rpn"] / static / peak))
        title = "detect's graph by stage, {0}x{0}".format(args.size)
    print("\n".join(lines))
    if args.record:
        with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
            f.write("\n## {} ({}, {})\n\n`python bench/bench_stages.py {}`\n\n```\n{}\n```\n"
                    .format(title, datetime.date.today().isoformat(),
                            lines[0].split(":", 1)[1].strip(),
                            " ".join(argv if argv is not None else sys.argv[1:]),
                            "\n".join(lines)))


if __name__ == "__main__":
    main()
