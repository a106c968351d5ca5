"""Training: the Keras model with a custom train_step, layer freezing, callbacks.

``MaskRCNN.train`` (in model.py) uses these. The five losses are computed in
``train_step``/``test_step`` from the network's outputs each step (no ``add_loss``, no
``metrics_tensors``), so calling ``train()`` again for the next stage of a schedule
starts from a clean slate and nothing is counted twice.
"""
import contextlib
import csv
import logging
import math
import os
import re
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from .config import LOSS_NAMES
from .graph_ops import parse_image_meta_graph
from .optimizer import make_optimizer  # noqa: F401 (its home before optimizer.py)
from .losses import (l2_weight_decay, mrcnn_bbox_loss_graph, mrcnn_class_loss_graph,
                     mrcnn_mask_loss_graph, rpn_bbox_loss_graph, rpn_class_loss_graph)
from .weights import save_weights_classic

log = logging.getLogger(__name__)



# Pre-defined layer regular expressions (full match on layer names)
LAYER_PRESETS = {
    # all layers but the backbone
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    # from a specific ResNet stage and up
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    # all layers
    "all": ".*",
}


# The Config values that the train and validation steps read when Keras traces them (the
# losses, the weight decay, and the optimizer that make_optimizer builds). A train() call
# keeps the last call's traced steps only when these are unchanged (MaskRCNN._compile);
# tests/test_optimizer.py checks that TrainingModel and make_optimizer read no other.
TRACED_CONFIG = ("LOSS_WEIGHTS", "SMOOTH_L1_BETA", "WEIGHT_DECAY", "OPTIMIZER",
                 "LEARNING_MOMENTUM", "GRADIENT_CLIP_NORM", "COMPUTE_DTYPE")


class _NewTrainFunctionIsNotRetracing(logging.Filter):
    """A ``train()`` call with other layers than the call before compiles the Keras model
    again (a new optimizer, a new set of trainable layers), so Keras makes new train and
    validation functions and traces each once. TensorFlow counts the traces of every
    function Keras makes as traces of one function, and from the fifth on (three
    ``train()`` calls with validation reach it) warns "N out of the last M calls ...
    triggered tf.function retracing ... Tracing is expensive"; nothing is traced twice,
    so during ``train()`` that warning is dropped. Other retracing warnings, and this
    one outside ``train()``, still show."""

    def filter(self, record):
        text = record.getMessage()
        return not ("triggered tf.function retracing" in text
                    and "TensorFlowTrainer._make_function" in text)


# fit_scope's blocks nest across threads: what they undo is undone when the last ends
_FIT_SCOPE = {"lock": threading.Lock(), "depth": 0, "registry_before": None,
              "filter": _NewTrainFunctionIsNotRetracing()}


@contextlib.contextmanager
def fit_scope():
    """What ``MaskRCNN.train`` runs Keras' ``fit`` in.

    1. The gradient functions that tracing a train step registers are dropped when the
    block ends. A ``tf.custom_gradient`` traced in a graph (the all-reduce a distribution
    strategy puts in every train step is one) registers its gradient function in
    TensorFlow's global gradient registry under a fresh name, and nothing ever removes
    it. That function holds the traced graph, so every ``train()`` call kept its whole
    training graph alive after the model was gone: measured on a 64-px ResNet-50, 0.5 GB
    more resident memory per call (heads, 4+, all: 0.9 -> 2.4 GB), none of it returned
    when the model was deleted. The entry is read when the traced step is
    differentiated, during its trace inside ``fit``; the functions Keras traces there are
    only run afterwards.
    2. While the block runs, the misleading retracing warning about the functions Keras
    makes for each call is dropped (see _NewTrainFunctionIsNotRetracing).

    When several models train in several threads at once, both are undone when the last
    block ends, so no thread's clean-up removes what another is still tracing with.
    """
    from tensorflow.python.framework import ops as tf_ops
    registry = getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict):    # another TensorFlow layout: leave it alone
        registry = {}
    state, logger = _FIT_SCOPE, logging.getLogger("tensorflow")
    with state["lock"]:
        if state["depth"] == 0:
            state["registry_before"] = set(registry)
            logger.addFilter(state["filter"])
        state["depth"] += 1
    try:
        yield
    finally:
        with state["lock"]:
            state["depth"] -= 1
            if state["depth"] == 0:
                logger.removeFilter(state["filter"])
                for name in set(registry) - state["registry_before"]:
                    if name.startswith("CustomGradient-"):
                        registry.pop(name, None)
                state["registry_before"] = None


class TrainingDiverged(FloatingPointError):
    """A loss became NaN or infinite; the message names the step and the loss."""


def layers_regex(layers):
    """The regular expression for a preset name or a regex of your own."""
    return LAYER_PRESETS.get(layers, layers)


