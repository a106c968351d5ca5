"""RPN and detection targets on hand-made boxes; the input pipeline and augmentation."""
import numpy as np
import pytest

import tensorflow as tf

from mrcnn.detection_targets import detection_targets_graph
from mrcnn.pipeline import data_generator, load_image_gt, make_dataset
from mrcnn.rpn_targets import build_rpn_targets
from samples.shapes.shapes import ShapesDataset
from tiny_configs import tiny_config


def tiny(**attrs):
    """64 px, two images per batch, 8 RPN anchors and 12 ROIs (a quarter positive)."""
    values = dict(IMAGES_PER_GPU=2, RPN_TRAIN_ANCHORS_PER_IMAGE=8, TRAIN_ROIS_PER_IMAGE=12,
                  ROI_POSITIVE_RATIO=0.25)
    values.update(attrs)
    return tiny_config("tiny", backbone="resnet101", **values)


def test_rpn_targets_for_a_hand_made_box():
    config = tiny(RPN_TRAIN_ANCHORS_PER_IMAGE=6)
    anchors = np.array([[0, 0, 10, 10],      # the GT box itself: IoU 1 -> positive
                        [0, 0, 10, 9],       # IoU 0.9 -> positive
                        [0, 2, 10, 12],      # IoU 8/12 = 0.67 -> neutral
                        [0, 5, 10, 15],      # IoU 1/3 -> neutral
                        [30, 30, 40, 40],    # IoU 0 -> negative
                        [50, 50, 60, 60],    # IoU 0 -> negative
                        [45, 0, 55, 10]],    # IoU 0, but touches the crowd box -> neutral
                       dtype=np.float64)
    gt_class_ids = np.array([1, -1])
    gt_boxes = np.array([[0, 0, 10, 10], [44, 0, 56, 12]])
    rpn_match, rpn_bbox = build_rpn_targets((64, 64, 3), anchors, gt_class_ids, gt_boxes,
                                            config, rng=np.random.RandomState(0))
    assert rpn_match.tolist() == [1, 1, 0, 0, -1, -1, 0]
    assert rpn_bbox.shape == (6, 4)
    np.testing.assert_allclose(rpn_bbox[0], [0, 0, 0, 0])
    # anchor 1 (h 10, w 9) to the box (h 10, w 10): dx = 0.5/9, dw = log(10/9), / std
    np.testing.assert_allclose(rpn_bbox[1], [0, (0.5 / 9) / 0.1, 0, np.log(10 / 9) / 0.2])
    assert not rpn_bbox[2:].any()


def test_rpn_targets_balance_positives_and_negatives():
    config = tiny(RPN_TRAIN_ANCHORS_PER_IMAGE=4)
    anchors = np.array([[0, 0, 10, 10 + d] for d in range(0, 3)] +
                       [[40 + d, 40, 50 + d, 50] for d in range(10)], dtype=np.float64)
    rpn_match, _ = build_rpn_targets((64, 64, 3), anchors, np.array([1]),
                                     np.array([[0, 0, 10, 10]]), config,
                                     rng=np.random.RandomState(1))
    assert (rpn_match == 1).sum() == 2          # at most half of 4
    assert (rpn_match == -1).sum() == 2         # the rest of the 4
    assert (rpn_match[3:] != 1).all()


def test_detection_targets_positive_ratio_and_mask_shapes():
    tf.random.set_seed(0)
    # GT: one box filling the top-left quarter, its mini-mask the left half
    gt_boxes = np.zeros((5, 4), np.float32)
    gt_boxes[0] = [0, 0, 0.5, 0.5]
    gt_class_ids = np.array([2, 0, 0, 0, 0], np.int32)
    gt_masks = np.zeros((28, 28, 5), bool)
    gt_masks[:, :14, 0] = True
    # 6 proposals on the GT box (positives) and 20 far away (negatives), zero padding
    pos = [[0, 0, 0.5, 0.5 - 0.01 * i] for i in range(6)]
    neg = [[0.6, 0.6, 0.7 + 0.01 * i, 0.7] for i in range(20)]
    proposals = np.array(pos + neg + [[0, 0, 0, 0]] * 4, np.float32)
    rois, class_ids, deltas, masks = [t.numpy() for t in detection_targets_graph(
        tf.constant(proposals), tf.constant(gt_class_ids), tf.constant(gt_boxes),
        tf.constant(gt_masks), 12, 0.25, [0.1, 0.1, 0.2, 0.2], (28, 28), True)]
    assert rois.shape == (12, 4) and class_ids.shape == (12,)
    assert deltas.shape == (12, 4) and masks.shape == (12, 28, 28)
    # 12 * 0.25 = 3 positives, then 3 / 0.25 - 3 = 9 negatives
    assert class_ids.tolist() == [2, 2, 2] + [0] * 9
    assert (rois[:3, 0] == 0).all() and (rois[3:, 0] == 0.6).all()
    # a positive that equals the GT box has zero deltas and the left-half mask
    exact = np.where(np.all(np.isclose(rois[:3], [0, 0, 0.5, 0.5]), axis=1))[0]
    for k in exact:
        np.testing.assert_allclose(deltas[k], 0, atol=1e-6)
        assert masks[k][:, :13].all() and not masks[k][:, 15:].any()
    assert not masks[3:].any() and not deltas[3:].any()


