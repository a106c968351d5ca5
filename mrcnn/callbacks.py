"""Keras callbacks for ``MaskRCNN.train(custom_callbacks=[...])``, used by the command line.

- ``TimeBudget(minutes)``: stop training when a time budget is spent, cleanly: at the end
  of an epoch when the next one would not fit, else after the step that spends it. The
  epoch's checkpoint is saved as usual (``ClassicCheckpoint`` runs at every epoch end).
- ``TimeCosine(budget, peak_lr)``: the learning rate along a warm-up and half a cosine
  over the time of a ``TimeBudget`` instead of a step count, so that one ``train()``
  call (one graph trace) uses the whole budget however fast the machine is.
- ``EpochProgress``: Keras's progress bar with a header on every epoch, saying where a
  resumed or later-stage run starts ("Epoch 3/10 (resumed after epoch 2)"), and the
  time left of a budget.

``describe_learning_rate`` prints a learning rate or a Keras schedule as numbers.
"""
import time

import keras
from keras.callbacks import ProgbarLogger


def _num(value):
    return "{:g}".format(float(value))


def describe_learning_rate(lr):
    """A learning rate as text: ``0.001``, or a schedule as numbers, e.g.
    ``cosine 0.01 -> 0 over 500 steps``."""
    if isinstance(lr, (int, float)):
        return _num(lr)
    try:
        cfg = lr.get_config()
    except AttributeError:
        try:
            return _num(lr)
        except (TypeError, ValueError):
            return str(lr)
    kind = type(lr).__name__
    if kind == "CosineDecay":
        start, alpha = cfg["initial_learning_rate"], cfg.get("alpha", 0.0)
        warm = int(cfg.get("warmup_steps") or 0)
        peak = cfg.get("warmup_target") if warm and cfg.get("warmup_target") is not None \
            else start
        text = "cosine {} -> {} over {} steps".format(_num(peak), _num(peak * alpha),
                                                      int(cfg["decay_steps"]))
        if warm:
            text = "warm-up {} -> {} over {} steps, then {}".format(_num(start), _num(peak),
                                                                   warm, text)
        return text
    if kind == "ExponentialDecay":
        return "exponential {} x {} every {} steps{}".format(
            _num(cfg["initial_learning_rate"]), _num(cfg["decay_rate"]),
            int(cfg["decay_steps"]), " (staircase)" if cfg.get("staircase") else "")
    if kind == "PiecewiseConstantDecay":
        return "piecewise {} at steps {}".format([float(v) for v in cfg["values"]],
                                                 [int(b) for b in cfg["boundaries"]])
    parts = ["{}={}".format(k, _num(v) if isinstance(v, (int, float)) else v)
             for k, v in sorted(cfg.items()) if k != "name"]
    return "{}({})".format(kind, ", ".join(parts))


class TimeBudget(keras.callbacks.Callback):
    """Stop training when ``minutes`` have passed since the callback was made (so one
    budget spans the stages of a schedule: pass the same instance to each ``train``).

    At the end of an epoch, training stops when the next epoch would overrun the budget
    (unless ``whole_epochs`` is False: then the budget is used to its end); inside an
    epoch, after the step that overruns it. In both cases Keras finishes the epoch's
    bookkeeping (validation, the checkpoint). The next epoch is timed as the slowest of
    this ``train()`` call's epochs after its first; the first alone while there is no
    other (it also holds the graph's tracing, tens of seconds for a ResNet, which the
    epochs after it do not pay: timing by it stopped a 30-minute nucleus run a whole
    epoch early). After a call's last epoch the next one is the next call's first (a
    schedule's next stage), which traces again when its layers differ: it is timed as the
    slowest epoch of all.
    ``spent`` tells whether the budget is used up (no further epoch fits); ``reason``
    says why; ``cut_epoch`` whether it ended an epoch before its last step.
    """

    def __init__(self, minutes, clock=time.monotonic, whole_epochs=True):
        super().__init__()
        if not minutes or minutes <= 0:
            raise ValueError("TimeBudget: minutes must be > 0, got {!r}".format(minutes))
        self.seconds = float(minutes) * 60.0
        self.whole_epochs = whole_epochs
        self.clock = clock
        self.start = clock()
        self.spent = False
        self.reason = None
        self.cut_epoch = False
        self._epoch_start = None
        self._epochs = []       # this train() call's epoch times

    def elapsed(self):
        return self.clock() - self.start

    def left(self):
        return max(0.0, self.seconds - self.elapsed())

    def _stop(self, reason):
        self.spent = True
        self.reason = reason
        self.model.stop_training = True

    def next_epoch_seconds(self, last_of_call=False):
        """What the next epoch is expected to take (see the class docstring);
        last_of_call: the epoch just ended was this train() call's last."""
        timed = self._epochs if last_of_call else (self._epochs[1:] or self._epochs)
        return max(timed, default=0.0)

    def on_train_begin(self, logs=None):
        self._epochs = []       # (a new call traces a new graph: its first epoch is slow)
        if self.spent or self.elapsed() >= self.seconds:
            self._stop("the time budget of {:g} min was spent before this stage".format(
                self.seconds / 60))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        if not self.spent and self.elapsed() >= self.seconds:
            steps = (self.params or {}).get("steps")
            self.cut_epoch = steps is None or batch + 1 < steps
            self._stop("the time budget of {:g} min ran out at step {} of an epoch".format(
                self.seconds / 60, batch + 1))

    def on_epoch_end(self, epoch, logs=None):
        if self._epoch_start is not None:
            self._epochs.append(self.clock() - self._epoch_start)
        if not self.whole_epochs:
            return
        last = epoch + 1 >= (self.params or {}).get("epochs", float("inf"))
        expected = self.next_epoch_seconds(last_of_call=last)
        if not self.spent and self.elapsed() + expected > self.seconds:
            self._stop("the next epoch ({:.0f} s) would not fit in the {:.0f} s left of the "
                       "{:g} min budget".format(expected, self.left(), self.seconds / 60))


