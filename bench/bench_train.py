"""Training-step benchmark: mrcnn vs torchvision maskrcnn_resnet50_fpn, same run.

    .venv/bin/python bench/bench_train.py [--steps 5] [--size 512] [--batch 1]
        [--dtype float32|bfloat16|float16] [--frozen-bn] [--rounds 1] [--record]

One 512x512 image with the same boxes and masks for both; batch 1 (or --batch N copies
of it); every layer
trainable (mrcnn layers="all"; torchvision trainable_backbone_layers=5); ResNet-50 FPN,
random weights; SGD with momentum. Each side runs in its own process after warm-up
steps; the parent prints the machine (CPU, ISA flags, float32 matmul peak), the median
step time, the ratio and each process's peak RSS, and for mrcnn the time its input
pipeline needs per batch (built in threads while the previous step runs).

It also prints each side's work per step: the FLOPs of its convolutions and matrix
products, forward and backward (2 per multiply-add; mrcnn's from its traced step, with
the mask head's positive ROIs counted before and after the timed steps, as they grow
while the RPN learns; torchvision's from torch.utils.flop_counter on one more step),
the rate that makes in the median step, and (float32 on the CPU) the floor: the least
of mrcnn's work at the machine's float32 matmul peak, which no ratio goal can go below.

--dtype sets mrcnn's COMPUTE_DTYPE (Keras mixed precision; float16 adds dynamic loss
scaling) and runs torchvision's forward pass under torch.autocast to that type.
--frozen-bn trains mrcnn with TRAIN_BN_AFFINE = False: no batch norm's scale or offset
trains, as in torchvision's FrozenBatchNorm2d (by default mrcnn trains them, classic).
--rounds N runs the two sides alternately N times each and reports the median of the
rounds' ratios (bench/README.md: the host's speed drifts between runs).
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _child  # noqa: E402
ROOT = os.path.dirname(HERE)


def scene(size):
    """An image with four filled rectangles/disks and their masks, boxes and classes."""
    import numpy as np
    rng = np.random.RandomState(0)
    image = (rng.rand(size, size, 3) * 60 + 80).astype(np.uint8)
    masks = np.zeros((size, size, 4), bool)
    yy, xx = np.mgrid[0:size, 0:size]
    s = size / 512.0
    masks[int(40 * s):int(200 * s), int(60 * s):int(220 * s), 0] = True
    masks[:, :, 1] = (yy - 350 * s) ** 2 + (xx - 150 * s) ** 2 < (90 * s) ** 2
    masks[int(300 * s):int(480 * s), int(300 * s):int(400 * s), 2] = True
    masks[:, :, 3] = (yy - 120 * s) ** 2 + (xx - 400 * s) ** 2 < (70 * s) ** 2
    for k, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]):
        image[masks[:, :, k]] = color
    class_ids = np.array([1, 2, 1, 3], np.int32)
    return image, masks, class_ids


def make_model_and_batch(size, batch_size, dtype="float32", frozen_bn=False):
    """The benchmark's training model (ResNet-50, every layer trainable, SGD as the classic
    code) and one batch of the scene from the real input pipeline. Returns
    (model, batch, dataset, config); bench_stages.py splits the same step."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    from mrcnn import model as modellib
    from mrcnn import utils
    from mrcnn.config import Config

    image, masks, class_ids = scene(size)

    class OneImage(utils.Dataset):
        def load_image(self, image_id):
            return image

        def load_mask(self, image_id):
            return masks, class_ids

    dataset = OneImage()
    for c in (1, 2, 3):
        dataset.add_class("bench", c, str(c))
    for i in range(max(batch_size, 2)):
        dataset.add_image("bench", i, None)
    dataset.prepare()

    class BenchConfig(Config):
        NAME = "bench"
        BACKBONE = "resnet50"
        NUM_CLASSES = 4
        IMAGES_PER_GPU = batch_size
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        TRAIN_BN = False
        COMPUTE_DTYPE = dtype
        TRAIN_BN_AFFINE = not frozen_bn

    config = BenchConfig()
    model = modellib.MaskRCNN("training", config, os.path.join(ROOT, "logs", "bench"))
    model.set_trainable("all", verbose=0)
    # the optimizer train() uses (SGD, momentum 0.9, clipped at a global norm of 5)
    from mrcnn.optimizer import make_optimizer
    optimizer = make_optimizer(config, 1e-3)
    model.keras_model.compile(optimizer=optimizer, jit_compile=False)
    optimizer.build(model.keras_model.trainable_variables)   # (as train() does)
    ds = modellib.make_dataset(dataset, config, seed=0)
    it = iter(ds)
    batch = (next(it),)
    del it
    ds.loader.close()
    return model, batch, dataset, config


