"""The training input pipeline: from a Dataset to batches of network inputs (tf.data).

``load_image_gt`` loads one image with its ground truth, resized and (optionally)
augmented; ``build_sample`` adds the RPN targets and pads everything to fixed sizes;
``make_dataset`` runs that in parallel with tf.data (shuffling with a seed, prefetching,
no multiprocessing); ``data_generator`` is the classic plain-Python generator for
anyone who iterates batches by hand.

A batch is the tuple
    (images [B, H, W, 3] float32 molded, image_meta [B, META],
     rpn_match [B, anchors, 1] int32, rpn_bbox [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4],
     gt_class_ids [B, MAX_GT_INSTANCES] int32, gt_boxes [B, MAX_GT_INSTANCES, 4] pixels,
     gt_masks [B, mask_h, mask_w, MAX_GT_INSTANCES] bool[, rois [B, N, 4] pixels])
where rois is present when USE_RPN_ROIS is False.
"""
import logging
import random
import threading

import numpy as np

from .anchors import compute_backbone_shapes, generate_pyramid_anchors
from .augment import augment_image_and_masks
from .boxes import extract_bboxes
from .data import compose_image_meta, mold_image
from .imageops import resize_image
from .masks import minimize_mask, resize_mask
from .targets import build_rpn_targets, generate_random_rois

log = logging.getLogger(__name__)


def tf_autograph_off(fn):
    """Mark a small tf.data function as plain TensorFlow (no autograph conversion)."""
    fn.autograph = False
    import tensorflow as tf
    return tf.autograph.experimental.do_not_convert(fn)


def load_image_gt(dataset, config, image_id, augment=False, augmentation=None,
                  use_mini_mask=False, rng=None, seed=None):
    """Load an image and its ground truth, resized (and augmented) for training.

    augment: (deprecated, as in the classic library) flip left-right half the time.
    augmentation: an imgaug / albumentations pipeline or a callable (see mrcnn.augment),
        applied after resizing.
    use_mini_mask: return masks as MINI_MASK_SHAPE crops of their boxes.
    rng: random.Random for the crop position; seed: for the augmentation.
    Returns:
        image: [H, W, 3] uint8; image_meta: [IMAGE_META_SIZE];
        class_ids: int32 [N]; bbox: int32 [N, (y1, x1, y2, x2)];
        mask: bool [H, W, N] (or [mini_h, mini_w, N]).
    Instances whose masks end up empty (cropped or augmented away) are dropped.
    """
    image = dataset.load_image(image_id)
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        raise ValueError("load_image for image_id {} ({}) returned NaN or infinite pixel "
                         "values; return RGB uint8 (or finite floats in 0..255)".format(
                             image_id, dataset.image_reference(image_id)))
    mask, class_ids = dataset.load_mask_checked(image_id, image_shape=image.shape)
    original_shape = image.shape
    image, window, scale, padding, crop = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE, rng=rng)
    mask = resize_mask(mask, scale, padding, crop)

    if augment:
        flip = (rng.random() if rng is not None else random.random()) < 0.5
        if flip:
            image = np.fliplr(image)
            mask = np.fliplr(mask)
    if augmentation is not None:
        shape = image.shape
        image, mask = augment_image_and_masks(image, mask, augmentation, seed=seed)
        if image.shape != shape:
            raise ValueError("augmentation changed the image shape from {} to {}; training "
                             "needs IMAGE_SHAPE-sized images, so keep the size (e.g. "
                             "CropAndPad(keep_size=True)) or resize back".format(shape, image.shape))

    # Instances can disappear when cropped or augmented: drop their masks
    keep = np.sum(mask, axis=(0, 1)) > 0
    mask = mask[:, :, keep]
    class_ids = class_ids[keep]
    bbox = extract_bboxes(mask)

    # Classes of the image's source dataset
    active_class_ids = np.zeros([dataset.num_classes], dtype=np.int32)
    source_class_ids = dataset.source_class_ids[dataset.image_info[image_id]["source"]]
    active_class_ids[source_class_ids] = 1

    if use_mini_mask:
        mask = minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
    image_meta = compose_image_meta(image_id, original_shape, image.shape, window, scale,
                                    active_class_ids)
    return np.ascontiguousarray(image), image_meta, class_ids, bbox, mask


def training_anchors(config):
    """Pixel anchors for the fixed training image shape."""
    shapes = compute_backbone_shapes(config, config.IMAGE_SHAPE)
    return generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                    shapes, config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)


