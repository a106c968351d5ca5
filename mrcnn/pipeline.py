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
from .molding import compose_image_meta, mold_image
from .imageops import as_model_image, resize_image
from .masks import minimize_mask, resize_mask
from .rpn_targets import build_rpn_targets, generate_random_rois

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
    The image is converted by ``imageops.as_model_image``, the rule ``detect`` uses
    (RGB uint8; floats in [0, 1] or [0, 255], 16-bit, gray and RGBA converted).
    Returns:
        image: [H, W, 3] uint8; image_meta: [IMAGE_META_SIZE];
        class_ids: int32 [N]; bbox: int32 [N, (y1, x1, y2, x2)];
        mask: bool [H, W, N] (or [mini_h, mini_w, N]).
    Instances whose masks end up empty (cropped or augmented away) are dropped.
    """
    image = dataset.load_image(image_id)
    try:
        # the rule detect() uses too: floats in [0, 1] or [0, 255], 16-bit, gray, RGBA
        image = as_model_image(image, config.IMAGE_CHANNEL_COUNT)
    except ValueError as e:
        raise ValueError("load_image for image_id {} ({}) returned an image of shape {} and "
                         "dtype {} the network cannot use: {}".format(
                             image_id, dataset.image_reference(image_id),
                             getattr(image, "shape", None), getattr(image, "dtype", None), e)
                         ) from None
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
                                    shapes, config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE,
                                    config.RPN_ANCHOR_ROUNDING)


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


def check_training_shape(config):
    """Raise ValueError (naming the fix) unless the config's resize mode gives training
    batches of one image size ("square" or "crop")."""
    if config.IMAGE_RESIZE_MODE not in ("square", "crop"):
        raise ValueError(
            "{}.IMAGE_RESIZE_MODE = {!r}: training batches need one image size; use "
            "'square' or 'crop' in the training config (pad64 is for inference)."
            .format(type(config).__name__, config.IMAGE_RESIZE_MODE))


class NoTrainingSamples(ValueError):
    """Every image of a dataset was skipped (none has an instance to train on); the
    message says how many and why."""


class PipelineStats(object):
    """Counts kept across a run: images loaded and images skipped (no instance left),
    and the ids of the skipped ones (for the error when every image is skipped)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.loaded = 0
        self.skipped = 0
        self.skipped_ids = set()

    def count(self, skipped, image_id=None):
        """Count one loaded image; returns the number skipped so far."""
        with self._lock:
            self.loaded += 1
            self.skipped += int(skipped)
            if skipped and image_id is not None:
                self.skipped_ids.add(int(image_id))
            return self.skipped


def skip_reasons(dataset, image_ids, limit=20):
    """Why images were skipped, as text: of (up to ``limit`` of) ``image_ids``, how many
    have no instance in load_mask, how many only crowd instances, and how many lost
    theirs to resizing, cropping or augmentation."""
    ids = sorted(image_ids)[:limit]
    none, crowd, lost = 0, 0, 0
    for image_id in ids:
        try:
            _, class_ids = dataset.load_mask_checked(image_id, allow_empty_instances=True)
        except Exception:
            lost += 1
            continue
        if class_ids.size == 0:
            none += 1
        elif not np.any(class_ids > 0):
            crowd += 1
        else:
            lost += 1
    head = "of the {} checked, ".format(len(ids)) if len(ids) < len(image_ids) else ""
    return ("{}{} have no instance in load_mask, {} only crowd instances (negative class "
            "ids), {} lost every instance to resizing, cropping or augmentation".format(
                head, none, crowd, lost))


def no_samples_error(dataset, image_ids):
    """NoTrainingSamples for a dataset whose images were all skipped."""
    return NoTrainingSamples(
        "all {} images of the dataset were skipped: none has an instance to train on ({}). "
        "Check load_mask (it must return at least one mask with a class id > 0 for some "
        "images) and the dataset folder; images without instances are skipped, as in the "
        "classic library.".format(len(image_ids), skip_reasons(dataset, image_ids)))