def set_trainable(keras_model, layer_regex, verbose=0, batch_norm_affine=True):
    """Make trainable exactly the weight layers whose name fully matches layer_regex,
    including the layers inside nested models (rpn_model). batch_norm_affine=False
    (Config.TRAIN_BN_AFFINE) keeps every batch norm's gamma and beta as they are, matched
    or not. Returns the trainable names."""
    pattern = re.compile(layer_regex)
    chosen, frozen = [], []

    def walk(model, depth):
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                layer.trainable = True  # the container; its layers decide below
                walk(layer, depth + 1)
                continue
            if not layer.weights:
                continue
            trainable = bool(pattern.fullmatch(layer.name))
            layer.trainable = trainable
            if isinstance(layer, keras.layers.BatchNormalization):
                # gamma and beta carry their own flags (Keras leaves a flag set False
                # when the layer is made trainable again); a frozen pair leaves the
                # layer trainable, so that TRAIN_BN = None still trains its statistics
                for weight in (getattr(layer, "gamma", None), getattr(layer, "beta", None)):
                    if weight is not None:
                        weight.trainable = trainable and batch_norm_affine
                if trainable and not batch_norm_affine:
                    frozen.append(layer.name)
                    continue
            if trainable:
                chosen.append(layer.name)
                if verbose > 0:
                    print("{}{:20}   ({})".format(" " * depth, layer.name,
                                                 layer.__class__.__name__))
    walk(keras_model, 0)
    if not chosen and frozen:
        raise ValueError("layers={!r} matches only batch norms ({}), which "
                         "TRAIN_BN_AFFINE = False keeps frozen; choose other layers or set "
                         "TRAIN_BN_AFFINE = True".format(layer_regex, ", ".join(frozen[:3])))
    if not chosen:
        raise ValueError("layers={!r} matches no weight layer; use 'heads', '3+', '4+', "
                         "'5+', 'all' or a regex that fully matches layer names such as "
                         "'mrcnn_.*'".format(layer_regex))
    return chosen