def child_mrcnn(args):
    import tensorflow as tf
    model, batch, dataset, config = make_model_and_batch(args.size, args.batch, args.dtype,
                                                           args.frozen_bn)
    model.keras_model.make_train_function()
    step = model.keras_model.train_function
    single = tf.data.Dataset.from_tensors(batch).repeat()
    data_it = iter(single)
    for _ in range(args.warmup):
        step(data_it)
    # the mask head's work grows with the positive ROIs, which grow as the RPN learns:
    # their count before the timed steps and after them bounds the work of each
    positive_rois = positive_rois_counter(model.keras_model)
    positives = [positive_rois(batch)]
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        logs = step(data_it)
        float(logs["loss"])
        times.append(time.perf_counter() - t0)
    # (read before the input-pipeline probe and the machine report's matmul probe,
    # which torchvision's side does not run)
    peak = _child.work_peak_rss_mb()
    if args.light:      # a later round: the first measured the rest
        return {"times": times, "peak_rss_mb": peak}
    positives.append(positive_rois(batch))
    # the input pipeline alone: batches per second of a loader nobody waits on
    from mrcnn.pipeline import BatchLoader
    loader = BatchLoader(dataset, config, seed=1, prefetch=1)
    loader.next_batch()
    t0 = time.perf_counter()
    for _ in range(4):
        loader.next_batch()
    pipeline = (time.perf_counter() - t0) / 4
    loader.close()
    return {"times": times, "pipeline": pipeline, "peak_rss_mb": peak,
            "work": _optional("the step's FLOP count", train_step_gflop, model.keras_model,
                              batch, config, positives),
            "machine": _child.machine_report()}


def _optional(what, fn, *args):
    """fn(*args), or None (said on stderr) when it fails: a diagnostic must not lose
    the timings already measured."""
    try:
        return fn(*args)
    except Exception as e:
        print("{} failed: {}: {}".format(what, type(e).__name__, e), file=sys.stderr)
        return None


# the ops that do a training step's arithmetic: convolutions (forward, and the two of
# their gradient: to the input and to the filter; a transposed convolution is a
# Conv2DBackpropInput) and matrix products
_CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


def graph_gflop(graph, unknown_rows):
    """GFLOP of a traced graph's convolutions and matrix products, 2 per multiply-add
    (as torch.utils.flop_counter counts). unknown_rows(op_name): the size of a dimension
    the trace left unknown (the heads' ROI count); it raises for an op whose size it
    cannot tell. Returns (total, {op type: GFLOP})."""
    import numpy as np

    def shape(tensor, name):
        if tensor.shape.rank is None:
            raise ValueError("{}: rank unknown at trace time".format(name))
        return [unknown_rows(name) if d is None else d for d in tensor.shape.as_list()]

    # only the ops a step runs: those its outputs and its side effects (the weight
    # updates) need; a gradient nobody asks for (the input image's) stays in the graph
    # but is pruned when the function runs
    todo = [t.op for t in graph.outputs] + list(graph.control_outputs)
    runs = set()
    while todo:
        op = todo.pop()
        if op.name not in runs:
            runs.add(op.name)
            todo += [t.op for t in op.inputs] + list(op.control_inputs)
    by_type = {}
    for op in graph.get_operations():
        if op.name not in runs:
            continue
        if op.type in _CONV_OPS:
            # 2 x (each position of the convolution's output side) x (its kernel's
            # height x width x the channels it reads), whichever way the op runs
            if op.type == "Conv2D":
                out, kernel = shape(op.outputs[0], op.name), shape(op.inputs[1], op.name)
            elif op.type == "Conv2DBackpropInput":     # (input sizes, filter, out grad)
                out, kernel = shape(op.inputs[2], op.name), shape(op.inputs[1], op.name)
            else:                                      # (input, filter sizes, out grad)
                out, kernel = shape(op.inputs[2], op.name), shape(op.outputs[0], op.name)
            flops = 2.0 * np.prod(out) * kernel[0] * kernel[1] * kernel[2]
        elif op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3"):
            a, b = shape(op.inputs[0], op.name), shape(op.inputs[1], op.name)
            adj = ("transpose_a", "transpose_b") if op.type == "MatMul" else ("adj_x", "adj_y")
            m, k = (a[-1], a[-2]) if op.get_attr(adj[0]) else (a[-2], a[-1])
            n = b[-2] if op.get_attr(adj[1]) else b[-1]
            batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
            flops = 2.0 * np.prod(batch) * m * k * n
        else:
            continue
        by_type[op.type] = by_type.get(op.type, 0.0) + flops / 1e9
    return sum(by_type.values()), by_type


