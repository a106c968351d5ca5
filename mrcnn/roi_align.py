"""ROIAlign over the feature pyramid (PyramidROIAlign).

Each ROI is pooled from one pyramid level, chosen by its size (the FPN paper's formula
with the 224-px canonical ImageNet size at level 4):

    level = clip(4 + round(log2(sqrt(h * w) / (224 / sqrt(H * W)))), 2, 5)

where h, w are the normalised ROI height and width and H * W is the image area. The
crop uses bilinear ``tf.image.crop_and_resize`` to ``pool_shape``.

Classic sampling (``pixel_aligned=False``) reuses the image-normalised box on the
feature map, so a pixel y lands at y * (Hf - 1) / (H - 1) instead of y / stride: the
error grows across the image to (stride - 1) / stride of a cell (3 px on P2). That is
harmless for COCO-sized objects; on 10-20 px objects it blurs what the mask head learns.
``pixel_aligned=True`` samples each pixel's centre at its exact place on the level,
the same points the mask targets are cut from.
"""
import keras
import tensorflow as tf
from keras import layers as KL

from .precision import Float32Layer
from .graph_ops import parse_image_meta_graph


def roi_pyramid_level(boxes, image_shape, mapper="round"):
    """Pyramid level (2..5) for each ROI.

    boxes: [..., (y1, x1, y2, x2)] normalised; image_shape: [(H, W, ...)] of the molded image.
    mapper: "round" (classic) or "floor" (torchvision's LevelMapper: floor(4 +
        log2(sqrt(area) / 224) + 1e-6)).
    Returns: int32 [...] levels.
    """
    y1, x1, y2, x2 = tf.unstack(boxes, 4, axis=-1)
    h = y2 - y1
    w = x2 - x1
    image_area = tf.cast(image_shape[0] * image_shape[1], tf.float32)
    # Empty (padding) boxes would give log2(0); they go to level 2, as before.
    area = tf.maximum(h * w, 1e-12)
    level = tf.math.log(tf.sqrt(area) / (224.0 / tf.sqrt(image_area))) / tf.math.log(2.0)
    if mapper == "floor":
        level = tf.cast(tf.floor(4.0 + level + 1e-6), tf.int32)
        return tf.minimum(5, tf.maximum(2, level))
    return tf.minimum(5, tf.maximum(2, 4 + tf.cast(tf.round(level), tf.int32)))


def sampled_roi_align(feature_map, boxes, box_indices, image_shape, stride, pool_shape,
                      sampling_ratio, box_normalization="classic"):
    """torchvision's roi_align(aligned=False) on one level, from crop_and_resize.

    feature_map: [batch, Hf, Wf, C]; boxes: [N, (y1, x1, y2, x2)] normalised;
    box_indices: [N] image of each box; stride: the level's stride in pixels.
    Each output cell averages sampling_ratio x sampling_ratio bilinear samples at
    y1 / stride + (i + 0.5) * bin / sampling_ratio (bin = max(h / stride, 1) / pool);
    a sample less than one cell outside the map reads the edge cell, one further out
    reads 0 (torchvision's rules). The map is padded by its edge cells so that
    crop_and_resize applies exactly those rules.
    Returns: [N, pool_h, pool_w, C].
    """
    h = tf.cast(image_shape[0], tf.float32)
    w = tf.cast(image_shape[1], tf.float32)
    if box_normalization == "scale":
        pixels = boxes * tf.stack([h, w, h, w])
    else:
        pixels = boxes * tf.stack([h - 1, w - 1, h - 1, w - 1]) + tf.constant([0., 0., 1., 1.])
    f = pixels / float(stride)
    ph, pw = pool_shape
    kh, kw = ph * sampling_ratio, pw * sampling_ratio
    roi_h = tf.maximum(f[:, 2] - f[:, 0], 1.0)
    roi_w = tf.maximum(f[:, 3] - f[:, 1], 1.0)
    padded = tf.pad(feature_map, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="SYMMETRIC")
    hp = tf.cast(tf.shape(padded)[1], tf.float32) - 1.0
    wp = tf.cast(tf.shape(padded)[2], tf.float32) - 1.0
    # first and last sample, in cells of the padded map
    y_first = f[:, 0] + 1.0 + 0.5 * roi_h / kh
    x_first = f[:, 1] + 1.0 + 0.5 * roi_w / kw
    y_last = y_first + (kh - 1) * roi_h / kh
    x_last = x_first + (kw - 1) * roi_w / kw
    crop_boxes = tf.stack([y_first / hp, x_first / wp, y_last / hp, x_last / wp], axis=1)
    crops = tf.image.crop_and_resize(padded, crop_boxes, box_indices, (kh, kw),
                                     method="bilinear", extrapolation_value=0.0)
    return tf.nn.avg_pool2d(crops, sampling_ratio, sampling_ratio, "VALID")


# normalised: 1e-5 of the map's size, under 0.01 of a cell on a 1024-cell map
EDGE_MARGIN = 1e-5


