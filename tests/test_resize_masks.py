"""resize_image in all modes, mask resizing, mini-masks and load_mask validation."""
import random

import numpy as np
import pytest

from mrcnn import utils


def ramp(h, w):
    """A uint8 image whose pixels say where they are."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([y % 256, x % 256, (y + x) % 256], axis=-1).astype(np.uint8)


def test_resize_image_none_returns_input_untouched():
    image = ramp(50, 70)
    out, window, scale, padding, crop = utils.resize_image(image, 64, 128, mode="none")
    assert out is image
    assert window == (0, 0, 50, 70) and scale == 1 and crop is None
    assert padding == [(0, 0), (0, 0), (0, 0)]


def test_resize_image_square_scales_up_to_min_dim_and_pads_to_max_dim():
    image = ramp(50, 100)
    out, window, scale, padding, crop = utils.resize_image(image, 64, 128, mode="square")
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    assert scale == 64 / 50
    assert padding == [(32, 32), (0, 0), (0, 0)]
    assert window == (32, 0, 96, 128)
    assert not out[:32].any() and not out[96:].any()
    assert crop is None


def test_resize_image_square_limits_long_side_to_max_dim():
    image = ramp(100, 40)
    out, window, scale, padding, _ = utils.resize_image(image, 64, 128, mode="square")
    assert scale == 128 / 100  # 64/40 would make the long side 160 > 128
    assert out.shape == (128, 128, 3)
    assert padding == [(0, 0), (38, 39), (0, 0)]   # 51 px wide image, 77 px of padding
    assert window == (0, 38, 128, 89)


def test_resize_image_pad64_pads_each_side_to_a_multiple_of_64():
    image = ramp(100, 130)
    out, window, scale, padding, crop = utils.resize_image(image, None, None, mode="pad64")
    assert out.shape == (128, 192, 3)
    assert scale == 1 and crop is None
    assert padding == [(14, 14), (31, 31), (0, 0)]
    assert window == (14, 31, 114, 161)
    np.testing.assert_array_equal(out[14:114, 31:161], image)


def test_resize_image_crop_takes_a_random_min_dim_square():
    image = ramp(100, 130)
    out, window, scale, padding, crop = utils.resize_image(
        image, 64, None, mode="crop", rng=random.Random(7))
    expect = random.Random(7)
    y, x = expect.randint(0, 36), expect.randint(0, 66)
    assert crop == (y, x, 64, 64)
    assert window == (0, 0, 64, 64) and scale == 1
    np.testing.assert_array_equal(out, image[y:y + 64, x:x + 64])


def test_resize_image_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unknown mode 'squre'"):
        utils.resize_image(ramp(10, 10), mode="squre")


def test_resize_mask_follows_resize_image():
    image = ramp(50, 100)
    mask = np.zeros((50, 100, 1), dtype=bool)
    mask[10:20, 30:60, 0] = True
    _, window, scale, padding, crop = utils.resize_image(image, 64, 128, mode="square")
    m = utils.resize_mask(mask, scale, padding, crop)
    assert m.shape == (128, 128, 1) and m.dtype == bool
    # 10..20 rows scale by 1.28 to 12.8..25.6, then +32 padding
    boxes = utils.extract_bboxes(m)
    assert boxes.tolist() == [[45, 38, 58, 77]]


def test_mini_mask_round_trip_is_exact_for_a_full_box_and_close_for_a_disk():
    mask = np.zeros((32, 40, 2), dtype=bool)
    mask[4:20, 6:30, 0] = True
    yy, xx = np.mgrid[0:32, 0:40]
    mask[:, :, 1] = (yy - 16) ** 2 + (xx - 20) ** 2 <= 10 ** 2
    boxes = utils.extract_bboxes(mask)
    mini = utils.minimize_mask(boxes, mask, (8, 8))
    assert mini.shape == (8, 8, 2) and mini.dtype == bool
    full = utils.expand_mask(boxes, mini, mask.shape)
    assert full.shape == mask.shape
    np.testing.assert_array_equal(full[:, :, 0], mask[:, :, 0])
    iou = utils.compute_overlaps_masks(full[:, :, 1:], mask[:, :, 1:])[0, 0]
    assert iou > 0.85


def test_minimize_mask_names_zero_area_box():
    with pytest.raises(ValueError, match="area zero"):
        utils.minimize_mask(np.array([[3, 3, 3, 8]]), np.zeros((10, 10, 1), bool), (4, 4))


def test_unmold_mask_places_thresholded_mask_in_box():
    m = np.zeros((4, 4), dtype=np.float32)
    m[:, 2:] = 0.9
    full = utils.unmold_mask(m, (2, 2, 10, 10), (12, 12, 3))
    assert full.shape == (12, 12) and full.dtype == bool
    assert full[2:10, 7:10].all() and not full[2:10, 2:5].any()
    assert not full[:2].any() and not full[10:].any()


def test_unmold_mask_threshold():
    m = np.array([[0.2, 0.45, 0.6]] * 3, np.float32)
    # a 3x3 box: no resizing, so the threshold alone decides
    assert utils.unmold_mask(m, (0, 0, 3, 3), (3, 3))[0].tolist() == [False, False, True]
    assert utils.unmold_mask(m, (0, 0, 3, 3), (3, 3), threshold=0.4)[0].tolist() == \
        [False, True, True]


def test_compute_overlaps_masks_float32_and_empty_inputs():
    a = np.zeros((4, 4, 1), bool)
    a[:2, :2] = True
    b = np.zeros((4, 4, 2), bool)
    b[:2, :4, 0] = True
    ov = utils.compute_overlaps_masks(a, b)
    assert ov.dtype == np.float32
    np.testing.assert_array_equal(ov, [[0.5, 0.0]])
    assert utils.compute_overlaps_masks(a, np.zeros((4, 4, 0))).shape == (1, 0)


# --- load_mask validation -------------------------------------------------------------

def test_check_mask_coerces_lists_and_dtypes():
    m1 = np.zeros((6, 5), np.uint8)
    m1[1:3, 1:3] = 255
    m2 = np.zeros((6, 5), np.uint8)
    m2[4, 4] = 1
    mask, ids = utils.check_mask([m1, m2], [1, 2.0], image_shape=(6, 5, 3))
    assert mask.shape == (6, 5, 2) and mask.dtype == bool
    assert ids.dtype == np.int32 and ids.tolist() == [1, 2]
    assert mask[:, :, 0].sum() == 4 and mask[:, :, 1].sum() == 1


def test_check_mask_single_2d_mask_with_one_class():
    m = np.ones((3, 3), np.float64)
    mask, ids = utils.check_mask(m, 3, image_shape=(3, 3))
    assert mask.shape == (3, 3, 1) and ids.tolist() == [3]


def test_check_mask_size_mismatch_names_image_and_reference():
    with pytest.raises(utils.MaskError) as e:
        utils.check_mask(np.ones((5, 5, 1)), [1], image_shape=(6, 5, 3),
                         image_id=7, reference="cat.jpg")
    text = str(e.value)
    assert "image_id 7" in text and "cat.jpg" in text and "5x5" in text and "6x5" in text


def test_check_mask_count_mismatch_and_channels_first_hint():
    with pytest.raises(utils.MaskError, match="2 masks but 3 class ids"):
        utils.check_mask(np.ones((4, 4, 2)), [1, 1, 1], image_shape=(4, 4))
    with pytest.raises(utils.MaskError, match=r"np.transpose\(mask, \(1, 2, 0\)\)"):
        utils.check_mask(np.ones((2, 4, 5)), [1, 1], image_shape=(4, 5))


def test_check_mask_rejects_empty_instances_background_and_non_integers():
    m = np.zeros((4, 4, 2), bool)
    m[0, 0, 0] = True
    with pytest.raises(utils.MaskError, match=r"instance mask\(s\) \[1\] are empty"):
        utils.check_mask(m, [1, 2], image_shape=(4, 4))
    mask, ids = utils.check_mask(m, [1, 2], image_shape=(4, 4), allow_empty_instances=True)
    assert mask.shape == (4, 4, 2)
    with pytest.raises(utils.MaskError, match="class id 0"):
        utils.check_mask(m[:, :, :1], [0], image_shape=(4, 4))
    with pytest.raises(utils.MaskError, match="not integers"):
        utils.check_mask(m[:, :, :1], [1.5], image_shape=(4, 4))


def test_check_mask_no_instances_gives_empty_arrays_of_image_size():
    mask, ids = utils.check_mask(np.empty([0, 0, 0]), np.empty([0], np.int32), image_shape=(9, 7, 3))
    assert mask.shape == (9, 7, 0) and mask.dtype == bool and ids.shape == (0,)
    mask, ids = utils.check_mask([], [], image_shape=(9, 7, 3))
    assert mask.shape == (9, 7, 0)


def test_unmold_masks_matches_unmold_mask_on_every_mask_of_a_100_detection_image():
    # the batched paste (issue 13): the classic result, mask by mask, on a 1024x1024
    # image with boxes of every size, at the edges, and of 1 pixel
    rng = np.random.RandomState(7)
    n, size = 100, 1024
    probs = rng.rand(n, 28, 28).astype(np.float32)
    probs[:10] = np.round(probs[:10] * 4) / 4          # values right at the threshold
    probs[10:20] = 0.3 + 0.7 * probs[10:20]            # no low values: resize's clip matters
    probs[20] = 1.0                                    # a constant mask
    y1, x1 = rng.randint(0, size - 1, n), rng.randint(0, size - 1, n)
    h, w = rng.randint(1, 400, n), rng.randint(1, 400, n)
    boxes = np.stack([y1, x1, np.minimum(y1 + h, size), np.minimum(x1 + w, size)], axis=1)
    boxes[0] = [0, 0, 1, 1]
    boxes[1] = [size - 300, size - 2, size, size]
    for threshold in (0.5, 0.3):
        fast = utils.unmold_masks(probs, boxes, (size, size, 3), threshold)
        assert fast.shape == (size, size, n) and fast.dtype == bool
        for i in range(n):
            classic = utils.unmold_mask(probs[i], boxes[i], (size, size, 3), threshold)
            assert (fast[:, :, i] != classic).sum() <= 1, i
        diff = sum(int((fast[:, :, i] != utils.unmold_mask(probs[i], boxes[i], (size, size),
                                                              threshold)).sum())
                   for i in range(n))
        assert diff == 0


def test_unmold_masks_handles_no_detections_and_empty_boxes():
    assert utils.unmold_masks(np.zeros((0, 28, 28)), np.zeros((0, 4)), (5, 6)).shape == (5, 6, 0)
    out = utils.unmold_masks(np.ones((1, 28, 28)), [[3, 3, 3, 5]], (5, 6))
    assert not out.any()
