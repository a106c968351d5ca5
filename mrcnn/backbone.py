"""ResNet-50/101 backbone and the feature pyramid (FPN), with the classic layer names.

Stem ``conv1`` + ``bn_conv1``; bottleneck blocks ``res{stage}{block}_branch2a|2b|2c``
(and ``_branch1`` for the shortcut of each stage's first block) with batch norms
``bn{stage}{block}_branch...``; FPN ``fpn_c{k}p{k}`` (1x1 lateral) and ``fpn_p{k}``
(3x3 output). Stride 2 sits on the 1x1 ``2a`` conv and on ``branch1``, as in the
classic (Caffe-style) ResNet the published weights were trained with.

torchvision's ResNet (``stride_on_3x3=True, torch_padding=True``, see
Config.RESNET_STRIDE_ON_3X3 / RESNET_TORCH_PADDING) keeps the same layers and names: the
stride moves to the 3x3 ``2b`` conv, and the strided 3x3 convs and the stem's max pool
pad one cell on every side (PyTorch's ``padding=1``) instead of TensorFlow's "same"
padding, which pads only after on even sizes.

``small_backbone`` (with ``small_backbone_shapes`` for COMPUTE_BACKBONE_SHAPE) is a small
residual network for training from scratch on a CPU (the shapes sample, the tests), an
example of a callable Config.BACKBONE.
"""
import keras
import numpy as np
import tensorflow as tf
from keras import layers as KL

RESNET_STAGE4_BLOCKS = {"resnet50": 5, "resnet101": 22}


def _op_determinism():
    """Whether TensorFlow's op determinism is on (tf.config.experimental.
    enable_op_determinism() or TF_DETERMINISTIC_OPS=1); its query is not public API."""
    from tensorflow.python.framework import config as tf_config
    query = getattr(tf_config, "is_op_determinism_enabled", None)
    return bool(query()) if query else False


@keras.saving.register_keras_serializable(package="mrcnn")
class BatchNorm(KL.BatchNormalization):
    """Batch normalisation that honours Config.TRAIN_BN.

    train_bn: None: follow the model's training flag; False: always use the moving
    statistics (frozen, the default: batches are small); True: always batch statistics.
    Epsilon is 1e-3, as in the classic weights.
    """

    def __init__(self, train_bn=False, epsilon=1e-3, **kwargs):
        # epsilon: 1e-3 classic; 1e-5 for torchvision's (Frozen)BatchNorm2d
        super().__init__(epsilon=epsilon, **kwargs)
        self.train_bn = train_bn

    def call(self, inputs, training=None):
        in_step = training is not None and training is not False
        if self.train_bn is not None:
            training = self.train_bn
        if training and self.trainable:
            return super().call(inputs, training=training)      # batch statistics
        # The moving statistics (frozen, the usual case): TensorFlow's fused batch norm,
        # one op forward and one backward where Keras' formula makes about a dozen
        # elementwise ops each way, computed in float32 whatever the input's type (as
        # Keras does). Its gradient op needs the layer's input, which a training step
        # keeps anyway when gamma and beta train (their gradients need it); when they do
        # not (TRAIN_BN_AFFINE = False, or a layer outside `layers`), Keras' formula
        # keeps nothing for the backward pass, so it stays. So it does under op
        # determinism: TensorFlow has no deterministic GPU kernel for the fused op's
        # gradient with moving statistics. bench/RESULTS.md, fused-batch-norm
        if not self._fusable(inputs) or (in_step and (
                not (self.trainable and self.gamma.trainable and self.beta.trainable)
                or _op_determinism())):
            return super().call(inputs, training=False)
        y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=tf.convert_to_tensor(self.gamma),
            offset=tf.convert_to_tensor(self.beta),
            mean=tf.convert_to_tensor(self.moving_mean),
            variance=tf.convert_to_tensor(self.moving_variance),
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
            is_training=False)
        return tf.cast(y, self.compute_dtype)

    def _fusable(self, inputs):
        try:
            rank = len(inputs.shape)
        except (TypeError, ValueError):     # unknown rank
            rank = None
        return (rank == 4 and self.axis in (-1, 3) and self.scale and self.center
                and not self.renorm and self.gamma.dtype == "float32"
                and keras.backend.standardize_dtype(inputs.dtype)
                in ("float32", "bfloat16", "float16"))

    def get_config(self):
        config = super().get_config()
        config["train_bn"] = self.train_bn
        return config