def positive_rois_counter(keras_model):
    """A function batch -> (images, positive ROIs per image) of one forward pass: the
    rows the mask head runs on (the batch's largest count of positives, the others
    padded to it). The pass is a traced graph: run eagerly, a functional model holds
    every layer's output until it returns, which at batch 4 raised the peak memory by
    1.1 GB."""
    import tensorflow as tf
    forward = tf.function(
        lambda data: tf.shape(keras_model(keras_model._model_inputs(data),
                                          training=True)[6])[:2],     # mrcnn_mask
        autograph=False)
    return lambda batch: tuple(int(d) for d in forward(batch).numpy())


def train_step_gflop(keras_model, batch, config, positives):
    """mrcnn's work in one training step (graph_gflop of the traced train_step), for each
    (images, positives per image) of ``positives`` (counted before and after the
    timed steps). The classifier head runs on TRAIN_ROIS_PER_IMAGE ROIs per image, the
    mask head on the positive ones, a count known only when a step runs."""
    import tensorflow as tf
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), batch)
    step = tf.function(lambda data: keras_model.train_step(data), autograph=False)
    graph = step.get_concrete_function(spec).graph
    work = {"gflop": [], "positive_rois": [], "rois": config.TRAIN_ROIS_PER_IMAGE}
    for images, count in positives:
        def rows(name):
            if "mrcnn_mask" in name:
                return images * count
            if "mrcnn_class" in name or "mrcnn_bbox" in name:
                return images * config.TRAIN_ROIS_PER_IMAGE
            raise ValueError("{}: a size unknown at trace time outside the heads".format(name))
        work["gflop"].append(graph_gflop(graph, rows)[0])
        work["positive_rois"].append(count)
    return work


def child_torchvision(args):
    import numpy as np
    import torch
    import torchvision
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    device = args.device if args.device != "auto" else \
        ("cuda" if torch.cuda.is_available() else "cpu")
    image, masks, class_ids = scene(args.size)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4,
                                  min_size=args.size, max_size=args.size,
                                  trainable_backbone_layers=5)
    model.train().to(device)
    x = (torch.from_numpy(image).permute(2, 0, 1).float() / 255.0).to(device)
    m = torch.from_numpy(np.transpose(masks, (2, 0, 1)).astype(np.uint8)).to(device)
    ys = [np.where(masks[:, :, k].any(axis=1))[0] for k in range(masks.shape[-1])]
    xs = [np.where(masks[:, :, k].any(axis=0))[0] for k in range(masks.shape[-1])]
    boxes = torch.tensor([[x[0], y[0], x[-1] + 1, y[-1] + 1] for x, y in zip(xs, ys)],
                         dtype=torch.float32)
    target = {"boxes": boxes.to(device),
              "labels": torch.from_numpy(class_ids.astype(np.int64)).to(device), "masks": m}
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    autocast = torch.autocast(device, dtype=getattr(torch, args.dtype),
                              enabled=args.dtype != "float32")
    scaler = torch.amp.GradScaler(device, enabled=args.dtype == "float16")

    def step():
        with autocast:
            losses = model([x] * args.batch, [target] * args.batch)
            loss = sum(losses.values())
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        scaler.step(opt)
        scaler.update()
        return float(loss)  # (a float() waits for the GPU)

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = _child.work_peak_rss_mb()
    if args.light:
        return {"times": times, "peak_rss_mb": peak}

    def count_step():
        # the work of one more step, counted by torch (2 FLOPs per multiply-add, as mrcnn's)
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as counter:
            step()
        return {"gflop": counter.get_total_flops() / 1e9}
    return {"times": times, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "peak_rss_mb": peak, "work": _optional("torch's FLOP count", count_step),
            "threads": torch.get_num_threads(), "device": device}


def run_child(python, which, args, first=True):
    cmd = [python, os.path.abspath(__file__), "--child", which, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--size", str(args.size), "--batch", str(args.batch),
           "--device", args.device, "--dtype", args.dtype] + \
        (["--frozen-bn"] if args.frozen_bn else []) + ([] if first else ["--light"])
    return _child.run_child(cmd, which)


