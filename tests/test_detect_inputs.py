"""What detect() accepts, checked before any work, and the one pixel rule training and
detect share (float, 16-bit and gray images give the same molded image on both paths).

The network is replaced by a stub that records what it is given: these tests are about
the inputs, not the weights."""
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.dataset import Dataset
from mrcnn.pipeline import build_sample, load_image_gt, training_anchors
from tiny_configs import tiny_config_class

# 64 px, two images per batch (detect runs them BATCH_SIZE at a time)
InputsConfig = tiny_config_class("inputs", backbone="resnet50", NUM_CLASSES=3,
                                 IMAGES_PER_GPU=2, DETECTION_MAX_INSTANCES=5)


class RecordingMaskRCNN(modellib.MaskRCNN):
    """MaskRCNN with the network replaced: records the molded batches, finds nothing."""

    def build(self, mode, config):
        self.batches = []
        return None

    def _predict(self, molded_images, image_metas, anchors):
        self.batches.append(np.array(molded_images))
        n, c = len(molded_images), self.config
        detections = np.zeros((n, c.DETECTION_MAX_INSTANCES, 6), np.float32)
        masks = np.zeros((n, c.DETECTION_MAX_INSTANCES) + tuple(c.MASK_SHAPE) +
                         (c.NUM_CLASSES,), np.float32)
        return detections, masks


@pytest.fixture
def model(tmp_path):
    return RecordingMaskRCNN("inference", InputsConfig(), str(tmp_path))


def photo(h=40, w=50, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(h, w, 3)).astype(np.uint8)


# --- what detect() accepts --------------------------------------------------------

def test_detect_refuses_one_bare_image_and_says_pass_a_list(model):
    image = photo()
    with pytest.raises(TypeError, match=r"got one array of shape \(40, 50, 3\)\. Pass "
                                        r"\[image\]"):
        model.detect(image)
    with pytest.raises(TypeError, match=r"got one array of shape \(40, 50\)"):
        model.detect(image[:, :, 0])
    with pytest.raises(TypeError, match=r"got the path 'street\.jpg'.*read_image"):
        model.detect("street.jpg")
    with pytest.raises(TypeError, match=r"got int\. Pass \[image\]"):
        model.detect(7)
    assert model.batches == []
    # the list of one image, and an array of N images, are what it takes
    assert len(model.detect([image])) == 1
    results = model.detect(np.stack([image, photo(seed=1), photo(seed=2)]))
    assert len(results) == 3 and results[2]["masks"].shape == (40, 50, 0)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 50, 3), np.uint8),
     r"detect: image 1 of 3 \(shape \(0, 50, 3\), dtype uint8\): the image has no pixels"),
    (np.zeros((10000, 50, 3), np.uint8),
     r"image 1 of 3 \(shape \(10000, 50, 3\), dtype uint8\): a 10000x50 image scaled by "
     r"0\.0064 .*64x0 pixels: one side vanishes\. Cut the image into pieces"),
    (np.full((20, 20, 3), np.nan, np.float32), r"image 1 of 3 .*NaN or infinite"),
    (np.zeros((20, 20, 7), np.uint8), r"image 1 of 3 \(shape \(20, 20, 7\), dtype uint8\): "
                                      r"not an image"),
    (np.linspace(-2, 2, 1200).reshape(20, 20, 3).astype(np.float32),
     r"image 1 .*values range over \[-2, 2\].*subtracts MEAN_PIXEL itself"),
    (np.full((20, 20, 3), 300, np.int32), r"image 1 .*int32 pixel values range over "
                                          r"\[300, 300\]"),
    ("frame.png", r"image 1 of 3 \(str\): got the path 'frame\.png', not pixels; read it "
                  r"with mrcnn\.utils\.read_image"),
])
def test_detect_names_the_bad_image_before_running_any(model, bad, message):
    with pytest.raises(ValueError, match=message):
        model.detect([photo(), bad, photo(seed=3)])
    assert model.batches == []  # nothing was run, not even the good first batch


def test_a_thin_image_that_keeps_a_pixel_is_detected_at_its_size(model):
    result = model.detect([np.zeros((2000, 50, 3), np.uint8)])[0]   # 64x2 once scaled
    assert result["masks"].shape == (2000, 50, 0) and result["rois"].shape == (0, 4)