class TrainingModel(keras.Model):
    """The training-mode functional graph, with the Mask R-CNN losses in train_step.

    Inputs (in order): images, image_meta, rpn_match, rpn_bbox, gt_class_ids, gt_boxes,
    gt_masks, anchors[, rois]. The data pipeline yields all but the anchors, which are
    constant for the training image shape and added here.
    """

    def __init__(self, inputs, outputs, config=None, anchors=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.mrcnn_config = config
        self.anchors_value = np.asarray(anchors, dtype=np.float32)
        self.loss_trackers = [keras.metrics.Mean(name=n) for n in ("loss",) + LOSS_NAMES]
        # float16: steps skipped by the dynamic loss scaling, counted per epoch
        self.skipped_tracker = None
        if getattr(config, "COMPUTE_DTYPE", "float32") == "float16":
            self.skipped_tracker = keras.metrics.Sum(name="skipped_steps")

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """The graph is built already and the losses and metrics are our own: only the
        optimizer needs building, and it is built here, before the first step.

        Without a strategy Keras leaves it to the first trace of the train function;
        a tf.function whose first trace creates variables is traced a second time
        (without variable creation), so every train() call paid for two traces of the
        whole training graph (about 3 s of a small model's 13 s). Under a strategy
        Keras builds it from a first batch averaged over the replicas, which fails for
        the integer and boolean inputs of a multi-worker run (and drops that batch)."""
        if not all(layer.built for layer in self._flatten_layers()):
            return super()._maybe_symbolic_build(iterator, data_batch)
        with self.distribute_strategy.scope():
            if self.optimizer is not None and not self.optimizer.built:
                self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        extra = [self.skipped_tracker] if self.skipped_tracker is not None else []
        return list(self.loss_trackers) + extra

    def _model_inputs(self, data):
        inputs = list(data[0] if isinstance(data, tuple) and len(data) == 1 else data)
        batch = tf.shape(inputs[0])[0]
        anchors = tf.broadcast_to(tf.constant(self.anchors_value)[None],
                                  [batch] + list(self.anchors_value.shape))
        return inputs[:7] + [anchors] + inputs[7:]

    def compute_mrcnn_losses(self, inputs, outputs):
        """The five losses (unweighted) as a dict."""
        (_, image_meta, rpn_match, rpn_bbox_target, _, _, _) = inputs[:7]
        (rpn_class_logits, _, rpn_bbox, mrcnn_class_logits, _, mrcnn_bbox, mrcnn_mask,
         _, _, target_class_ids, target_bbox, target_mask) = outputs
        active_class_ids = parse_image_meta_graph(image_meta)["active_class_ids"]
        return {
            "rpn_class_loss": rpn_class_loss_graph(rpn_match, rpn_class_logits),
            "rpn_bbox_loss": rpn_bbox_loss_graph(rpn_bbox_target, rpn_match, rpn_bbox,
                                                 self.mrcnn_config.SMOOTH_L1_BETA),
            "mrcnn_class_loss": mrcnn_class_loss_graph(target_class_ids, mrcnn_class_logits,
                                                       active_class_ids),
            "mrcnn_bbox_loss": mrcnn_bbox_loss_graph(target_bbox, target_class_ids, mrcnn_bbox,
                                                     self.mrcnn_config.SMOOTH_L1_BETA),
            # the mask head ran on the first (positive) ROIs only
            "mrcnn_mask_loss": mrcnn_mask_loss_graph(
                target_mask[:, :tf.shape(mrcnn_mask)[1]],
                target_class_ids[:, :tf.shape(mrcnn_mask)[1]], mrcnn_mask),
        }

    def _loss_decay(self):
        """The L2 weight-decay term of the loss (SGD, as the classic code); AdamW decays
        the weights in the optimizer instead, so the loss has none."""
        if getattr(self.mrcnn_config, "OPTIMIZER", "SGD") == "AdamW":
            return tf.constant(0.0)
        return l2_weight_decay(self.trainable_weights, self.mrcnn_config.WEIGHT_DECAY)

    def _total(self, losses):
        weights = self.mrcnn_config.LOSS_WEIGHTS
        total = tf.add_n([losses[n] * float(weights.get(n, 1.0)) for n in LOSS_NAMES])
        return total

    def _update(self, total, losses, skipped=None):
        """Add a step's losses to the epoch means. skipped (float16 loss scaling only):
        1.0 when the step was skipped for overflowing gradients; such a step changes
        no weight and is left out of the means (its loss may be infinite)."""
        return self._per_worker(self._results(total, losses, skipped))

    @staticmethod
    def _per_worker(results):
        """Under MultiWorkerMirroredStrategy Keras averages each step's outputs over
        the replicas along a batch axis (a scalar fails): give them one."""
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            return {k: tf.reshape(v, [1]) for k, v in results.items()}
        return results

    def _results(self, total, losses, skipped):
        if skipped is None:
            self.loss_trackers[0].update_state(total)
            for tracker, name in zip(self.loss_trackers[1:], LOSS_NAMES):
                tracker.update_state(losses[name])
            return {t.name: t.result() for t in self.loss_trackers}
        keep = 1.0 - skipped
        values = [total] + [losses[n] for n in LOSS_NAMES]
        for tracker, value in zip(self.loss_trackers, values):
            value = tf.where(keep > 0, value, tf.zeros_like(value))
            tracker.update_state(value, sample_weight=keep)
        self.skipped_tracker.update_state(skipped)
        # an epoch whose steps were all skipped has no mean loss (nan, not 0)
        result = {t.name: tf.where(t.count > 0, t.result(), float("nan"))
                  for t in self.loss_trackers}
        result["skipped_steps"] = self.skipped_tracker.result()
        result["loss_scale"] = tf.identity(self.optimizer.dynamic_scale)
        return result

    def train_step(self, data):
        inputs = self._model_inputs(data)
        scaler = self.optimizer if isinstance(self.optimizer,
                                              keras.optimizers.LossScaleOptimizer) else None
        with tf.GradientTape() as tape:
            outputs = self(inputs, training=True)
            losses = self.compute_mrcnn_losses(inputs, outputs)
            total = self._total(losses)
            decay = self._loss_decay()
            objective = total + decay
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = objective / tf.cast(replicas, objective.dtype)
            if scaler is not None:
                scaled = scaler.scale_loss(scaled)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        if scaler is None:
            self.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
            return self._update(total + decay, losses)
        grads = self._same_finiteness_everywhere([g for g, _ in pairs])
        pairs = list(zip(grads, [v for _, v in pairs]))
        # the scale halves exactly when the optimizer skips the step (gradients not
        # finite); the same answer on every replica, since it reads the shared variable
        before = tf.identity(scaler.dynamic_scale)
        with tf.control_dependencies([before]):
            self.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        # (reads and writes of one variable keep their program order in a tf.function)
        skipped = tf.cast(tf.less(tf.identity(scaler.dynamic_scale), before), tf.float32)
        return self._update(total + decay, losses, skipped)

    @staticmethod
    def _same_finiteness_everywhere(grads):
        """Keras' LossScaleOptimizer decides to apply or skip a step from each replica's
        own gradients, before they are summed: a replica whose gradients overflowed
        would skip while the others wait in the all-reduce of the applied step (a hang
        until the collective timeout). Agree first: when any replica's gradients are
        not finite, every replica's become NaN, so all of them skip."""
        strategy = tf.distribute.get_strategy()
        context = tf.distribute.get_replica_context()
        if context is None or strategy.num_replicas_in_sync <= 1:
            return grads
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        overflowed = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                        1.0 - tf.cast(finite, tf.float32))
        poison = tf.where(overflowed > 0, float("nan"), 0.0)
        return [g + tf.cast(poison, g.dtype) for g in grads]

    def test_step(self, data):
        inputs = self._model_inputs(data)
        outputs = self(inputs, training=False)
        losses = self.compute_mrcnn_losses(inputs, outputs)
        decay = self._loss_decay()
        return self._update(self._total(losses) + decay, losses)

    def batch_losses(self, batch):
        """The total and the five losses of one batch (a list of the pipeline's arrays)
        with the current weights, in inference mode; no metric or weight changes.
        Returns {name: float}.

        Runs eagerly: once per epoch, tracing it as a graph would cost more (about 3.8 s
        against 0.4 s for a tiny model) than running it."""
        inputs = self._model_inputs(tuple(tf.constant(a) for a in batch))
        outputs = self(inputs, training=False)
        losses = self.compute_mrcnn_losses(inputs, outputs)
        values = dict(losses, loss=self._total(losses))
        return {k: float(v) for k, v in values.items()}


