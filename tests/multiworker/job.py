"""One process of the multi-worker tests: trains a tiny model with ``model.train``
unchanged (TF_CONFIG, when set, makes it a worker of a cluster).

python tests/multiworker/job.py OUT_DIR [--epochs N] [--resume] [--replicas R] [--steps S]
    [--dtype float16]

Writes OUT_DIR/ids-<worker index>.txt (the training image ids this process loaded, one a
line) and OUT_DIR/result-<worker index>.json (its log_dir, epoch, worker place and the
per-step losses it saw); --replicas R: a single process with R logical CPU devices and
GPU_COUNT R (MirroredStrategy), the reference run of the same global batch.
"""
import argparse
import json
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(2)

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--resume", action="store_true")
p.add_argument("--replicas", type=int, default=1)
p.add_argument("--dtype", default="float32", help="Config.COMPUTE_DTYPE")
args = p.parse_args()
if args.replicas > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.replicas)

import keras  # noqa: E402

from mrcnn import model as modellib  # noqa: E402
from samples.shapes.shapes import ShapesDataset  # noqa: E402
from tiny_configs import tiny_config_class  # noqa: E402

# every positive ROI is taken and no negative is sampled (ROI_POSITIVE_RATIO 1): the
# losses do not depend on which replica drew which random sample
Config = tiny_config_class(
    "mw", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64, RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128),
    IMAGES_PER_GPU=1, GPU_COUNT=args.replicas, STEPS_PER_EPOCH=args.steps,
    VALIDATION_STEPS=1, ROI_POSITIVE_RATIO=1.0, TRAIN_ROIS_PER_IMAGE=64,
    COMPUTE_DTYPE=args.dtype)


class RecordingShapes(ShapesDataset):
    """Records (position in the image stream, image id) of every image the training
    pipeline loads (the position is BatchLoader._load's argument)."""
    seen = []
    lock = threading.Lock()

    def load_image(self, image_id):
        frame, position = sys._getframe(1), None
        while frame is not None:
            if frame.f_code.co_name == "_load" and "position" in frame.f_locals:
                position = frame.f_locals["position"]
                break
            frame = frame.f_back
        with self.lock:
            self.seen.append((position, int(image_id)))
        return super().load_image(image_id)


train = RecordingShapes()
train.load_shapes(12, 64, 64, seed=1)
train.prepare()
val = ShapesDataset()
val.load_shapes(4, 64, 64, seed=2)
val.prepare()

keras.utils.set_random_seed(0)
model = modellib.MaskRCNN("training", Config(), os.path.join(args.out, "logs"))
index, count, chief = model.worker
if args.resume:
    model.load_weights(model.find_last(), by_name=True)
steps = []


class Steps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        steps.append({k: float(v) for k, v in (logs or {}).items()})
        print("step", len(steps), flush=True)


print("worker {} of {} (chief: {}), log_dir {}".format(index, count, chief, model.log_dir),
      flush=True)
model.train(train, val, 0.01, args.epochs, "all", seed=0, verbose=0,
            custom_callbacks=[Steps()])
with open(os.path.join(args.out, "ids-{}.txt".format(index)), "w") as f:
    f.write("\n".join("{} {}".format(*p) for p in RecordingShapes.seen))
with open(os.path.join(args.out, "result-{}.json".format(index)), "w") as f:
    json.dump({"log_dir": model.log_dir, "epoch": model.epoch, "worker": list(model.worker),
               "replicas": model.strategy.num_replicas_in_sync, "steps": steps}, f)
print("done", flush=True)
