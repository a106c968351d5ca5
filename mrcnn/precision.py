"""Compute precision: Config.COMPUTE_DTYPE ("float32", "bfloat16" or "float16").

Reduced precision uses Keras mixed precision: the convolutions and dense layers of the
backbone, FPN, RPN head and the two heads compute in the reduced type ("mixed_bfloat16" or
"mixed_float16" dtype policies) while every weight stays float32. What must stay exact
computes in float32 whatever the setting (``Float32Layer``):

- batch normalisation statistics (Keras computes them in float32 under a mixed policy);
- anchors, RPN deltas applied to anchors, proposal boxes and their NMS (ProposalLayer);
- ROIAlign: boxes, level assignment and the bilinear crop (PyramidROIAlign);
- the detection targets, the detection layer (deltas, NMS) and the model outputs
  (rpn_class_logits/rpn_class/rpn_bbox and the heads' outputs are float32);
- the five losses and the weight decay (computed from the float32 outputs).

float16 training scales the loss dynamically (Keras ``LossScaleOptimizer``): a step
whose scaled gradients overflow is skipped (the weights are not changed) and the scale
halves; that is not divergence (see ``mrcnn.training.StepLossLogger``).

The weights are float32 in every mode, so a checkpoint trained in float16 or bfloat16
loads into a float32 model (and the other way round) unchanged.
"""
import contextlib

import keras
from keras import layers as KL

from .config import COMPUTE_DTYPES  # noqa: F401  (the accepted values)

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def policy_name(compute_dtype):
    """The Keras dtype policy name for a Config.COMPUTE_DTYPE value."""
    return POLICIES[compute_dtype]


@contextlib.contextmanager
def dtype_policy(compute_dtype):
    """Build layers under the dtype policy of ``compute_dtype``; the global policy is
    restored afterwards, so other models built in the same process are not affected."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy_name(compute_dtype or "float32"))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class Float32Layer(KL.Layer):
    """A layer that computes in float32 whatever the global dtype policy (its floating
    inputs are cast to float32): box geometry, NMS, ROIAlign, targets and the model's
    outputs. An explicit ``dtype=`` still overrides it."""

    def __init__(self, **kwargs):
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = "float32"
        super().__init__(**kwargs)


def faster_compute_dtype(candidates=("float32", "bfloat16"), repeats=3):
    """The COMPUTE_DTYPE among ``candidates`` that trains a small convolutional network
    fastest on this machine, and each one's time per step in seconds.

    Whether bfloat16 pays on a CPU depends on the chip: on the AMD EPYC (Zen 4) machines
    this project measured, a training step took 0.6x float32's time; on an Intel Xeon
    with AVX512_BF16 but no AMX it was slower (bench/RESULTS.md). A forward and backward
    pass of two 3x3 convolutions on a batch of 8 64x64 maps (about a second in all)
    tells them apart where it runs.
    Returns: (dtype, {dtype: seconds per step}).
    """
    import statistics
    import time
    import tensorflow as tf

    times = {}
    x = tf.random.stateless_normal([8, 64, 64, 32], seed=[0, 1])
    for dtype in candidates:
        with dtype_policy(dtype):
            net = keras.Sequential([
                keras.Input((64, 64, 32)),
                KL.Conv2D(64, 3, padding="same", activation="relu"),
                KL.Conv2D(64, 3, padding="same", activation="relu")])

        @tf.function
        def step(net=net):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.cast(net(x), tf.float32))
            return tape.gradient(loss, net.trainable_variables)

        step()
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(5):
                grads = step()
            grads[0].numpy()
            samples.append((time.perf_counter() - t0) / 5)
        times[dtype] = statistics.median(samples)
    return min(times, key=times.get), times