def work_lines(ours, peer, floor=True):
    """The report's lines on each side's work per step and its rate, and, when the
    float32 matmul peak bounds the step (floor: float32 on the CPU, both sides), the
    floor: the least work of a timed step at that peak."""
    peak = ours["machine"]["matmul_gflops"]
    med = statistics.median(ours["times"])
    work = ours.get("work")
    if not work or not peak:
        return []
    low, high = min(work["gflop"]), max(work["gflop"])
    before, after = work["positive_rois"]
    mean = (low + high) / 2
    lines = ["work per step:       mrcnn {:.0f}-{:.0f} GFLOP (convolutions and matrix products, "
             "forward and backward; the mask head on the positive ROIs, {} per image before "
             "the timed steps and {} after, of {}): at {:.0f} GFLOP, {:.0f} GFLOP/s in the "
             "median step, {:.0f}% of the float32 matmul peak".format(
                 low, high, before, after, work["rois"], mean, mean / med,
                 100 * mean / med / peak)]
    pmed = statistics.median(peer["times"]) if peer else None
    if peer and peer.get("work"):
        lines.append("                     torchvision {:.0f} GFLOP (torch.utils.flop_counter): "
                     "{:.0f} GFLOP/s, {:.0f}% of the peak".format(
                         peer["work"]["gflop"], peer["work"]["gflop"] / pmed,
                         100 * peer["work"]["gflop"] / pmed / peak))
    if floor:
        text = "floor:               {:.2f} s (the least of mrcnn's work at the matmul peak)".format(
            low / peak)
        if pmed:
            text += " = {:.2f}x torchvision's step".format(low / peak / pmed)
        lines.append(text + "; the median step is {:.2f}x the floor".format(med / (low / peak)))
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description="mrcnn vs torchvision training-step benchmark")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="compute dtype of both sides (mrcnn COMPUTE_DTYPE, torch autocast)")
    p.add_argument("--frozen-bn", action="store_true",
                   help="mrcnn with TRAIN_BN_AFFINE = False (torchvision's FrozenBatchNorm2d)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="torchvision's device (auto: the GPU when torch sees one)")
    p.add_argument("--torch-python", default=os.path.join(ROOT, ".venv-torch", "bin", "python"))
    _child.add_round_arguments(p)
    p.add_argument("--record", action="store_true")
    p.add_argument("--child", choices=["mrcnn", "torchvision"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        fn = child_mrcnn if args.child == "mrcnn" else child_torchvision
        print("RESULT " + json.dumps(fn(args)))
        return
    print("mrcnn: {} warm-up + {} steps at {}x{}, batch {}, {}{}{} ...".format(
        args.warmup, args.steps, args.size, args.size, args.batch, args.dtype,
        ", frozen batch norms" if args.frozen_bn else "",
        ", {} rounds".format(args.rounds) if args.rounds > 1 else ""), flush=True)
    our_rounds, peer_rounds, ours, peer = _child.run_both(run_child, args)
    med = statistics.median(ours["times"])
    lines = _child.machine_lines(ours["machine"], peer) + [
        "mrcnn train step:    median {:.2f} s  ({}); peak RSS {:.0f} MB".format(
            med, _child.runs_text(ours, "steps"), ours["peak_rss_mb"]),
        "  input pipeline:    {:.3f} s per batch on its own ({:.0f}% of a step; built in "
        "threads while the step runs)".format(ours["pipeline"], 100 * ours["pipeline"] / med)]
    if peer:
        pmed = statistics.median(peer["times"])
        lines += ["torchvision {} train step: median {:.2f} s  ({}); peak RSS {:.0f} MB"
                  .format(peer["torchvision"], pmed,
                          _child.runs_text(peer, "steps"),
                          peer["peak_rss_mb"]),
                  _child.ratio_line(our_rounds, peer_rounds)]
    else:
        lines.append("torchvision not installed at {}; no peer".format(args.torch_python))
    # (the float32 matmul peak bounds a float32 step on the CPU only)
    on_cpu = not peer or peer.get("device", "cpu") == "cpu"
    lines += work_lines(ours, peer, floor=args.dtype == "float32" and on_cpu)
    print("\n".join(lines))
    if args.record:
        with open(os.path.join(HERE, "RESULTS.md"), "a") as f:
            dtype = "" if args.dtype == "float32" else ", " + args.dtype
            frozen = ("", "") if not args.frozen_bn else (", frozen batch norms (both sides)",
                                                          " --frozen-bn")
            f.write("\n## Training step, {0}x{0}, batch {1}, all layers, ResNet-50{7}{9} "
                    "({2}, {3})\n\n`python bench/bench_train.py --steps {4} --warmup {5} "
                    "--batch {1} --dtype {8}{10}{11}`\n\n```\n{6}\n```\n".format(
                        args.size, args.batch, datetime.date.today().isoformat(),
                        lines[0].split(":", 1)[1].strip(), args.steps, args.warmup,
                        "\n".join(lines), dtype, args.dtype, frozen[0], frozen[1],
                        _child.rounds_flag(args)))


if __name__ == "__main__":
    main()