def test_detection_targets_include_gt_gives_positives_without_good_proposals():
    # Two GT boxes (one crowd) and proposals that all miss them, as an untrained RPN's do
    gt_boxes = np.zeros((5, 4), np.float32)
    gt_boxes[0] = [0, 0, 0.5, 0.5]
    gt_boxes[1] = [0.5, 0.5, 1.0, 0.75]
    gt_boxes[2] = [0.0, 0.6, 0.2, 0.9]
    gt_class_ids = np.array([3, 1, -2, 0, 0], np.int32)
    gt_masks = np.zeros((28, 28, 5), bool)
    gt_masks[:, :14, 0] = True          # left half
    gt_masks[14:, :, 1] = True          # bottom half
    gt_masks[..., 2] = True
    proposals = np.array([[0.55, 0.0, 0.65, 0.1 + 0.01 * i] for i in range(20)] +
                         [[0, 0, 0, 0]] * 4, np.float32)
    args = (tf.constant(proposals), tf.constant(gt_class_ids), tf.constant(gt_boxes),
            tf.constant(gt_masks), 12, 0.25, [0.1, 0.1, 0.2, 0.2], (28, 28), True)
    tf.random.set_seed(0)
    _, class_ids, _, _ = [t.numpy() for t in detection_targets_graph(*args)]
    assert not class_ids.any()          # classic: no positive, so no negative either
    tf.random.set_seed(0)
    rois, class_ids, deltas, masks = [t.numpy() for t in detection_targets_graph(
        *args, include_gt=True)]
    # the two non-crowd GT boxes are the positives; the crowd box is not offered
    assert sorted(class_ids[:2].tolist()) == [1, 3]
    # 2 positives at ratio 0.25: 2 / 0.25 - 2 = 6 negatives, then padding
    assert (class_ids[2:] == 0).all() and (rois[2:8, 0] == 0.55).all()
    assert not rois[8:].any()
    np.testing.assert_allclose(deltas[:2], 0, atol=1e-6)
    for k in range(2):
        if class_ids[k] == 3:
            np.testing.assert_allclose(rois[k], [0, 0, 0.5, 0.5])
            assert masks[k][:, :13].all() and not masks[k][:, 15:].any()
        else:
            np.testing.assert_allclose(rois[k], [0.5, 0.5, 1.0, 0.75])
            assert masks[k][15:].all() and not masks[k][:13].any()


def shapes_dataset(count=6, seed=1, size=64):
    d = ShapesDataset()
    d.load_shapes(count, size, size, seed=seed)
    d.prepare()
    return d


def test_load_image_gt_with_imgaug_fliplr_flips_image_and_masks():
    iaa = pytest.importorskip("imgaug.augmenters")
    config = tiny()
    d = shapes_dataset()
    image, meta, class_ids, bbox, mask = load_image_gt(d, config, 0)
    a_image, a_meta, a_ids, a_bbox, a_mask = load_image_gt(
        d, config, 0, augmentation=iaa.Fliplr(1.0))
    np.testing.assert_array_equal(a_image, image[:, ::-1])
    np.testing.assert_array_equal(a_mask, mask[:, ::-1])
    assert a_ids.tolist() == class_ids.tolist()
    np.testing.assert_array_equal(a_bbox[:, [1, 3]], 64 - bbox[:, [3, 1]])


def test_imgaug_pixel_augmenters_leave_masks_alone():
    iaa = pytest.importorskip("imgaug.augmenters")
    config = tiny()
    d = shapes_dataset()
    _, _, _, _, mask = load_image_gt(d, config, 1)
    image, _, _, _, a_mask = load_image_gt(
        d, config, 1, augmentation=iaa.Sequential([iaa.Multiply(0.5), iaa.GaussianBlur(2.0)]),
        seed=3)
    np.testing.assert_array_equal(a_mask, mask)