def build_sample(dataset, config, image_id, anchors, augmentation=None, augment=False,
                 seed=0):
    """One training sample, padded to fixed sizes; None when the image has no instance
    left (the classic library skipped those too).

    seed: makes the crop, the augmentation and the RPN anchor sampling repeatable.
    """
    rng = np.random.RandomState(seed % (2 ** 32))
    py_rng = random.Random(seed)
    image, image_meta, gt_class_ids, gt_boxes, gt_masks = load_image_gt(
        dataset, config, image_id, augment=augment, augmentation=augmentation,
        use_mini_mask=config.USE_MINI_MASK, rng=py_rng, seed=seed)
    if not np.any(gt_class_ids > 0):
        return None
    rpn_match, rpn_bbox = build_rpn_targets(image.shape, anchors, gt_class_ids, gt_boxes,
                                            config, rng=rng)
    if gt_boxes.shape[0] > config.MAX_GT_INSTANCES:
        ids = rng.choice(np.arange(gt_boxes.shape[0]), config.MAX_GT_INSTANCES, replace=False)
        gt_class_ids, gt_boxes, gt_masks = gt_class_ids[ids], gt_boxes[ids], gt_masks[:, :, ids]
    n = gt_boxes.shape[0]
    m = config.MAX_GT_INSTANCES
    class_ids_p = np.zeros([m], dtype=np.int32)
    boxes_p = np.zeros([m, 4], dtype=np.int32)
    masks_p = np.zeros(gt_masks.shape[:2] + (m,), dtype=bool)
    class_ids_p[:n] = gt_class_ids
    boxes_p[:n] = gt_boxes
    masks_p[:, :, :n] = gt_masks
    sample = [mold_image(image, config).astype(np.float32), image_meta.astype(np.float32),
              rpn_match[:, None].astype(np.int32), rpn_bbox.astype(np.float32),
              class_ids_p, boxes_p, masks_p]
    if not config.USE_RPN_ROIS:
        sample.append(generate_random_rois(image.shape, config.POST_NMS_ROIS_TRAINING,
                                           gt_class_ids, gt_boxes, rng=rng).astype(np.float32))
    return sample


def _check_training_shape(config):
    if config.IMAGE_RESIZE_MODE not in ("square", "crop"):
        raise ValueError(
            "{}.IMAGE_RESIZE_MODE = {!r}: training batches need one image size; use "
            "'square' or 'crop' in the training config (pad64 is for inference)."
            .format(type(config).__name__, config.IMAGE_RESIZE_MODE))


