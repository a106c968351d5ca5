"""Region Proposal Network: the shared RPN head (nested model ``rpn_model``) and the
ProposalLayer that turns its outputs into ROIs."""
import keras
import numpy as np
import tensorflow as tf
from keras import layers as KL

from .precision import Float32Layer
from .graph_ops import apply_box_deltas_graph, clip_boxes_graph, for_each_image, \
    norm_boxes_graph, parse_image_meta_graph


@keras.saving.register_keras_serializable(package="mrcnn")
class AnchorsReshape(KL.Layer):
    """[batch, h, w, anchors * k] -> [batch, h * w * anchors, k]."""

    def __init__(self, k, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def call(self, x):
        return tf.reshape(x, [tf.shape(x)[0], -1, self.k])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, self.k)

    def get_config(self):
        config = super().get_config()
        config["k"] = self.k
        return config


def rpn_graph(feature_map, anchors_per_location, anchor_stride, channels=512):
    """The RPN head on one feature map.

    feature_map: [batch, height, width, depth].
    anchors_per_location: anchors per cell (len(RPN_ANCHOR_RATIOS)).
    anchor_stride: 1 for an anchor set at every cell.
    channels: width of the shared 3x3 conv (Config.RPN_HEAD_CHANNELS; classic 512).
    Returns:
        rpn_class_logits: [batch, H * W * anchors, 2] (background, foreground) logits.
        rpn_probs: [batch, H * W * anchors, 2] softmax of the logits.
        rpn_bbox: [batch, H * W * anchors, (dy, dx, log(dh), log(dw))] refinements.
    """
    shared = KL.Conv2D(channels, (3, 3), padding="same", activation="relu",
                       strides=anchor_stride, name="rpn_conv_shared")(feature_map)
    x = KL.Conv2D(2 * anchors_per_location, (1, 1), padding="valid",
                  activation="linear", name="rpn_class_raw")(shared)
    rpn_class_logits = AnchorsReshape(2, name="rpn_class_logits_reshape")(x)
    rpn_probs = KL.Activation("softmax", name="rpn_class_xxx")(rpn_class_logits)
    x = KL.Conv2D(anchors_per_location * 4, (1, 1), padding="valid",
                  activation="linear", name="rpn_bbox_pred")(shared)
    rpn_bbox = AnchorsReshape(4, name="rpn_bbox_reshape")(x)
    return [rpn_class_logits, rpn_probs, rpn_bbox]


def build_rpn_model(anchor_stride, anchors_per_location, depth, channels=512):
    """The RPN head as a Keras model named ``rpn_model``, shared across P2..P6.

    Its weight layers are rpn_conv_shared (3, 3, depth, channels), rpn_class_raw
    (1, 1, channels, 2A) and rpn_bbox_pred (1, 1, channels, 4A); channels is 512 in the
    classic network (and its weight files).
    """
    input_feature_map = KL.Input(shape=[None, None, depth], name="input_rpn_feature_map")
    outputs = rpn_graph(input_feature_map, anchors_per_location, anchor_stride, channels)
    return keras.Model([input_feature_map], outputs, name="rpn_model")