def test_imgaug_on_many_masks_flips_them_all_without_a_warning():
    """An image with 40 instances: imgaug took the [H, W, 40] masks for a batch of
    images and warned once per image (a log full of SuspiciousSingleImageShapeWarning)."""
    iaa = pytest.importorskip("imgaug.augmenters")
    import warnings
    from mrcnn.augment import augment_image_and_masks
    rng = np.random.RandomState(0)
    image = rng.randint(0, 255, (32, 48, 3)).astype(np.uint8)
    mask = rng.rand(32, 48, 40) > 0.5
    from imgaug.augmenters.base import SuspiciousSingleImageShapeWarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a_image, a_mask = augment_image_and_masks(image, mask, iaa.Fliplr(1.0), seed=0)
    assert [str(w.message)[:60] for w in caught
            if issubclass(w.category, SuspiciousSingleImageShapeWarning)] == []
    np.testing.assert_array_equal(a_image, image[:, ::-1])
    np.testing.assert_array_equal(a_mask, mask[:, ::-1])
    assert a_mask.dtype == bool


def test_imgaug_seed_repeats_the_random_transform():
    """The seed was set on the deterministic copy, where imgaug ignores it: each call
    drew a new rotation, so a seeded training run was not repeatable."""
    iaa = pytest.importorskip("imgaug.augmenters")
    from mrcnn.augment import augment_image_and_masks
    rng = np.random.RandomState(0)
    image = rng.randint(0, 255, (40, 50, 3)).astype(np.uint8)
    mask = np.zeros((40, 50, 2), bool)
    mask[5:20, 10:30, 0] = mask[22:35, 5:45, 1] = True
    aug = iaa.Sequential([iaa.Affine(rotate=(-45, 45)), iaa.Fliplr(0.5)])
    runs = [augment_image_and_masks(image, mask, aug, seed=s) for s in (3, 3, 3, 4)]
    for a_image, a_mask in runs[1:3]:
        np.testing.assert_array_equal(a_image, runs[0][0])
        np.testing.assert_array_equal(a_mask, runs[0][1])
    assert not np.array_equal(runs[3][0], runs[0][0])


def test_albumentations_pipeline_flips_image_and_masks():
    A = pytest.importorskip("albumentations")
    config = tiny()
    d = shapes_dataset()
    image, _, _, _, mask = load_image_gt(d, config, 2)
    aug = A.Compose([A.HorizontalFlip(p=1.0), A.RandomBrightnessContrast(p=0.0)])
    a_image, _, _, _, a_mask = load_image_gt(d, config, 2, augmentation=aug, seed=0)
    np.testing.assert_array_equal(a_image, image[:, ::-1])
    np.testing.assert_array_equal(a_mask, mask[:, ::-1])


@pytest.mark.parametrize("library", ["imgaug", "albumentations"])
def test_seeded_augmentation_is_repeatable_in_the_loader_threads(library):
    """The input pipeline augments several images at once in threads. A seeded
    albumentations pipeline was seeded in place and shared, so the threads' draws
    interleaved: 21 of 40 images differed from a one-thread run."""
    from concurrent.futures import ThreadPoolExecutor
    from mrcnn.augment import augment_image_and_masks
    if library == "imgaug":
        iaa = pytest.importorskip("imgaug.augmenters")
        aug = iaa.Sequential([iaa.Affine(rotate=(-45, 45)), iaa.Fliplr(0.5),
                              iaa.Multiply((0.5, 1.5))])
    else:
        A = pytest.importorskip("albumentations")
        aug = A.Compose([A.Affine(rotate=(-45, 45), p=1.0), A.HorizontalFlip(p=0.5),
                         A.RandomBrightnessContrast(p=1.0)])
    rng = np.random.RandomState(0)
    image = rng.randint(0, 255, (96, 96, 3)).astype(np.uint8)
    mask = np.zeros((96, 96, 2), bool)
    mask[10:50, 20:40, 0] = mask[30:90, 40:90, 1] = True

    def run(seed):
        return augment_image_and_masks(image, mask, aug, seed=seed)
    one = [run(s) for s in range(24)]
    with ThreadPoolExecutor(4) as pool:
        many = list(pool.map(run, range(24)))
    for s, ((a_image, a_mask), (b_image, b_mask)) in enumerate(zip(one, many)):
        np.testing.assert_array_equal(b_image, a_image, err_msg="seed {}".format(s))
        np.testing.assert_array_equal(b_mask, a_mask, err_msg="seed {}".format(s))
    # and the seeds do draw different transforms
    assert len({a_image.tobytes() for a_image, _ in one}) > 20


