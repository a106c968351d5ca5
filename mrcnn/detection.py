"""DetectionLayer: final boxes, classes and scores from the classifier head's output."""
import keras
import numpy as np
import tensorflow as tf
from keras import layers as KL

from .precision import Float32Layer
from .graph_ops import apply_box_deltas_graph, clip_boxes_graph, for_each_image, \
    norm_boxes_graph, parse_image_meta_graph


def refine_detections_graph(rois, probs, deltas, window, bbox_std_dev, min_confidence,
                            nms_threshold, max_instances, per_class=False, min_size=0.0,
                            pixel_size=None):
    """Refine and filter the ROIs of one image.

    rois: [N, (y1, x1, y2, x2)] normalised; probs: [N, NUM_CLASSES];
    deltas: [N, NUM_CLASSES, (dy, dx, log(dh), log(dw))];
    window: (y1, x1, y2, x2) normalised, the image area inside the padding.

    Classic rule (per_class=False): each ROI takes its arg-max class (background ones
    are dropped) and that class's box deltas. With per_class=True each ROI gives one
    candidate for every foreground class, with that class's score and deltas
    (torchvision's rule). Boxes are clipped to the window; scores below
    min_confidence are dropped; NMS runs per class at nms_threshold; the
    max_instances best remain. min_size > 0 drops boxes with a side under min_size
    pixels (torchvision's remove_small_boxes) before NMS; pixel_size: [(H, W)] that
    turns a normalised side into pixels.
    Returns: [max_instances, (y1, x1, y2, x2, class_id, score)], zero-padded.
    """
    if per_class:
        num_rois = tf.shape(probs)[0]
        num_classes = tf.shape(probs)[1]
        # Candidates in ROI-major order: (roi 0, class 1), (roi 0, class 2), ...
        class_ids = tf.reshape(tf.tile(tf.range(1, num_classes)[None], [num_rois, 1]), [-1])
        class_scores = tf.reshape(probs[:, 1:], [-1])
        deltas_specific = tf.reshape(deltas[:, 1:], [-1, 4])
        rois = tf.repeat(rois, num_classes - 1, axis=0)
    else:
        class_ids = tf.argmax(probs, axis=1, output_type=tf.int32)
        indices = tf.stack([tf.range(tf.shape(probs)[0]), class_ids], axis=1)
        class_scores = tf.gather_nd(probs, indices)
        deltas_specific = tf.gather_nd(deltas, indices)
    refined_rois = apply_box_deltas_graph(
        rois, deltas_specific * tf.constant(bbox_std_dev, tf.float32))
    refined_rois = clip_boxes_graph(refined_rois, window)

    keep_mask = class_ids > 0
    if min_confidence:
        keep_mask = tf.logical_and(keep_mask, class_scores >= min_confidence)
    if min_size:
        h = (refined_rois[:, 2] - refined_rois[:, 0]) * pixel_size[0]
        w = (refined_rois[:, 3] - refined_rois[:, 1]) * pixel_size[1]
        keep_mask = tf.logical_and(keep_mask, tf.logical_and(h >= min_size, w >= min_size))
    keep = tf.cast(tf.where(keep_mask)[:, 0], tf.int32)

    # Per-class NMS in one call: boxes of different classes are moved apart (boxes are
    # clipped to [0, 1], so an offset of 2 per class id separates them), so a box can
    # only suppress boxes of its own class. NMS returns boxes by descending score, so
    # the first max_instances are the best of all classes.
    pre_boxes = tf.gather(refined_rois, keep)
    pre_scores = tf.gather(class_scores, keep)
    pre_class = tf.cast(tf.gather(class_ids, keep), tf.float32)
    offset_boxes = pre_boxes + 2.0 * pre_class[:, None]
    nms_keep = tf.image.non_max_suppression(offset_boxes, pre_scores, max_instances,
                                            iou_threshold=nms_threshold)
    keep = tf.gather(keep, nms_keep)

    detections = tf.concat([
        tf.gather(refined_rois, keep),
        tf.cast(tf.gather(class_ids, keep), tf.float32)[:, None],
        tf.gather(class_scores, keep)[:, None]], axis=1)
    gap = max_instances - tf.shape(detections)[0]
    return tf.pad(detections, [(0, gap), (0, 0)], "CONSTANT")


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionLayer(Float32Layer):
    """Turn classifier probabilities and box deltas into final detections.

    Inputs: rois [batch, N, 4], mrcnn_class [batch, N, NUM_CLASSES],
    mrcnn_bbox [batch, N, NUM_CLASSES, 4], image_meta [batch, IMAGE_META_SIZE].
    Returns: [batch, max_instances, (y1, x1, y2, x2, class_id, score)] with normalised
    coordinates; rows with class_id 0 are padding.
    """

    def __init__(self, bbox_std_dev=(0.1, 0.1, 0.2, 0.2), min_confidence=0.7,
                 nms_threshold=0.3, max_instances=100, per_class=False, min_size=0.0,
                 box_normalization="classic", **kwargs):
        super().__init__(**kwargs)
        self.min_size = float(min_size)
        self.box_normalization = str(box_normalization)
        self.per_class = bool(per_class)
        self.bbox_std_dev = [float(v) for v in np.asarray(bbox_std_dev).reshape(-1)]
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.max_instances = int(max_instances)

    def call(self, inputs):
        rois, mrcnn_class, mrcnn_bbox, image_meta = inputs
        m = parse_image_meta_graph(image_meta)
        image_shape = m["image_shape"][0]
        windows = norm_boxes_graph(m["window"], image_shape[:2], self.box_normalization)
        pixel_size = tf.cast(image_shape[:2], tf.float32)
        if self.box_normalization != "scale":
            pixel_size = pixel_size - 1.0

        def one_image(args):
            return refine_detections_graph(*args, self.bbox_std_dev, self.min_confidence,
                                           self.nms_threshold, self.max_instances,
                                           self.per_class, self.min_size, pixel_size)

        return for_each_image(one_image, (rois, mrcnn_class, mrcnn_bbox, windows),
                              fn_output_signature=tf.TensorSpec([self.max_instances, 6],
                                                                tf.float32))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.max_instances, 6)

    def get_config(self):
        config = super().get_config()
        config.update(bbox_std_dev=self.bbox_std_dev, min_confidence=self.min_confidence,
                      nms_threshold=self.nms_threshold, max_instances=self.max_instances,
                      per_class=self.per_class, min_size=self.min_size,
                      box_normalization=self.box_normalization)
        return config