############################################################
#  Callbacks
############################################################

def first_bad_weight(keras_model):
    """The name of the first weight holding NaN or infinite values, or None."""
    for variable in keras_model.weights:
        if not np.all(np.isfinite(np.asarray(variable.numpy()))):
            return variable.path
    return None


class ClassicCheckpoint(keras.callbacks.Callback):
    """Save the weights as <log_dir>/mask_rcnn_<name>_<epoch:04d>.h5 (classic HDF5
    layout) after every ``save_every``-th epoch and after the last epoch of the run,
    and as mask_rcnn_<name>_best.h5 whenever the monitored loss improves (val_loss, or
    loss without validation data) -- unless the epoch diverged.

    An epoch's training loss is the mean over its steps, each computed before its own
    update, so it cannot show that the last update broke the model. Before saving, this
    checks what the weights do now: every validation loss of the epoch (when there is
    validation data) or, without it, the loss of a fixed training batch after the
    epoch (``probe``: a callable returning that loss dict), and that every weight is
    finite. A diverged epoch stops training with ``model.stop_training_reason`` set;
    ``MaskRCNN.train`` raises TrainingDiverged with it. Nothing is written then.

    best: the best monitored value of earlier runs (a resumed run keeps improving on it).
    After each epoch, ``self.last`` holds {"epoch", "checkpoint", "best"} for the
    history logger.
    """

    def __init__(self, checkpoint_path, probe=None, save_every=1, save_best=True, best=None,
                 write=True):
        super().__init__()
        # write=False (a multi-worker run's other workers): check, never save
        self.write = bool(write)
        if int(save_every) < 1:
            raise ValueError("save_every={!r}: save every N epochs, N >= 1".format(save_every))
        self.checkpoint_path = checkpoint_path
        self.best_path = checkpoint_path.replace("{epoch:04d}", "best")
        self.probe = probe
        self.save_every = int(save_every)
        self.save_best = save_best
        self.best = best
        self.saved = []
        self.last = None
        self._unsaved_epoch = None

    def _diverged(self, epoch, logs):
        checked = {k: v for k, v in (logs or {}).items() if k.startswith("val_")
                   and k.endswith("loss")}
        source = "after the epoch (validation)"
        if not checked and self.probe is not None:
            checked = {"training-batch " + k: v for k, v in self.probe().items()}
            source = "after the epoch's updates (a fixed training batch)"
        for name, value in checked.items():
            if not math.isfinite(float(value)):
                return ("epoch {}: {} is {} {}; the weights diverged, so they were not "
                        "saved. Lower the learning rate (or use a warm-up), check "
                        "GRADIENT_CLIP_NORM, and check the dataset for broken images and "
                        "masks.".format(epoch + 1, name, float(value), source))
        bad = first_bad_weight(self.model)
        if bad is not None:
            return ("epoch {}: weight {} holds NaN or infinite values; the weights diverged, "
                    "so they were not saved. Lower the learning rate.".format(epoch + 1, bad))
        return None

    def _save(self, epoch):
        path = self.checkpoint_path.format(epoch=epoch + 1)
        self._unsaved_epoch = None
        if not self.write:
            return None
        save_weights_classic(self.model, path)
        self.saved.append(path)
        self._unsaved_epoch = None
        return path

    def on_epoch_end(self, epoch, logs=None):
        self.last = None
        if getattr(self.model, "stop_training_reason", None):
            return  # never save diverged weights
        message = self._diverged(epoch, logs)
        if message:
            log.error(message)
            self.model.stop_training_reason = message
            self.model.stop_training = True
            return
        logs = logs or {}
        last_of_run = epoch + 1 >= self.params.get("epochs", 0) or self.model.stop_training
        path = None
        if (epoch + 1) % self.save_every == 0 or last_of_run:
            path = self._save(epoch)
        else:
            self._unsaved_epoch = epoch
        monitor = "val_loss" if "val_loss" in logs else "loss"
        value = logs.get(monitor)
        improved = value is not None and math.isfinite(float(value)) and (
            self.best is None or float(value) < self.best)
        if improved and self.save_best:
            self.best = float(value)
            if self.write:
                save_weights_classic(self.model, self.best_path)
        self.last = {"epoch": epoch + 1, "checkpoint": path and os.path.basename(path),
                     "best": bool(improved and self.save_best), "monitor": monitor}

    def on_train_end(self, logs=None):
        # stopped early by another callback (a time budget) after an epoch we skipped
        if self._unsaved_epoch is not None and \
                not getattr(self.model, "stop_training_reason", None):
            self._save(self._unsaved_epoch)