def error_with_image(e, dataset, image_id):
    """The exception ``e`` raised while loading ``image_id``, as the same type with the
    image id, its reference and its path in the message (unless it names the image
    already). Exception types that cannot be rebuilt from a message become ValueError."""
    text = str(e)
    if "image_id {}".format(image_id) in text or "image_id={}".format(image_id) in text:
        return e
    try:
        reference = dataset.image_reference(image_id)
    except Exception:
        reference = ""
    path = dataset.image_info[image_id].get("path") if image_id < len(dataset.image_info) \
        else None
    where = ", ".join(str(v) for v in (reference, path if path != reference else None) if v)
    message = "loading image_id {}{}: {}".format(image_id, " ({})".format(where) if where
                                                  else "", text or type(e).__name__)
    try:
        new = type(e)(message)
        if str(new) != message:
            raise TypeError
    except Exception:
        new = ValueError("{}: {}".format(type(e).__name__, message))
    new.__cause__ = e
    return new


class BatchLoader(object):
    """Builds training batches in Python threads, ahead of the network.

    A producer thread walks a seeded, per-pass shuffled image order and loads
    ``workers`` images at a time in a thread pool (NumPy, scikit-image and the image
    decoders release the GIL), keeping up to ``prefetch`` finished batches queued.
    Batch k is the same for the same seed whatever the timing: every image's random
    choices are seeded by its position in the stream. Images without instances are
    skipped and counted (``stats``).
    """

    def __init__(self, dataset, config, shuffle=True, augmentation=None,
                 no_augmentation_sources=None, seed=None, augment=False, stats=None,
                 workers=None, prefetch=4, repeat=True, shard=None):
        import os
        import queue
        check_training_shape(config)
        self.image_ids = np.array(dataset.image_ids, dtype=np.int64)
        if self.image_ids.size == 0:
            raise ValueError("make_dataset: the dataset has no images; call load_*() and "
                             "prepare() first")
        # (index, count): this worker's share of each pass (multi-worker training)
        self.shard = (0, 1) if shard is None else (int(shard[0]), int(shard[1]))
        if not 0 <= self.shard[0] < self.shard[1]:
            raise ValueError("make_dataset: shard={!r}; use (index, count) with "
                             "0 <= index < count".format(shard))
        if self.image_ids.size < self.shard[1]:
            raise ValueError("make_dataset: {} images cannot be shared among {} workers; "
                             "give every worker at least one image (more images, or fewer "
                             "workers)".format(self.image_ids.size, self.shard[1]))
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.no_aug = set(no_augmentation_sources or [])
        self.seed = int(seed) if seed is not None else int(np.random.randint(0, 2 ** 31))
        self.augment = augment
        self.stats = stats if stats is not None else PipelineStats()
        self.workers = workers or min(8, (os.cpu_count() or 2) + 2)
        self.repeat = repeat
        self.anchors = training_anchors(config)
        self.specs = sample_specs(config, self.anchors.shape[0])
        self._queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._thread = None
        self._error = None

    # -- the image stream
    def _stream(self):
        """(position, image id) forever: each pass a new seeded permutation.

        With shard=(index, count), this loader takes the pass's images index, index +
        count, ...: the workers of a multi-worker run share one permutation (the same
        seed) and each takes its own images, so a pass covers the data once. Positions
        (which seed each image's random choices) are those of the whole pass, so worker
        i's k-th image is the one a single process would load at position
        k * count + i."""
        index, count = self.shard
        start, epoch = 0, 0
        while not self._stop.is_set():
            order = self.image_ids
            if self.shuffle:
                order = np.random.RandomState((self.seed + 7919 * epoch) % (2 ** 32)) \
                    .permutation(self.image_ids)
            for offset in range(index, len(order), count):
                yield start + offset, int(order[offset])
            start += len(order)
            epoch += 1
            if not self.repeat:
                return

    def _load(self, position, image_id):
        source = self.dataset.image_info[image_id]["source"]
        aug = None if source in self.no_aug else self.augmentation
        try:
            sample = build_sample(self.dataset, self.config, image_id, self.anchors,
                                  augmentation=aug,
                                  augment=self.augment and source not in self.no_aug,
                                  seed=(self.seed * 1000003 + position) % (2 ** 31))
        except Exception as e:
            raise error_with_image(e, self.dataset, image_id) from e.__cause__
        skipped = self.stats.count(sample is None, image_id)
        if sample is None and (skipped <= 5 or skipped % 100 == 0):
            log.warning("skipping image %s (%s): no instance to train on (none in load_mask, "
                        "or none left after resizing/augmentation); %d skipped so far",
                        image_id, self.dataset.image_reference(image_id), skipped)
        return sample

    def _produce(self):
        from concurrent.futures import ThreadPoolExecutor
        batch_size = self.config.BATCH_SIZE
        pending = []
        try:
            with ThreadPoolExecutor(self.workers) as pool:
                try:
                    self._fill(pool, pending, batch_size)
                finally:
                    for future in pending:  # do not wait for loads nobody will use
                        future.cancel()
        except Exception as e:  # handed to the consumer, which raises it
            self._error = e
        self._put(None)

    def _fill(self, pool, pending, batch_size):
        stream = self._stream()
        batch = []
        # images skipped one after the other: a whole pass of them means no image can
        # give a sample, and waiting longer would hang forever
        run_of_skips = 0
        while not self._stop.is_set():
            while len(pending) < self.workers:
                try:
                    position, image_id = next(stream)
                except StopIteration:
                    break
                pending.append(pool.submit(self._load, position, image_id))
            if not pending:
                break
            sample = pending.pop(0).result()
            if sample is None:
                run_of_skips += 1
                if run_of_skips >= len(self.image_ids):
                    raise no_samples_error(self.dataset, self.image_ids.tolist())
                continue
            run_of_skips = 0
            batch.append(sample)
            if len(batch) == batch_size:
                self._put([np.stack(parts) for parts in zip(*batch)])
                batch = []

    @property
    def error(self):
        """The exception that stopped the loader (raised to the caller by train()), or
        None."""
        return self._error

    def _put(self, item):
        import queue
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._produce, name="mrcnn-batch-loader",
                                            daemon=True)
            self._thread.start()
        return self

    def next_batch(self):
        """The next batch as a list of arrays (see the module docstring)."""
        self.start()
        item = self._queue.get()
        if item is None:
            self._queue.put(None)  # stay finished for later callers
            if self._error is not None:
                raise self._error
            raise StopIteration
        return item

    def close(self):
        self._stop.set()

    def __del__(self):
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()