def test_detect_with_resize_mode_none_refuses_sides_the_network_cannot_take(tmp_path):
    class NoneConfig(InputsConfig):
        IMAGE_RESIZE_MODE = "none"
    model = RecordingMaskRCNN("inference", NoneConfig(), str(tmp_path))
    with pytest.raises(ValueError, match=r"image 0 of 1 \(shape \(100, 96, 3\), dtype uint8\): "
                                         r".*multiples of 32; use 'pad64'"):
        model.detect([photo(100, 96)])
    assert len(model.detect([photo(96, 160)])) == 1


def test_detect_keeps_a_fourth_channel_when_the_config_has_four(tmp_path):
    class FourChannels(InputsConfig):
        IMAGE_CHANNEL_COUNT = 4
        MEAN_PIXEL = np.array([123.7, 116.8, 103.9, 50.0])
    model = RecordingMaskRCNN("inference", FourChannels(), str(tmp_path))
    image = np.dstack([photo(64, 64), np.full((64, 64), 80, np.uint8)])
    model.detect([image])
    molded = model.batches[0][0]
    assert molded.shape == (64, 64, 4)
    np.testing.assert_allclose(molded[:, :, 3], 30.0)   # 80 - 50, not dropped as alpha
    with pytest.raises(ValueError, match=r"image 0 .*IMAGE_CHANNEL_COUNT is 4"):
        model.detect([photo(64, 64)])


# --- one pixel rule for training and detect ----------------------------------------

class OneImage(Dataset):
    """One image (whatever load_image returns) with one square instance."""

    def __init__(self, image):
        super().__init__()
        self.image = image
        self.add_class("one", 1, "square")
        self.add_image("one", image_id=0, path=None)
        self.prepare()

    def load_image(self, image_id):
        return self.image

    def image_reference(self, image_id):
        return "one image"

    def load_mask(self, image_id):
        mask = np.zeros(self.image.shape[:2] + (1,), bool)
        mask[5:20, 5:25, 0] = True
        return mask, np.array([1], np.int32)


def training_molded(image, config):
    """The molded image of a training batch (pipeline.build_sample)."""
    anchors = training_anchors(config)
    return build_sample(OneImage(image), config, 0, anchors)[0]


def test_float_16_bit_and_gray_images_are_molded_alike_by_training_and_detect(model):
    config = model.config
    rgb = photo(40, 50)
    variants = {
        "uint8": rgb,
        "float in [0, 1]": rgb.astype(np.float32) / 255.0,
        "float in [0, 255]": rgb.astype(np.float64),
        "uint16": rgb.astype(np.uint16) * 257,
        "RGBA": np.dstack([rgb, np.full((40, 50), 9, np.uint8)]),
    }
    model.detect([rgb])
    reference = model.batches[-1][0]
    assert np.abs(reference).max() > 100  # a real photo, not a black image
    for name, image in variants.items():
        model.detect([image])
        np.testing.assert_array_equal(model.batches[-1][0], reference, err_msg="detect " + name)
        np.testing.assert_array_equal(training_molded(image, config), reference,
                                      err_msg="training " + name)
    gray = rgb[:, :, 0]
    model.detect([gray])
    np.testing.assert_array_equal(training_molded(gray.astype(np.float32) / 255, config),
                                  model.batches[-1][0])


def test_training_refuses_images_outside_both_float_ranges_naming_the_image():
    normalised = (photo().astype(np.float32) - 127.5) / 64.0   # [-2, 2]
    with pytest.raises(ValueError, match=r"load_image for image_id 0 \(one image\) returned an "
                                         r"image of shape \(40, 50, 3\) and dtype float32 .*"
                                         r"values range over \[-1\.992, 1\.992\]"):
        load_image_gt(OneImage(normalised), InputsConfig(), 0)
    with pytest.raises(ValueError, match=r"image_id 0 .*int64 pixel values range over "
                                         r"\[4095, 4095\].*return uint8"):
        load_image_gt(OneImage(np.full((40, 50, 3), 4095, np.int64)), InputsConfig(), 0)