class RunHistory(keras.callbacks.Callback):
    """<log_dir>/history.json after every epoch, and <log_dir>/losses.png.

    history.json is a list with one entry per finished epoch: epoch, layers, lr (the
    rate at the epoch's end), every loss and validation loss, the checkpoint written
    (or null) and whether it was the best so far. It is rewritten atomically; entries
    after ``initial_epoch`` left by a killed run are replaced. losses.png plots each
    loss per epoch (training and validation) over the steps of losses.csv; it is
    redrawn after an epoch when ``plot_every`` seconds (60) have passed since it was
    last drawn, and when the train() call ends. Drawing and writing it takes 0.3-0.4 s:
    nothing beside an epoch of minutes, a tenth of the time of a short epoch.
    """

    def __init__(self, log_dir, layers, initial_epoch=0, checkpoint=None, plot=True,
                 plot_every=60.0):
        super().__init__()
        self.log_dir = log_dir
        self.layers = layers
        self.initial_epoch = int(initial_epoch)
        self.checkpoint = checkpoint
        self.plot = plot
        self.plot_every = float(plot_every)
        self._drawn_at = None
        self._undrawn = False

    @property
    def path(self):
        return os.path.join(self.log_dir, "history.json")

    def on_train_begin(self, logs=None):
        self.entries = [h for h in read_history(self.log_dir)
                        if h.get("epoch", 0) <= self.initial_epoch]
        self._drawn_at = time.monotonic()
        self._undrawn = False

    def on_epoch_end(self, epoch, logs=None):
        if getattr(self.model, "stop_training_reason", None):
            return
        entry = {"epoch": epoch + 1, "layers": self.layers,
                 "lr": current_learning_rate(self.model.optimizer)}
        entry.update({k: float(v) for k, v in (logs or {}).items()
                      if isinstance(v, (int, float, np.floating, np.integer)) or
                      np.ndim(v) == 0})
        if self.checkpoint is not None and self.checkpoint.last:
            entry["checkpoint"] = self.checkpoint.last["checkpoint"]
            entry["best"] = self.checkpoint.last["best"]
        self.entries = [h for h in self.entries if h["epoch"] != epoch + 1] + [entry]
        write_json_atomic(self.path, self.entries)
        self._undrawn = True
        if time.monotonic() - self._drawn_at >= self.plot_every:
            self._draw()

    def on_train_end(self, logs=None):
        if self._undrawn:
            self._draw()

    def _draw(self):
        self._drawn_at = time.monotonic()
        self._undrawn = False
        if not self.plot:
            return
        from .visualize import plot_loss_history
        try:
            plot_loss_history(self.entries, os.path.join(self.log_dir, "losses.csv"),
                              os.path.join(self.log_dir, "losses.png"))
        except Exception as e:  # a picture must never stop training
            log.warning("could not draw losses.png: %s", e)


def read_history(log_dir):
    """The entries of <log_dir>/history.json ([] when there is none)."""
    import json
    path = os.path.join(log_dir, "history.json")
    if not os.path.isfile(path):
        return []
    try:
        with open(path) as f:
            entries = json.load(f)
    except ValueError:
        log.warning("%s is damaged; starting a new history", path)
        return []
    return [h for h in entries if isinstance(h, dict) and "epoch" in h]


def best_in_history(entries):
    """The best monitored loss recorded in history entries (None when none was best)."""
    values = [h.get("val_loss", h.get("loss")) for h in entries if h.get("best")]
    values = [v for v in values if v is not None]
    return min(values) if values else None


def write_json_atomic(path, value):
    import json
    tmp = path + ".part"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def dataset_summary(dataset):
    """What a Dataset is, for run.json and the model card: its class, image count,
    class names, sources and the common folder of its image files (when they are files)."""
    if dataset is None:
        return None
    paths = [str(i.get("path")) for i in dataset.image_info[:2000]
             if isinstance(i.get("path"), str)]
    try:
        root = os.path.commonpath([os.path.abspath(p) for p in paths]) if paths else None
    except ValueError:
        root = None
    if root and len(paths) > 1 and os.path.isfile(root):
        root = os.path.dirname(root)
    return {"class": type(dataset).__name__, "images": int(len(dataset.image_ids)),
            "class_names": list(dataset.class_names), "sources": list(dataset.sources),
            "folder": root}


def record_stage(log_dir, mask_rcnn, layers, learning_rate, history, started,
                 train_dataset, val_dataset, diverged=None):
    """Append one train() call to <log_dir>/run.json: the machine, the starting weights
    (path and sha256), and per stage the layers, learning rate, epochs, seconds and the
    datasets. The model card and MLflow read it."""
    import json
    import time
    from . import machine
    path = os.path.join(log_dir, "run.json")
    run = {}
    if os.path.isfile(path):
        try:
            with open(path) as f:
                run = json.load(f)
        except ValueError:
            run = {}
    run.setdefault("machine", machine.describe())
    if run.get("initial_weights") is None:
        run["initial_weights"] = mask_rcnn.initial_weights
    epochs = [e + 1 for e in (history.epoch if history is not None else [])]
    from .callbacks import describe_learning_rate
    stage = {"layers": layers, "learning_rate": describe_learning_rate(learning_rate),
             "epochs": [epochs[0], epochs[-1]] if epochs else [],
             "seconds": round(time.time() - started, 1),
             "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
             "train_dataset": dataset_summary(train_dataset),
             "val_dataset": dataset_summary(val_dataset)}
    if diverged:
        stage["diverged"] = diverged
    run.setdefault("stages", []).append(stage)
    write_json_atomic(path, run)
    return run