@keras.saving.register_keras_serializable(package="mrcnn")
class ProposalLayer(Float32Layer):
    """Select the top anchors by foreground score, refine them, and run NMS.

    Inputs:
        rpn_probs: [batch, num_anchors, (bg prob, fg prob)]
        rpn_bbox: [batch, num_anchors, (dy, dx, log(dh), log(dw))]
        anchors: [batch, num_anchors, (y1, x1, y2, x2)] normalised
    Returns:
        proposals: [batch, proposal_count, (y1, x1, y2, x2)] normalised, highest score
        first, zero-padded when fewer survive.

    Classic (per_level=False): one NMS across all pyramid levels at nms_threshold,
    after keeping the pre_nms_limit best-scoring anchors; boxes are clipped to [0, 1].

    per_level=True (torchvision's RPN): two more inputs, image_meta and a list of the
    per-level rpn_probs [batch, anchors of level, 2] (their lengths split the anchors
    into levels). The pre_nms_limit best anchors of each level are refined, clipped
    to the window (the image inside the padding), boxes with a side under min_size
    pixels are dropped, NMS runs within each level, and the proposal_count best of
    all levels remain, highest score first.
    """

    def __init__(self, proposal_count, nms_threshold, pre_nms_limit=6000,
                 rpn_bbox_std_dev=(0.1, 0.1, 0.2, 0.2), per_level=False, min_size=0.0,
                 box_normalization="classic", **kwargs):
        super().__init__(**kwargs)
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in np.asarray(rpn_bbox_std_dev).reshape(-1)]
        self.per_level = bool(per_level)
        self.min_size = float(min_size)
        self.box_normalization = str(box_normalization)

    def call(self, inputs):
        if self.per_level:
            return self._call_per_level(inputs)
        probs, deltas, anchors = inputs
        scores = probs[:, :, 1]
        deltas = deltas * tf.reshape(tf.constant(self.rpn_bbox_std_dev, tf.float32), [1, 1, 4])
        pre_nms_limit = tf.minimum(self.pre_nms_limit, tf.shape(anchors)[1])
        top_scores, ix = tf.nn.top_k(scores, pre_nms_limit, sorted=True)
        deltas = tf.gather(deltas, ix, batch_dims=1)
        anchors = tf.gather(anchors, ix, batch_dims=1)

        def one_image(args):
            s, d, a = args
            boxes = apply_box_deltas_graph(a, d)
            boxes = clip_boxes_graph(boxes, tf.constant([0., 0., 1., 1.]))
            keep = tf.image.non_max_suppression(boxes, s, self.proposal_count,
                                                self.nms_threshold, name="rpn_non_max_suppression")
            proposals = tf.gather(boxes, keep)
            padding = tf.maximum(self.proposal_count - tf.shape(proposals)[0], 0)
            return tf.pad(proposals, [(0, padding), (0, 0)])

        proposals = for_each_image(one_image, (top_scores, deltas, anchors),
                                   fn_output_signature=tf.TensorSpec(
                                       [self.proposal_count, 4], tf.float32))
        return proposals

    def _call_per_level(self, inputs):
        probs, deltas, anchors, image_meta = inputs[:4]
        level_probs = inputs[4:]
        scores = probs[:, :, 1]
        deltas = deltas * tf.reshape(tf.constant(self.rpn_bbox_std_dev, tf.float32), [1, 1, 4])
        # the pre_nms_limit best of each level (indices into all anchors), level ids
        ix, levels, start = [], [], 0
        for level, p in enumerate(level_probs):
            count = tf.shape(p)[1]
            k = tf.minimum(self.pre_nms_limit, count)
            _, top = tf.nn.top_k(scores[:, start:start + count], k, sorted=True)
            ix.append(top + start)
            levels.append(tf.fill([k], level))
            start = start + count
        ix = tf.concat(ix, axis=1)
        levels = tf.concat(levels, axis=0)
        top_scores = tf.gather(scores, ix, batch_dims=1)
        deltas = tf.gather(deltas, ix, batch_dims=1)
        anchors = tf.gather(anchors, ix, batch_dims=1)
        meta = parse_image_meta_graph(image_meta)
        image_shape = tf.cast(meta["image_shape"][0, :2], tf.float32)
        windows = norm_boxes_graph(tf.cast(meta["window"], tf.float32), image_shape,
                                   self.box_normalization)
        size = image_shape if self.box_normalization == "scale" else image_shape - 1.0
        num_levels = len(level_probs)

        def one_image(args):
            s, d, a, window = args
            boxes = apply_box_deltas_graph(a, d)
            boxes = clip_boxes_graph(boxes, window)
            h = (boxes[:, 2] - boxes[:, 0]) * size[0]
            w = (boxes[:, 3] - boxes[:, 1]) * size[1]
            valid = tf.logical_and(h >= self.min_size, w >= self.min_size)
            kept_ix, kept_scores = [], []
            for level in range(num_levels):
                candidates = tf.where(tf.logical_and(valid, tf.equal(levels, level)))[:, 0]
                candidates = tf.cast(candidates, tf.int32)
                keep = tf.image.non_max_suppression(
                    tf.gather(boxes, candidates), tf.gather(s, candidates),
                    self.proposal_count, self.nms_threshold)
                kept_ix.append(tf.gather(candidates, keep))
                kept_scores.append(tf.gather(s, kept_ix[-1]))
            kept_ix = tf.concat(kept_ix, axis=0)
            order = tf.argsort(tf.concat(kept_scores, axis=0), direction="DESCENDING",
                               stable=True)[:self.proposal_count]
            proposals = tf.gather(boxes, tf.gather(kept_ix, order))
            padding = tf.maximum(self.proposal_count - tf.shape(proposals)[0], 0)
            return tf.pad(proposals, [(0, padding), (0, 0)])

        return for_each_image(one_image, (top_scores, deltas, anchors, windows),
                              fn_output_signature=tf.TensorSpec([self.proposal_count, 4],
                                                                tf.float32))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.proposal_count, 4)

    def get_config(self):
        config = super().get_config()
        config.update(proposal_count=self.proposal_count, nms_threshold=self.nms_threshold,
                      pre_nms_limit=self.pre_nms_limit, rpn_bbox_std_dev=self.rpn_bbox_std_dev,
                      per_level=self.per_level, min_size=self.min_size,
                      box_normalization=self.box_normalization)
        return config