def _bottleneck(input_tensor, kernel_size, filters, stage, block, strides, use_bias,
                train_bn, style=None):
    """The residual branch: 1x1 -> kxk -> 1x1, each with BN, relu between.

    style: None (classic: the stride on the first 1x1) or a dict with stride_on_3x3,
    torch_padding and bn_epsilon (see ``resnet_graph``).
    """
    style = style or {}
    eps = style.get("bn_epsilon", 1e-3)
    on_3x3 = style.get("stride_on_3x3", False)
    nb_filter1, nb_filter2, nb_filter3 = filters
    conv_name_base = "res" + str(stage) + block + "_branch"
    bn_name_base = "bn" + str(stage) + block + "_branch"
    x = KL.Conv2D(nb_filter1, (1, 1), strides=(1, 1) if on_3x3 else strides,
                  name=conv_name_base + "2a", use_bias=use_bias)(input_tensor)
    x = BatchNorm(train_bn=train_bn, epsilon=eps, name=bn_name_base + "2a")(x)
    x = KL.Activation("relu")(x)
    strides_2b = strides if on_3x3 else (1, 1)
    padding = "same"
    if style.get("torch_padding") and tuple(strides_2b) != (1, 1):
        x = KL.ZeroPadding2D(kernel_size // 2)(x)
        padding = "valid"
    x = KL.Conv2D(nb_filter2, (kernel_size, kernel_size), padding=padding,
                  strides=strides_2b, name=conv_name_base + "2b", use_bias=use_bias)(x)
    x = BatchNorm(train_bn=train_bn, epsilon=eps, name=bn_name_base + "2b")(x)
    x = KL.Activation("relu")(x)
    x = KL.Conv2D(nb_filter3, (1, 1), name=conv_name_base + "2c", use_bias=use_bias)(x)
    return BatchNorm(train_bn=train_bn, epsilon=eps, name=bn_name_base + "2c")(x)


def identity_block(input_tensor, kernel_size, filters, stage, block, use_bias=True,
                   train_bn=False, style=None):
    """A bottleneck block whose shortcut is the identity.

    input_tensor: [batch, h, w, filters[2]]; kernel_size: of the middle conv;
    filters: the three conv widths; stage, block: for the layer names ("res2a_...").
    style: see ``resnet_graph`` (None: classic).
    """
    x = _bottleneck(input_tensor, kernel_size, filters, stage, block, (1, 1), use_bias,
                    train_bn, style)
    x = KL.Add()([x, input_tensor])
    return KL.Activation("relu", name="res" + str(stage) + block + "_out")(x)


def conv_block(input_tensor, kernel_size, filters, stage, block, strides=(2, 2),
               use_bias=True, train_bn=False, style=None):
    """A bottleneck block with a 1x1 conv shortcut (the first block of each stage).

    strides: on the first 1x1 conv (the 3x3 with style stride_on_3x3) and the shortcut;
    (2, 2) halves the size.
    """
    x = _bottleneck(input_tensor, kernel_size, filters, stage, block, strides, use_bias,
                    train_bn, style)
    shortcut = KL.Conv2D(filters[2], (1, 1), strides=strides,
                         name="res" + str(stage) + block + "_branch1",
                         use_bias=use_bias)(input_tensor)
    shortcut = BatchNorm(train_bn=train_bn, epsilon=(style or {}).get("bn_epsilon", 1e-3),
                         name="bn" + str(stage) + block + "_branch1")(shortcut)
    x = KL.Add()([x, shortcut])
    return KL.Activation("relu", name="res" + str(stage) + block + "_out")(x)


def resnet_graph(input_image, architecture, stage5=False, train_bn=False, style=None):
    """The ResNet stages.

    input_image: [batch, H, W, 3] molded image; architecture: "resnet50" or "resnet101".
    style: None for the classic network, or a dict (``resnet_style(config)``) with
        stride_on_3x3 (torchvision: the stride on the 3x3 conv), torch_padding
        (PyTorch's symmetric padding of the strided 3x3 convs and the stem's max pool)
        and bn_epsilon (1e-3 classic, 1e-5 torchvision).
    Returns: [C1, C2, C3, C4, C5] feature maps at strides 2 (pooled: 4), 4, 8, 16, 32.
    """
    if architecture not in RESNET_STAGE4_BLOCKS:
        raise ValueError("resnet_graph: architecture {!r}; use 'resnet50' or 'resnet101'"
                         .format(architecture))
    # Stage 1
    x = KL.ZeroPadding2D((3, 3))(input_image)
    x = KL.Conv2D(64, (7, 7), strides=(2, 2), name="conv1", use_bias=True)(x)
    x = BatchNorm(train_bn=train_bn, epsilon=(style or {}).get("bn_epsilon", 1e-3),
                  name="bn_conv1")(x)
    x = KL.Activation("relu")(x)
    if (style or {}).get("torch_padding"):
        # after the relu every value is >= 0, so zero padding acts as -inf padding
        x = KL.ZeroPadding2D((1, 1))(x)
        C1 = x = KL.MaxPooling2D((3, 3), strides=(2, 2), padding="valid")(x)
    else:
        C1 = x = KL.MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)
    kw = dict(train_bn=train_bn, style=style)
    # Stage 2
    x = conv_block(x, 3, [64, 64, 256], stage=2, block="a", strides=(1, 1), **kw)
    x = identity_block(x, 3, [64, 64, 256], stage=2, block="b", **kw)
    C2 = x = identity_block(x, 3, [64, 64, 256], stage=2, block="c", **kw)
    # Stage 3
    x = conv_block(x, 3, [128, 128, 512], stage=3, block="a", **kw)
    x = identity_block(x, 3, [128, 128, 512], stage=3, block="b", **kw)
    x = identity_block(x, 3, [128, 128, 512], stage=3, block="c", **kw)
    C3 = x = identity_block(x, 3, [128, 128, 512], stage=3, block="d", **kw)
    # Stage 4
    x = conv_block(x, 3, [256, 256, 1024], stage=4, block="a", **kw)
    for i in range(RESNET_STAGE4_BLOCKS[architecture]):
        x = identity_block(x, 3, [256, 256, 1024], stage=4, block=chr(98 + i), **kw)
    C4 = x
    # Stage 5
    if stage5:
        x = conv_block(x, 3, [512, 512, 2048], stage=5, block="a", **kw)
        x = identity_block(x, 3, [512, 512, 2048], stage=5, block="b", **kw)
        C5 = identity_block(x, 3, [512, 512, 2048], stage=5, block="c", **kw)
    else:
        C5 = None
    return [C1, C2, C3, C4, C5]