def current_learning_rate(optimizer):
    """The optimizer's learning rate now, as a float (schedules evaluated)."""
    try:
        return float(np.asarray(optimizer.learning_rate))
    except Exception:
        return None


class StepLossLogger(keras.callbacks.Callback):
    """Per-step losses: stops training on NaN/inf, and writes every step's losses to
    TensorBoard (``step/<loss>``) and to ``<log_dir>/losses.csv``.

    Each row is flushed to the operating system when its step ends (and the file is
    fsync'ed at the end of each epoch), so a killed run loses no finished step. A run
    that starts at ``initial_epoch`` (a resumed run) first drops the rows after that
    epoch's last step, and any half-written row: those steps are trained again, so
    every step appears once. The header is written whenever the file has none.

    Keras hands callbacks the running mean of the epoch; the step's own value is
    recovered as mean_k * k - mean_(k-1) * (k-1).

    loss_scaling=True (COMPUTE_DTYPE "float16"): two more columns, ``loss_scale`` (the
    dynamic loss scale after the step) and ``skipped`` (1 when the step's scaled
    gradients overflowed, so the optimizer skipped it: no weight changed). A skipped
    step is not divergence: its losses are left out of the epoch means and written as
    nan. Training stops only when the loss scale falls below MIN_LOSS_SCALE, i.e. the
    gradients overflow float16 even unscaled.
    """

    BASE_COLUMNS = ("step", "epoch", "loss") + LOSS_NAMES
    COLUMNS = BASE_COLUMNS
    SCALING_COLUMNS = ("loss_scale", "skipped")
    MIN_LOSS_SCALE = 1.0

    def __init__(self, log_dir, steps_per_epoch, write=True, initial_epoch=0,
                 loss_scaling=False):
        super().__init__()
        self.log_dir = log_dir
        self.steps_per_epoch = int(steps_per_epoch)
        self.write = write
        self.initial_epoch = int(initial_epoch)
        self.loss_scaling = bool(loss_scaling)
        self.COLUMNS = self.BASE_COLUMNS + (self.SCALING_COLUMNS if loss_scaling else ())
        self.epoch = 0
        self.message = None
        self.skipped_steps = 0
        self._writer = None
        self._csv = None
        self._csv_file = None

    @property
    def csv_path(self):
        return os.path.join(self.log_dir, "losses.csv")

    def _kept_rows(self, last_step):
        """The existing complete rows with step <= last_step."""
        if not os.path.exists(self.csv_path):
            return []
        kept = []
        lengths = (len(self.BASE_COLUMNS), len(self.BASE_COLUMNS) + len(self.SCALING_COLUMNS))
        with open(self.csv_path, newline="") as f:
            for row in csv.reader(f):
                if len(row) not in lengths or row[0] == "step":
                    continue  # the header, or a row cut short by a kill
                try:
                    step = int(row[0])
                    [float(v) for v in row[2:]]
                except ValueError:
                    continue
                if step <= last_step:
                    # rows of a run with(out) loss scaling: the columns of this one
                    row = row[:len(self.COLUMNS)]
                    row += ["nan"] * (len(self.COLUMNS) - len(row))
                    kept.append(row)
        return kept

    def on_train_begin(self, logs=None):
        self.model.stop_training_reason = None
        if not self.write:
            return
        os.makedirs(self.log_dir, exist_ok=True)
        self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "steps"))
        rows = self._kept_rows(self.initial_epoch * self.steps_per_epoch)
        tmp = self.csv_path + ".part"
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.COLUMNS)
            writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.csv_path)
        self._csv_file = open(self.csv_path, "a", newline="")
        self._csv = csv.writer(self._csv_file)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self._previous = {}
        self._skipped_before = 0.0

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        values = {}
        # the number of steps in the means so far (skipped steps are not)
        skipped_total = float(logs.get("skipped_steps", 0.0))
        skipped = self.loss_scaling and skipped_total > self._skipped_before
        self._skipped_before = skipped_total
        count = batch + 1 - int(round(skipped_total))
        for name in ("loss",) + LOSS_NAMES:
            if name not in logs:
                continue
            mean = float(logs[name])
            prev = self._previous.get(name)
            if skipped:
                values[name] = float("nan")  # not computed into the means; see above
            else:
                values[name] = mean if count == 1 or prev is None else \
                    mean * count - prev * (count - 1)
                self._previous[name] = mean
        # global step: continues across train() calls and resumed runs
        step = self.epoch * self.steps_per_epoch + batch + 1
        scale = float(logs.get("loss_scale", float("nan")))
        if skipped:
            self.skipped_steps += 1
            log.info("step %d: float16 gradients overflowed at loss scale %g; the step was "
                     "skipped and the scale halved", step, scale * 2)
            if scale < self.MIN_LOSS_SCALE:
                self.message = (
                    "training stopped at step {} (epoch {}, batch {}): the float16 gradients "
                    "overflow even without loss scaling (loss scale {:g} after {} skipped "
                    "steps); the weights diverged or do not fit float16. Lower the learning "
                    "rate, or train with COMPUTE_DTYPE = 'bfloat16' or 'float32'."
                    .format(step, self.epoch + 1, batch + 1, scale, self.skipped_steps))
                self.model.stop_training_reason = self.message
                self.model.stop_training = True
                return
        bad = [n for n, v in values.items() if not math.isfinite(v)] if not skipped else []
        if bad:
            name = next((n for n in LOSS_NAMES if n in bad), bad[0])
            self.message = ("training stopped at step {} (epoch {}, batch {}): {} is {}. "
                            "Lower the learning rate, check GRADIENT_CLIP_NORM, and check the "
                            "images and masks of the dataset (NaN or infinite pixel values, "
                            "degenerate boxes).".format(step, self.epoch + 1, batch + 1, name,
                                                        values[name]))
            self.model.stop_training_reason = self.message
            self.model.stop_training = True
            return
        if self._writer is not None:
            with self._writer.as_default():
                for name, v in values.items():
                    tf.summary.scalar("step/" + name, v, step=step)
                if self.loss_scaling:
                    tf.summary.scalar("step/loss_scale", scale, step=step)
            row = [step, self.epoch + 1] + ["{:.9g}".format(values.get(n, float("nan")))
                                            for n in ("loss",) + LOSS_NAMES]
            if self.loss_scaling:
                row += ["{:.9g}".format(scale), int(skipped)]
            self._csv.writerow(row)
            self._csv_file.flush()

    def on_epoch_end(self, epoch, logs=None):
        if self._csv_file is not None:
            self._csv_file.flush()
            os.fsync(self._csv_file.fileno())
        if self._writer is not None:
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
        if self._csv is not None:
            self._csv_file.flush()
            os.fsync(self._csv_file.fileno())
            self._csv_file.close()
            self._csv = None