class TimeCosine(keras.callbacks.Callback):
    """Set the learning rate before every step from the time spent of ``budget`` (a
    TimeBudget): a linear warm-up from ``peak_lr * warmup_start`` over the first
    ``warmup`` fraction, then half a cosine down to ``peak_lr * floor`` at the end.

    Use it with a plain float learning rate in ``train()`` (it assigns the optimizer's
    rate variable). The rates depend on the machine's speed, so a run is repeatable in
    its data order, not in its exact rates.
    """

    def __init__(self, budget, peak_lr, warmup=0.05, warmup_start=0.1, floor=0.0):
        super().__init__()
        self.budget = budget
        self.peak_lr = float(peak_lr)
        self.warmup = float(warmup)
        self.warmup_start = float(warmup_start)
        self.floor = float(floor)

    def rate(self, fraction):
        """The learning rate at ``fraction`` (0..1) of the budget."""
        import math
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction < self.warmup:
            start = self.peak_lr * self.warmup_start
            return start + (self.peak_lr - start) * fraction / self.warmup
        t = (fraction - self.warmup) / max(1e-9, 1.0 - self.warmup)
        low = self.peak_lr * self.floor
        return low + (self.peak_lr - low) * 0.5 * (1.0 + math.cos(math.pi * t))

    def on_train_batch_begin(self, batch, logs=None):
        fraction = self.budget.elapsed() / self.budget.seconds
        self.model.optimizer.learning_rate.assign(self.rate(fraction))


class EpochProgress(ProgbarLogger):
    """Keras's progress bar (verbose 1) or one line per epoch (verbose 2), with a header
    on every epoch, the first of a single-epoch run included.

    The first epoch of a run that starts after epoch 0 (a resumed run, or the second
    stage of a schedule) says so: ``Epoch 3/10 (resumed after epoch 2)``. With a
    ``TimeBudget``, an open-ended run shows the time left instead of the last epoch.
    An epoch stopped before its last step (a time budget ran out) ends on the steps it
    ran, ``16/100 - 2s - 125ms/step``, where Keras would print ``100/100 - 2s -
    21ms/step``.
    """

    def __init__(self, budget=None, open_ended=False, stage=None):
        super().__init__()
        self.budget = budget
        self.open_ended = open_ended
        self.stage = stage
        self._first = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._first = None

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()
        if not self.verbose:
            return
        first = self._first is None
        if first:
            self._first = epoch
        total = "" if self.open_ended else "/{}".format(self.epochs)
        notes = []
        if first and epoch > 0:
            notes.append("resumed after epoch {}".format(epoch))
        if first and self.stage:
            notes.append(self.stage)
        if self.budget is not None:
            notes.append("{:.1f} of {:g} min left".format(self.budget.left() / 60,
                                                          self.budget.seconds / 60))
        print("Epoch {}{}{}".format(epoch + 1, total,
                                    " ({})".format("; ".join(notes)) if notes else ""),
              flush=True)

    def _finalize_progbar(self, logs):
        if self.target is not None and 0 < self.seen < self.target:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=True)
            return
        super()._finalize_progbar(logs)