def test_seeded_albumentations_transforms_draw_independently():
    """set_random_seed gives every transform of a pipeline the same seed: two flips at
    p=0.5 then flipped together or not at all, never one of them."""
    A = pytest.importorskip("albumentations")
    from mrcnn.augment import augment_image_and_masks
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    mask = np.zeros((4, 6, 1), bool)
    mask[0, 0, 0] = True
    aug = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])
    seen = set()
    for seed in range(60):
        a_image, a_mask = augment_image_and_masks(image, mask, aug, seed=seed)
        seen.add((a_mask[0, -1, 0] or a_mask[-1, -1, 0], a_mask[-1, 0, 0] or a_mask[-1, -1, 0]))
        np.testing.assert_array_equal(augment_image_and_masks(image, mask, aug, seed=seed)[0],
                                      a_image)
    # (horizontal, vertical): all four combinations occur
    assert seen == {(False, False), (True, False), (False, True), (True, True)}


def batches(ds, n):
    it = iter(ds)
    out = [next(it) for _ in range(n)]
    del it
    return out


def test_make_dataset_seed_gives_a_reproducible_order_and_shapes():
    config = tiny()
    d = shapes_dataset()
    a = batches(make_dataset(d, config, seed=5), 4)
    b = batches(make_dataset(d, config, seed=5), 4)
    c = batches(make_dataset(d, config, seed=6), 4)
    ids = [x[1][:, 0].numpy().tolist() for x in a]
    assert ids == [x[1][:, 0].numpy().tolist() for x in b]
    assert ids != [x[1][:, 0].numpy().tolist() for x in c]
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u.numpy(), v.numpy())
    images, metas, rpn_match, rpn_bbox, gt_ids, gt_boxes, gt_masks = a[0]
    assert images.shape == (2, 64, 64, 3) and images.dtype == tf.float32
    assert rpn_match.shape[0] == 2 and rpn_match.shape[2] == 1
    assert rpn_bbox.shape == (2, 8, 4) and gt_ids.shape == (2, 5)
    assert gt_boxes.shape == (2, 5, 4) and gt_masks.shape == (2, 28, 28, 5)
    # every image of the 6 comes once in the first 3 batches (one pass, shuffled)
    first_pass = sorted(sum(ids[:3], []))
    assert first_pass == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_make_dataset_turns_tf_data_autotuning_off():
    # with autotuning on, deleting an iterator waited for tf.data's model thread, up to
    # 10 s, and Keras deletes the validation iterator after every epoch (some epochs took
    # 10 s longer; in one demo run, each of its first five); the iterators still work
    ds = make_dataset(shapes_dataset(), tiny(), seed=5)
    assert ds.options().autotune.enabled is False
    for _ in range(3):
        assert len(batches(ds, 2)) == 2


def test_images_without_instances_are_skipped_and_counted():
    from mrcnn.pipeline import PipelineStats

    class SomeEmpty(ShapesDataset):
        def load_mask(self, image_id):
            if image_id % 2:
                return np.zeros((64, 64, 0), bool), np.zeros((0,), np.int32)
            return super().load_mask(image_id)

    d = SomeEmpty()
    d.load_shapes(6, 64, 64, seed=1)
    d.prepare()
    stats = PipelineStats()
    got = batches(make_dataset(d, tiny(), seed=1, stats=stats), 3)
    seen = sorted(set(sum((x[1][:, 0].numpy().astype(int).tolist() for x in got), [])))
    assert seen == [0, 2, 4]
    assert stats.skipped >= 3


def test_no_augmentation_sources_are_left_alone():
    iaa = pytest.importorskip("imgaug.augmenters")
    config = tiny(IMAGES_PER_GPU=1)
    d = shapes_dataset(count=2)
    plain = batches(make_dataset(d, config, seed=2, shuffle=False), 2)
    flipped = batches(make_dataset(d, config, seed=2, shuffle=False, augmentation=iaa.Fliplr(1.0)),
                      2)
    kept = batches(make_dataset(d, config, seed=2, shuffle=False, augmentation=iaa.Fliplr(1.0),
                                no_augmentation_sources=["shapes"]), 2)
    np.testing.assert_array_equal(flipped[0][0].numpy(), plain[0][0].numpy()[:, :, ::-1])
    np.testing.assert_array_equal(kept[0][0].numpy(), plain[0][0].numpy())


def test_data_generator_yields_classic_batches():
    config = tiny()
    d = shapes_dataset()
    inputs, outputs = next(data_generator(d, config, batch_size=2, seed=0, random_rois=10))
    assert outputs == [] and len(inputs) == 8
    assert inputs[0].shape == (2, 64, 64, 3) and inputs[7].shape == (2, 10, 4)


def test_crop_mode_training_sample_and_pad64_rejected():
    config = tiny(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64)
    d = shapes_dataset(size=100)
    image, meta, *_ = load_image_gt(d, config, 0, rng=__import__("random").Random(0))
    assert image.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="'square' or 'crop'"):
        make_dataset(d, tiny(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=64))