def make_dataset(dataset, config, shuffle=True, augmentation=None,
                 no_augmentation_sources=None, seed=None, repeat=True, augment=False,
                 num_parallel_calls=None, stats=None, prefetch=4, shard=None):
    """A tf.data pipeline of training batches (see the module docstring).

    shuffle: reshuffle the image order every pass; seed: fixes that order and every
        per-sample random choice, so a run is reproducible.
    augmentation: see mrcnn.augment; no_augmentation_sources: source names whose images
        are never augmented.
    num_parallel_calls: images loaded in parallel (threads; default: CPU count + 2, at
        most 8); prefetch: finished batches kept ready.
    stats: a PipelineStats to count loaded and skipped images.
    shard: (index, count) for multi-worker training: this worker's images of each pass
        (see ``BatchLoader._stream``); None: all of them.

    The images are loaded by a ``BatchLoader`` (Python threads) and handed to tf.data
    one finished batch per element, through a sequential ``numpy_function``. No Python
    runs on tf.data's own background threads: an iterator deleted while such a thread
    waits for the GIL deadlocks TensorFlow (Keras deletes its validation iterator
    after every epoch), so the parallelism and prefetching live in the loader instead.
    """
    import tensorflow as tf

    loader = BatchLoader(dataset, config, shuffle=shuffle, augmentation=augmentation,
                         no_augmentation_sources=no_augmentation_sources, seed=seed,
                         augment=augment, stats=stats, workers=num_parallel_calls,
                         prefetch=prefetch, repeat=repeat, shard=shard)
    batch_size = config.BATCH_SIZE
    specs = [tf.TensorSpec([batch_size] + list(s.shape), s.dtype) for s in loader.specs]
    tout = [s.dtype for s in specs]

    def fetch(_):
        try:
            return loader.next_batch()
        except StopIteration:
            return [np.zeros([0] + list(s.shape[1:]), s.dtype.as_numpy_dtype) for s in specs]

    @tf_autograph_off
    def tf_fetch(index):
        values = tf.numpy_function(fetch, [index], tout, stateful=True)
        out = []
        for v, s in zip(values, specs):
            v.set_shape([None] + list(s.shape[1:]))
            out.append(v)
        return tuple(out)

    @tf_autograph_off
    def non_empty(*batch):
        return tf.shape(batch[0])[0] > 0

    count = 2 ** 62 if repeat else int(np.ceil(len(loader.image_ids) / batch_size)) + 1
    ds = tf.data.Dataset.range(count).map(tf_fetch)      # sequential: no background thread
    ds = ds.filter(non_empty)
    ds = ds.map(_set_batch_shape(specs))
    # No tf.data autotuning: nothing here has a parameter to tune (one sequential map;
    # the loader does the parallel work), and its model thread made deleting an
    # iterator wait for up to 10 s. Keras deletes the validation iterator after every
    # epoch, so some epochs took 10 s longer (in one demo run, each of its first five).
    options = tf.data.Options()
    options.autotune.enabled = False
    ds = ds.with_options(options)
    ds.loader = loader
    return ds