def pixel_aligned_boxes(boxes, image_shape, stride):
    """Image-normalised boxes -> boxes normalised to a feature map of the given stride.

    A normalised coordinate v is pixel index v * (H - 1) (utils.norm_boxes); that
    pixel's centre, v * (H - 1) + 0.5 in continuous image units, lies at index
    (v * (H - 1) + 0.5) / stride - 0.5 of the level, whose Hf = H / stride cells are
    indexed 0 .. Hf - 1 by crop_and_resize.
    """
    h = tf.cast(image_shape[0], tf.float32)
    w = tf.cast(image_shape[1], tf.float32)
    size = tf.stack([h, w, h, w]) - 1.0
    feature_size = tf.stack([h, w, h, w]) / stride - 1.0
    return ((boxes * size + 0.5) / stride - 0.5) / feature_size


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidROIAlign(Float32Layer):
    """Pool ROIs from the level of the feature pyramid that fits their size.

    Inputs:
        boxes: [batch, num_boxes, (y1, x1, y2, x2)] normalised.
        image_meta: [batch, IMAGE_META_SIZE].
        feature_maps: P2, P3, P4, P5, each [batch, height, width, channels].
    Output:
        [batch * num_boxes, pool_height, pool_width, channels]: the boxes of all images
        flattened in order (image 0's boxes first), ready for the heads, which reshape
        their results back with ``UnflattenRois``.
    """

    def __init__(self, pool_shape, pixel_aligned=False, sampling_ratio=0, level_mapper="round",
                 box_normalization="classic", **kwargs):
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)
        self.pixel_aligned = bool(pixel_aligned)
        self.sampling_ratio = int(sampling_ratio)
        self.level_mapper = str(level_mapper)
        self.box_normalization = str(box_normalization)

    def call(self, inputs):
        boxes = inputs[0]
        image_meta = inputs[1]
        feature_maps = inputs[2:]
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][0]
        batch = tf.shape(boxes)[0]
        num_boxes = tf.shape(boxes)[1]
        flat_boxes = tf.reshape(boxes, [-1, 4])
        box_indices = tf.repeat(tf.range(batch), num_boxes)
        levels = roi_pyramid_level(flat_boxes, image_shape, self.level_mapper)

        positions, pooled = [], []
        for i, level in enumerate(range(2, 6)):
            ix = tf.cast(tf.where(tf.equal(levels, level))[:, 0], tf.int32)
            # ROIs are inputs here: gradients flow to the features, not the boxes.
            level_boxes = tf.stop_gradient(tf.gather(flat_boxes, ix))
            level_indices = tf.stop_gradient(tf.gather(box_indices, ix))
            positions.append(ix)
            if self.sampling_ratio:
                pooled.append(sampled_roi_align(
                    feature_maps[i], level_boxes, level_indices, image_shape, 2 ** level,
                    self.pool_shape, self.sampling_ratio, self.box_normalization))
                continue
            if self.pixel_aligned:
                level_boxes = pixel_aligned_boxes(level_boxes, image_shape, 2 ** level)
            # Keep every sample on the map: crop_and_resize fills samples off the map
            # with 0. A box edge at exactly 1.0 can land a rounding error past the last
            # cell (ONNX Runtime's CropAndResize does), and pixel-aligned edge boxes
            # reach half a cell past it; they read the border cells instead.
            level_boxes = tf.clip_by_value(level_boxes, 0.0, 1.0 - EDGE_MARGIN)
            pooled.append(tf.image.crop_and_resize(feature_maps[i], level_boxes, level_indices,
                                                   self.pool_shape, method="bilinear"))
        out = tf.dynamic_stitch(positions, pooled)
        channels = feature_maps[0].shape[-1]
        return tf.reshape(out, [-1, self.pool_shape[0], self.pool_shape[1], channels])

    def compute_output_shape(self, input_shape):
        return (None,) + self.pool_shape + (input_shape[2][-1],)

    def get_config(self):
        config = super().get_config()
        config["pool_shape"] = list(self.pool_shape)
        config["pixel_aligned"] = self.pixel_aligned
        config.update(sampling_ratio=self.sampling_ratio, level_mapper=self.level_mapper,
                      box_normalization=self.box_normalization)
        return config


@keras.saving.register_keras_serializable(package="mrcnn")
class UnflattenRois(Float32Layer):
    """[batch * num_rois, ...] -> [batch, num_rois, ...], num_rois read from ``rois``.

    Inputs: [x, rois] with rois [batch, num_rois, 4].
    """

    def call(self, inputs):
        x, rois = inputs
        shape = tf.concat([tf.shape(rois)[:2], tf.shape(x)[1:]], axis=0)
        return tf.reshape(x, shape)

    def compute_output_shape(self, input_shape):
        x_shape, rois_shape = input_shape
        return (rois_shape[0], rois_shape[1]) + tuple(x_shape[1:])