class SkippedImagesLogger(keras.callbacks.Callback):
    """Log, per epoch, how many images the pipeline skipped (no instance left)."""

    def __init__(self, stats):
        super().__init__()
        self.stats = stats
        self._last = 0

    def on_epoch_end(self, epoch, logs=None):
        skipped = self.stats.skipped - self._last
        self._last = self.stats.skipped
        if skipped:
            log.warning("epoch %d: skipped %d images without instances (after resizing, "
                        "cropping or augmentation); %d of %d loaded so far", epoch + 1,
                        skipped, self.stats.skipped, self.stats.loaded)
        if logs is not None:
            logs["skipped_images"] = float(self.stats.skipped)


def make_strategy(config, strategy=None):
    """tf.distribute strategy for training.

    strategy: one of your own (a MultiWorkerMirroredStrategy you made) is used as is.
    Otherwise, when the TF_CONFIG environment variable names a cluster of more than one
    task: MultiWorkerMirroredStrategy (one per process, see ``multi_worker_strategy``).
    GPU_COUNT > 1: MirroredStrategy over the visible GPUs (on a machine without GPUs,
    over as many logical CPU devices as are configured, else the CPU with a warning).
    Otherwise the default strategy.
    """
    if strategy is not None:
        return strategy
    cluster = tf_config_cluster()
    if cluster is not None:
        return multi_worker_strategy()
    if config.GPU_COUNT <= 1:
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        cpus = tf.config.list_logical_devices("CPU")
        if len(cpus) >= config.GPU_COUNT:
            # logical CPU devices (tf.config.set_logical_device_configuration): one
            # replica each, as on GPUs (the tests use this)
            return tf.distribute.MirroredStrategy(
                devices=[c.name for c in cpus[:config.GPU_COUNT]])
    if len(gpus) < config.GPU_COUNT:
        log.warning("GPU_COUNT=%d but %d GPU(s) visible; training on %s", config.GPU_COUNT,
                    len(gpus), [g.name for g in gpus] or "the CPU")
    devices = [g.name for g in gpus[:config.GPU_COUNT]] or ["/cpu:0"]
    return tf.distribute.MirroredStrategy(devices=devices)


############################################################
#  Multi-worker training (TF_CONFIG)
############################################################

# seconds a collective (gradient all-reduce) may wait for the other workers before the
# step fails; MRCNN_COLLECTIVE_TIMEOUT overrides it. A worker that dies makes the others
# fail within about this time (or sooner: the strategy's health checks notice a peer
# that went away).
COLLECTIVE_TIMEOUT = 60

_MULTI_WORKER = []


class XlaNotSupported(ValueError):
    """jit_compile=True, but XLA cannot compile the train step; the message says why."""


def is_xla_failure(error):
    """Whether an exception from the first training step is XLA refusing the graph."""
    text = str(error)
    return isinstance(error, tf.errors.OpError) and any(
        w in text for w in ("XLA_", "xla_compile", "tf2xla", "XlaCompile",
                            "compile graph", "OpKernel for XLA"))


class WorkerLost(RuntimeError):
    """Multi-worker training stopped because another worker went away; the message says
    how to restart."""


