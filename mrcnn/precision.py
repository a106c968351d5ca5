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