def resnet_style(config):
    """The ``style`` dict of ``resnet_graph`` from a Config (None when classic)."""
    style = {"stride_on_3x3": bool(getattr(config, "RESNET_STRIDE_ON_3X3", False)),
             "torch_padding": bool(getattr(config, "RESNET_TORCH_PADDING", False)),
             "bn_epsilon": float(getattr(config, "BN_EPSILON", 1e-3))}
    if style == {"stride_on_3x3": False, "torch_padding": False, "bn_epsilon": 1e-3}:
        return None
    return style


def small_backbone(input_image, stage5=True, train_bn=None):
    """A small residual backbone: [C1..C5] at strides 2, 4, 8, 16, 32 (32..256 channels).

    Use it as ``BACKBONE = staticmethod(small_backbone)`` with
    ``COMPUTE_BACKBONE_SHAPE = staticmethod(small_backbone_shapes)``. Its layers are
    named ``small{stage}_...``.
    """
    def block(x, filters, strides, name):
        # Average-pool then 1x1 conv for the shortcut (ResNet-D style). Not a strided
        # 1x1 conv: with TF 2.21's oneDNN, its filter gradient at batch size 1 on few
        # input channels writes out of bounds and crashes the process.
        shortcut = KL.AveragePooling2D(strides, padding="same", name=name + "_pool")(x)
        shortcut = KL.Conv2D(filters, 1, name=name + "_proj")(shortcut)
        y = KL.Conv2D(filters, 3, strides=strides, padding="same", name=name + "_conv1")(x)
        y = BatchNorm(train_bn=train_bn, name=name + "_bn1")(y)
        y = KL.Activation("relu")(y)
        y = KL.Conv2D(filters, 3, padding="same", name=name + "_conv2")(y)
        y = BatchNorm(train_bn=train_bn, name=name + "_bn2")(y)
        return KL.Activation("relu")(KL.Add()([y, shortcut]))

    C1 = block(input_image, 32, 2, "small1")
    C2 = block(C1, 64, 2, "small2")
    C3 = block(C2, 128, 2, "small3")
    C4 = block(C3, 192, 2, "small4")
    C5 = block(C4, 256, 2, "small5")
    return [C1, C2, C3, C4, C5]