def tf_config_cluster():
    """The cluster of the TF_CONFIG environment variable (a dict of task type to
    addresses) when it names more than one task, else None. A malformed TF_CONFIG
    raises ValueError saying what is wrong."""
    import json
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        value = json.loads(text)
        cluster = value.get("cluster") or {}
        task = value.get("task") or {}
    except (ValueError, AttributeError):
        raise ValueError("TF_CONFIG is not a JSON object like {\"cluster\": {\"worker\": "
                         "[\"host1:port\", \"host2:port\"]}, \"task\": {\"type\": "
                         "\"worker\", \"index\": 0}}: %r" % text[:200]) from None
    tasks = sum(len(cluster.get(t) or []) for t in ("chief", "worker"))
    if tasks <= 1:
        return None
    if task.get("type") not in ("chief", "worker") or not isinstance(task.get("index"), int) \
            or task["index"] >= len(cluster.get(task.get("type")) or []):
        raise ValueError("TF_CONFIG names a cluster of {} tasks but its task {!r} is not one "
                         "of them; set \"task\": {{\"type\": \"worker\", \"index\": i}} "
                         "with i this process's place in cluster.worker".format(tasks, task))
    return cluster


def multi_worker_strategy():
    """The process's MultiWorkerMirroredStrategy (made on first use: TensorFlow allows
    one per process), with collectives that time out after COLLECTIVE_TIMEOUT seconds
    (MRCNN_COLLECTIVE_TIMEOUT) instead of waiting forever for a dead worker."""
    if not _MULTI_WORKER:
        timeout = float(os.environ.get("MRCNN_COLLECTIVE_TIMEOUT", COLLECTIVE_TIMEOUT))
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except RuntimeError as e:
            if "program startup" not in str(e):
                raise
            raise RuntimeError(
                "TF_CONFIG names a cluster, so this process trains as a worker of "
                "MultiWorkerMirroredStrategy, which TensorFlow must set up before it runs "
                "any operation; this script ran TensorFlow operations first. Build the "
                "training model (MaskRCNN(mode='training', ...)) or call "
                "mrcnn.training.multi_worker_strategy() at the start of the script, before "
                "other TensorFlow work (or unset TF_CONFIG to train alone).") from None
        _MULTI_WORKER.append(strategy)
    return _MULTI_WORKER[0]


def worker_place(strategy):
    """(index, count, is_chief) of this process among the strategy's workers: chief
    first, then the workers in TF_CONFIG's order. (0, 1, True) without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0, 1, True
    cluster = resolver.cluster_spec().as_dict()
    chiefs = len(cluster.get("chief") or [])
    count = chiefs + len(cluster.get("worker") or [])
    if count <= 1:
        return 0, 1, True
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    index = task_id if task_type == "chief" else chiefs + task_id
    return index, count, index == 0


def is_collective_failure(error):
    """Whether an exception from a training step is a failed exchange with the other
    workers (a worker died, or the network went away)."""
    return isinstance(error, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                              tf.errors.CancelledError, tf.errors.AbortedError,
                              tf.errors.InternalError)) and \
        any(word in str(error).lower() for word in (
            "collective", "unavailable", "deadline", "timeout", "timed out", "peer",
            "socket", "connect", "abort", "cancel", "health"))


def xla_gist(error):
    """The op XLA could not compile, from its error."""
    m = re.search(r"No registered '(\w+)' OpKernel for XLA", str(error)) or \
        re.search(r"unsupported operations[^:]*: (\w+)", str(error))
    if m:
        return "no XLA kernel for the op {}".format(m.group(1))
    m = re.search(r"(Dynamic input[^\n]{0,120}|[^\n]*dynamic[^\n]{0,120})", str(error))
    return m.group(1).strip() if m else error_gist(error)


def error_gist(error):
    """The telling line of a TensorFlow error (whose first line is often just 'Graph
    execution error:')."""
    lines = [l.strip() for l in str(error).splitlines() if l.strip()]
    for line in lines:
        if any(w in line.lower() for w in ("connection", "timed out", "deadline", "peer",
                                           "unavailable", "health", "heartbeat", "abort")):
            return line[:300]
    return lines[0][:300] if lines else ""


def xla_not_supported(error):
    """The XlaNotSupported error for a first step XLA could not compile."""
    return XlaNotSupported(
        "jit_compile=True: XLA cannot compile this Mask R-CNN train step ({}). Parts of "
        "the graph have no XLA kernel or data-dependent shapes (ROIAlign's "
        "crop_and_resize, the proposals' non-max suppression, the ROI sampling of the "
        "detection targets). Train with jit_compile=False (Config.TRAIN_JIT_COMPILE = "
        "False, the default); no step was applied.".format(xla_gist(error)))


def worker_lost(error, index, count):
    """The WorkerLost error of worker ``index`` of ``count`` for a failed exchange."""
    return WorkerLost(
        "worker {} of {}: the exchange with the other workers failed ({}: {}). Another "
        "worker probably died or became unreachable. Stop every worker and start them all "
        "again with the same command and the last checkpoint (--weights last, or "
        "load_weights(model.find_last())); training continues from the chief's last saved "
        "epoch.".format(index, count, type(error).__name__, error_gist(error)))