def _set_batch_shape(specs):
    @tf_autograph_off
    def fix(*batch):
        out = []
        for v, s in zip(batch, specs):
            v.set_shape(s.shape)
            out.append(v)
        return tuple(out)
    return fix


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


def probe_batch(dataset, config, seed=0):
    """A fixed batch of training samples (the first images that have instances, no
    augmentation), e.g. to check a model's loss after an epoch when there is no
    validation data. Returns the list of batch arrays (see the module docstring)."""
    check_training_shape(config)
    anchors = training_anchors(config)
    samples = []
    for position, image_id in enumerate(dataset.image_ids):
        try:
            sample = build_sample(dataset, config, int(image_id), anchors, seed=seed + position)
        except Exception as e:
            raise error_with_image(e, dataset, int(image_id)) from e.__cause__
        if sample is not None:
            samples.append(sample)
        if len(samples) == config.BATCH_SIZE:
            return [np.stack(parts) for parts in zip(*samples)]
    if not samples:
        raise no_samples_error(dataset, [int(i) for i in dataset.image_ids])
    while len(samples) < config.BATCH_SIZE:  # fewer usable images than the batch
        samples.append(samples[len(samples) % len(samples)])
    return [np.stack(parts) for parts in zip(*samples)]


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
    check_training_shape(config)
    anchors = training_anchors(config)
    rng = np.random.RandomState(seed)
    no_aug = set(no_augmentation_sources or [])
    image_ids = np.copy(dataset.image_ids)
    index, count, run_of_skips = -1, 0, 0
    batch = []
    while True:
        index = (index + 1) % len(image_ids)
        if shuffle and index == 0:
            rng.shuffle(image_ids)
        image_id = int(image_ids[index])
        source = dataset.image_info[image_id]["source"]
        try:
            sample = build_sample(dataset, config, image_id, anchors,
                                  augmentation=None if source in no_aug else augmentation,
                                  augment=augment and source not in no_aug,
                                  seed=int(rng.randint(0, 2 ** 31)))
        except Exception as e:
            raise error_with_image(e, dataset, image_id) from e.__cause__
        count += 1
        if sample is None:
            run_of_skips += 1
            if run_of_skips >= len(image_ids):
                raise no_samples_error(dataset, [int(i) for i in image_ids])
            continue
        run_of_skips = 0
        if random_rois:
            sample = sample[:7] + [generate_random_rois(
                config.IMAGE_SHAPE, random_rois, sample[4][sample[4] != 0],
                sample[5][sample[4] != 0], rng=rng).astype(np.float32)]
        batch.append(sample)
        if len(batch) == batch_size:
            yield [np.stack(parts) for parts in zip(*batch)], []
            batch = []