def small_backbone_shapes(config, image_shape):
    """[[h, w], ...] of small_backbone's feature maps, one per BACKBONE_STRIDES entry."""
    return np.array([[int(np.ceil(image_shape[0] / s)), int(np.ceil(image_shape[1] / s))]
                     for s in config.BACKBONE_STRIDES])


def fpn_graph(C2, C3, C4, C5, pyramid_size=256):
    """The feature pyramid: top-down path with lateral 1x1 convs, then 3x3 convs.

    Returns: [P2, P3, P4, P5, P6], each [batch, h, w, pyramid_size]; P6 subsamples P5
    (1x1 max-pool, stride 2) for the 512-px anchors.
    """
    P5 = KL.Conv2D(pyramid_size, (1, 1), name="fpn_c5p5")(C5)
    P4 = KL.Add(name="fpn_p4add")([
        KL.UpSampling2D(size=(2, 2), name="fpn_p5upsampled")(P5),
        KL.Conv2D(pyramid_size, (1, 1), name="fpn_c4p4")(C4)])
    P3 = KL.Add(name="fpn_p3add")([
        KL.UpSampling2D(size=(2, 2), name="fpn_p4upsampled")(P4),
        KL.Conv2D(pyramid_size, (1, 1), name="fpn_c3p3")(C3)])
    P2 = KL.Add(name="fpn_p2add")([
        KL.UpSampling2D(size=(2, 2), name="fpn_p3upsampled")(P3),
        KL.Conv2D(pyramid_size, (1, 1), name="fpn_c2p2")(C2)])
    P2 = KL.Conv2D(pyramid_size, (3, 3), padding="same", name="fpn_p2")(P2)
    P3 = KL.Conv2D(pyramid_size, (3, 3), padding="same", name="fpn_p3")(P3)
    P4 = KL.Conv2D(pyramid_size, (3, 3), padding="same", name="fpn_p4")(P4)
    P5 = KL.Conv2D(pyramid_size, (3, 3), padding="same", name="fpn_p5")(P5)
    P6 = KL.MaxPooling2D(pool_size=(1, 1), strides=2, name="fpn_p6")(P5)
    return [P2, P3, P4, P5, P6]
