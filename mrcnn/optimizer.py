"""The training optimizer: Config.OPTIMIZER "SGD" (classic: momentum, L2 decay in the
loss) or "AdamW" (decoupled weight decay), both clipped at GRADIENT_CLIP_NORM by the
global norm of the gradients.

SGD is Keras' SGD with its update done by one fused TensorFlow kernel per weight
(``ResourceApplyKerasMomentum``: the same arithmetic, m = momentum * m - lr * g and
w += m; bit-identical to Keras' SGD on the CPU, tests/test_optimizer.py). Keras builds
that update from about ten small ops per weight; on the 104 weights of a small model
that was 1,100 of the 7,400 ops of the training graph, all traced again by every
train() call and run every step. Outside a tf.distribute strategy it also reads the
learning rate once per step (not once per weight), makes one momentum constant and one
set of reduction axes per rank, and skips the one-replica all-reduce's identity per
weight: 17 -> 7 traced ops per weight, the same numbers (bench/RESULTS.md#lean-optimizer).
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mrcnn")
class MomentumSGD(keras.optimizers.SGD):
    """keras.optimizers.SGD (momentum > 0, not Nesterov: the classic settings) whose
    per-weight update is one fused kernel. Other settings, sparse gradients and other
    backends take Keras' own update."""

    def _fusable(self, gradient, variable):
        return (self.momentum != 0 and not self.nesterov and
                not isinstance(gradient, tf.IndexedSlices) and hasattr(variable, "handle"))

    def _fused_update(self, gradient, variable, lr, momentum):
        accum = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=accum.value.handle, lr=lr,
            grad=tf.cast(gradient, variable.dtype), momentum=momentum, use_locking=False,
            use_nesterov=False)

    def update_step(self, gradient, variable, learning_rate):
        if not self._fusable(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        self._fused_update(gradient, variable, tf.cast(learning_rate, dtype),
                           tf.constant(self.momentum, dtype))

    def _clip_gradients(self, grads):
        # Keras' clip_by_global_norm, op for op, but with one reduction-axes constant
        # per rank instead of one per weight
        if not (self.global_clipnorm and self.global_clipnorm > 0) or self.clipnorm:
            return super()._clip_gradients(grads)
        axes = {}
        squared = []
        for g in grads:
            if g is None:
                continue
            rank = g.shape.rank
            if rank is None:
                squared.append(tf.reduce_sum(tf.square(g)))
                continue
            if rank not in axes:
                axes[rank] = tf.constant(list(range(rank)), tf.int32)
            squared.append(tf.raw_ops.Sum(input=tf.square(g), axis=axes[rank]))
        norm = tf.sqrt(tf.reduce_sum(tf.stack(squared)))
        clip = self.global_clipnorm
        scale = clip * tf.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)
        return [g * scale if g is not None else g for g in grads]

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if tf.distribute.has_strategy() or self.momentum == 0 or self.nesterov:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        # no strategy: one replica, whose all-reduce and update context are identities;
        # the rate is read once and each dtype's constants are made once per step
        learning_rate = tf.convert_to_tensor(learning_rate)
        constants = {}
        for grad, variable in zip(grads, trainable_variables):
            if isinstance(variable, keras.Variable):
                variable = variable.value
            if not self._fusable(grad, variable):
                self.update_step(grad, variable, learning_rate)
                continue
            dtype = variable.dtype
            if dtype not in constants:
                constants[dtype] = (tf.cast(learning_rate, dtype),
                                    tf.constant(self.momentum, dtype))
            self._fused_update(grad, variable, *constants[dtype])


def make_optimizer(config, learning_rate):
    """The Keras optimizer of Config.OPTIMIZER: SGD with momentum (classic) or AdamW
    with decoupled weight decay, both with global-norm clipping at GRADIENT_CLIP_NORM.
    COMPUTE_DTYPE "float16" wraps it in a LossScaleOptimizer (dynamic loss scaling; the
    gradients are unscaled before they are clipped)."""
    optimizer = _base_optimizer(config, learning_rate)
    if getattr(config, "COMPUTE_DTYPE", "float32") == "float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _base_optimizer(config, learning_rate):
    if config.OPTIMIZER == "AdamW":
        optimizer = keras.optimizers.AdamW(learning_rate=learning_rate,
                                           weight_decay=config.WEIGHT_DECAY,
                                           global_clipnorm=config.GRADIENT_CLIP_NORM)
        # as the classic L2 term: no decay of batch norm's gamma and beta
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta"])
        return optimizer
    return MomentumSGD(learning_rate=learning_rate, momentum=config.LEARNING_MOMENTUM,
                       global_clipnorm=config.GRADIENT_CLIP_NORM)


def initial_state(optimizer):
    """What ``reset_optimizer`` puts back: the scalar variables of a just-built optimizer
    (the step count, the learning rate, a loss scale and its counter), by id. Every
    other variable of SGD and AdamW (momentum, first and second moments) starts at
    zero."""
    return {id(v): v.numpy() for v in optimizer.variables if len(v.shape) == 0}


def rate_is_settable(optimizer):
    """Whether the (inner) optimizer's learning rate is still a variable that
    ``reset_optimizer`` can set; a callback may have put a schedule in its place."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return isinstance(getattr(inner, "_learning_rate", None), keras.Variable)


def reset_optimizer(optimizer, learning_rate, initial):
    """Put a built optimizer back to the state it had when new (``initial``, from
    ``initial_state``), with ``learning_rate`` (a number): its next update is the one
    a new optimizer would make. ``MaskRCNN.train`` uses it to keep a traced train
    step across calls."""
    for v in optimizer.variables:
        v.assign(initial[id(v)] if id(v) in initial else tf.zeros(v.shape, v.dtype))
    optimizer.learning_rate = learning_rate