class PipelineStats(object):
    """Counts kept across a run: images loaded and images skipped (no instance left)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.loaded = 0
        self.skipped = 0

    def count(self, skipped):
        with self._lock:
            self.loaded += 1
            self.skipped += int(skipped)


def make_dataset(dataset, config, shuffle=True, augmentation=None,
                 no_augmentation_sources=None, seed=None, repeat=True, augment=False,
                 num_parallel_calls=None, stats=None):
    """A tf.data pipeline of training batches (see the module docstring).

    shuffle: reshuffle the image order every pass; seed: fixes that order and every
        per-sample random choice, so a run is reproducible.
    augmentation: see mrcnn.augment; no_augmentation_sources: source names whose images
        are never augmented.
    Images are loaded in parallel threads (num_parallel_calls, default AUTOTUNE) in a
    deterministic order, batched by config.BATCH_SIZE and prefetched.
    stats: a PipelineStats to count loaded and skipped images.
    """
    import tensorflow as tf

    _check_training_shape(config)
    image_ids = np.array(dataset.image_ids, dtype=np.int64)
    if image_ids.size == 0:
        raise ValueError("make_dataset: the dataset has no images; call load_*() and "
                         "prepare() first")
    anchors = training_anchors(config)
    no_aug = set(no_augmentation_sources or [])
    seed = int(seed) if seed is not None else int(np.random.randint(0, 2 ** 31))
    stats = stats if stats is not None else PipelineStats()

    def load(index, image_id):
        image_id = int(image_id)
        source = dataset.image_info[image_id]["source"]
        aug = None if source in no_aug else augmentation
        sample = build_sample(dataset, config, image_id, anchors, augmentation=aug,
                              augment=augment and source not in no_aug,
                              seed=(seed * 1000003 + int(index)) % (2 ** 31))
        stats.count(sample is None)
        if sample is None:
            if stats.skipped <= 5 or stats.skipped % 100 == 0:
                log.info("skipping image %s (%s): no instance after resizing/augmentation "
                         "(%d skipped so far)", image_id, dataset.image_reference(image_id),
                         stats.skipped)
            return [np.array(False)] + _empty_sample(config, anchors)
        return [np.array(True)] + sample

    specs = sample_specs(config, anchors.shape[0])
    tout = [tf.bool] + [s.dtype for s in specs]

    def tf_load(index, image_id):
        values = tf.numpy_function(load, [index, image_id], tout, stateful=False)
        ok = values[0]
        ok.set_shape([])
        out = []
        for v, s in zip(values[1:], specs):
            v.set_shape(s.shape)
            out.append(v)
        return ok, tuple(out)

    ds = tf.data.Dataset.from_tensor_slices(image_ids)
    if shuffle:
        ds = ds.shuffle(len(image_ids), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.enumerate()
    ds = ds.map(tf_load, num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE,
                deterministic=True)
    ds = ds.filter(_is_ok).map(_drop_flag)
    ds = ds.batch(config.BATCH_SIZE, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


@tf_autograph_off
def _is_ok(ok, sample):
    return ok


@tf_autograph_off
def _drop_flag(ok, sample):
    return sample


def sample_specs(config, num_anchors):
    """tf.TensorSpec of each element of a sample (see the module docstring)."""
    import tensorflow as tf
    h, w = config.IMAGE_SHAPE[:2]
    mh, mw = config.MINI_MASK_SHAPE if config.USE_MINI_MASK else (h, w)
    m = config.MAX_GT_INSTANCES
    specs = [tf.TensorSpec([h, w, config.IMAGE_CHANNEL_COUNT], tf.float32),
             tf.TensorSpec([config.IMAGE_META_SIZE], tf.float32),
             tf.TensorSpec([num_anchors, 1], tf.int32),
             tf.TensorSpec([config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4], tf.float32),
             tf.TensorSpec([m], tf.int32),
             tf.TensorSpec([m, 4], tf.int32),
             tf.TensorSpec([mh, mw, m], tf.bool)]
    if not config.USE_RPN_ROIS:
        specs.append(tf.TensorSpec([config.POST_NMS_ROIS_TRAINING, 4], tf.float32))
    return specs


def _empty_sample(config, anchors):
    return [np.zeros(s.shape, s.dtype.as_numpy_dtype)
            for s in sample_specs(config, anchors.shape[0])]


def data_generator(dataset, config, shuffle=True, augment=False, augmentation=None,
                   random_rois=0, batch_size=1, detection_targets=False,
                   no_augmentation_sources=None, seed=None):
    """The classic generator, as a plain single-process Python generator.

    Yields (inputs, []) forever, inputs being the batch tuple of the module docstring
    (random_rois > 0 adds that many random ROIs per image). ``make_dataset`` is the
    parallel tf.data version that ``train()`` uses. detection_targets is not
    supported (the targets are computed inside the network).
    """
    if detection_targets:
        raise ValueError("data_generator(detection_targets=True) is not supported: detection "
                         "targets are computed in the network (DetectionTargetLayer)")
    _check_training_shape(config)
    anchors = training_anchors(config)
    rng = np.random.RandomState(seed)
    no_aug = set(no_augmentation_sources or [])
    image_ids = np.copy(dataset.image_ids)
    index, count = -1, 0
    batch = []
    while True:
        index = (index + 1) % len(image_ids)
        if shuffle and index == 0:
            rng.shuffle(image_ids)
        image_id = int(image_ids[index])
        source = dataset.image_info[image_id]["source"]
        sample = build_sample(dataset, config, image_id, anchors,
                              augmentation=None if source in no_aug else augmentation,
                              augment=augment and source not in no_aug,
                              seed=int(rng.randint(0, 2 ** 31)))
        count += 1
        if sample is None:
            continue
        if random_rois:
            sample = sample[:7] + [generate_random_rois(
                config.IMAGE_SHAPE, random_rois, sample[4][sample[4] != 0],
                sample[5][sample[4] != 0], rng=rng).astype(np.float32)]
        batch.append(sample)
        if len(batch) == batch_size:
            yield [np.stack(parts) for parts in zip(*batch)], []
            batch = []
