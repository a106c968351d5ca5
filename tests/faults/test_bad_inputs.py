"""Bad inputs, table-driven (issue 16): every case either raises the expected exception
type with a message that names the item (file, image id or index, attribute, layer) and
the fix, or, for inputs the library converts, gives the right pixels. None may pass
silently and none may hang: each runs under a timeout.

Cases: image files (corrupt, truncated, empty, missing, CMYK, 16-bit, palette, gray+alpha,
EXIF), arrays from a custom load_image (float, NaN, normalised, channels, empty), every
mask mistake, training inputs (no instances, Normalize, shape-changing augmentation,
empty dataset, unknown layers), config values, weight files (other backbone, other
NUM_CLASSES, bit rot, unrelated, truncated, not HDF5, missing) and detect() inputs.
"""
import io
import os
import signal

import numpy as np
import pytest
from PIL import Image

from mrcnn import model as modellib
from mrcnn import utils
from mrcnn.config import Config, ConfigError
from mrcnn.masks import MaskError
from mrcnn.pipeline import NoTrainingSamples, load_image_gt
from mrcnn.weights import WeightsError
from samples.shapes.shapes import ShapesDataset
# tests/ is on sys.path (pytest puts the folder of tests/conftest.py there)
from test_weights import classic_layout, resnet_layout, write_classic_h5
from tiny_configs import TinyShapesConfig, tiny_config

TIMEOUT = 60


class Timeout(Exception):
    pass


def run_with_timeout(fn, seconds=TIMEOUT):
    def on_alarm(signum, frame):
        raise Timeout("the case hung for more than {} s".format(seconds))
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- what the cases use

class FileDataset(utils.Dataset):
    """Images from files; masks given by a function of the image id."""

    def __init__(self, masks=None):
        super().__init__()
        self.masks = masks

    def load_mask(self, image_id):
        return self.masks(self, image_id)


def file_dataset(paths, masks=None):
    d = FileDataset(masks)
    d.add_class("f", 1, "thing")
    for i, p in enumerate(paths):
        d.add_image("f", image_id=i, path=str(p))
    d.prepare()
    return d


class ArrayDataset(utils.Dataset):
    """load_image returns the given array; one square instance in the middle."""

    def __init__(self, image, masks=None):
        super().__init__()
        self.image = image
        self.masks = masks
        self.add_class("a", 1, "thing")
        self.add_image("a", image_id="custom-7", path=None)
        self.prepare()

    def load_image(self, image_id):
        return self.image

    def image_reference(self, image_id):
        return "array image custom-7"

    def load_mask(self, image_id):
        if self.masks is not None:
            return self.masks(self.image)
        h, w = np.asarray(self.image).shape[:2]
        mask = np.zeros((h, w, 1), bool)
        mask[h // 4:3 * h // 4, w // 4:3 * w // 4] = True
        return mask, np.array([1], np.int32)


def photo(h=48, w=64, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(h, w, 3)).astype(np.uint8)


def jpeg_bytes(image, **kw):
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=95, **kw)
    return out.getvalue()


def write(tmp, name, data):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def load_gt(dataset, config=None):
    return load_image_gt(dataset, config or TinyShapesConfig(), 0)


class Tiny(TinyShapesConfig):
    NAME = "faults"
    IMAGES_PER_GPU = 1
    STEPS_PER_EPOCH = 1
    VALIDATION_STEPS = 1


class TinyInfer(TinyShapesConfig):
    NAME = "faults"
    IMAGES_PER_GPU = 1


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Models built once: a training and an inference tiny model, a ResNet-50 one."""
    tmp = str(tmp_path_factory.mktemp("models"))

    r50 = tiny_config("r50", backbone="resnet50", POST_NMS_ROIS_INFERENCE=20,
                      DETECTION_MAX_INSTANCES=5)
    return {"tmp": tmp,
            "train": modellib.MaskRCNN("training", Tiny(), tmp),
            "infer": modellib.MaskRCNN("inference", TinyInfer(), tmp),
            "r50": modellib.MaskRCNN("inference", r50, tmp)}


def shapes(n=2):
    d = ShapesDataset()
    d.load_shapes(n, 64, 64, seed=1)
    d.prepare()
    return d


# ---------------------------------------------------------------- the cases
# Each case: (id, function(tmp, shared) -> value, expected exception type or None,
# regular expressions the message must contain; for None, the function checks the
# value itself and returns True).

def case_corrupt_jpeg(tmp, m):
    path = write(tmp, "corrupt.jpg", b"\xff\xd8\xff\xe0" + os.urandom(300))
    return file_dataset([path]).load_image(0)


def case_truncated_jpeg(tmp, m):
    data = jpeg_bytes(photo(200, 200))
    path = write(tmp, "cut.jpg", data[:len(data) // 2])
    return file_dataset([path]).load_image(0)


def case_empty_file(tmp, m):
    return file_dataset([write(tmp, "empty.png", b"")]).load_image(0)


def case_missing_file(tmp, m):
    return file_dataset([os.path.join(tmp, "nowhere.jpg")]).load_image(0)


def case_text_as_png(tmp, m):
    return file_dataset([write(tmp, "notes.png", b"hello, world\n" * 20)]).load_image(0)


def case_cmyk_jpeg(tmp, m):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[...] = (200, 50, 10)
    path = os.path.join(tmp, "cmyk.jpg")
    Image.fromarray(rgb).convert("CMYK").save(path, quality=100)
    image = file_dataset([path]).load_image(0)
    return np.abs(image.astype(int) - (200, 50, 10)).max() <= 3


def case_16bit_gray_png(tmp, m):
    gray = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    path = os.path.join(tmp, "gray16.png")
    Image.fromarray(gray).save(path)
    image = file_dataset([path]).load_image(0)
    return image.shape == (64, 64, 3) and np.array_equal(image[:, :, 1], (gray >> 8))


def case_palette_png(tmp, m):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4] = (255, 0, 0)
    rgb[4:] = (0, 0, 255)
    path = os.path.join(tmp, "palette.png")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=2).save(path)
    image = file_dataset([path]).load_image(0)
    return image[0, 0].tolist() == [255, 0, 0] and image[7, 7].tolist() == [0, 0, 255]


def case_gray_alpha_png(tmp, m):
    la = np.zeros((4, 5, 2), np.uint8)
    la[..., 0], la[..., 1] = 90, 30
    path = os.path.join(tmp, "la.png")
    Image.fromarray(la, mode="LA").save(path)
    image = file_dataset([path]).load_image(0)
    return image.shape == (4, 5, 3) and (image == 90).all()


def case_exif_rotated_jpeg(tmp, m):
    exif = Image.Exif()
    exif[0x0112] = 6                                   # rotate 90 when shown
    path = write(tmp, "rot.jpg", jpeg_bytes(photo(30, 50), exif=exif.tobytes()))
    return file_dataset([path]).load_image(0).shape == (50, 30, 3)


def case_float01_image_trains_as_uint8(tmp, m):
    image = photo()
    a = load_gt(ArrayDataset(image.astype(np.float32) / 255.0))[0]
    b = load_gt(ArrayDataset(image))[0]
    return np.abs(a.astype(int) - b.astype(int)).max() <= 1


def case_nan_image(tmp, m):
    image = photo().astype(np.float32)
    image[3, 3, 1] = np.nan
    return load_gt(ArrayDataset(image))


def case_normalised_float_image(tmp, m):
    return load_gt(ArrayDataset((photo().astype(np.float32) - 128) / 64))


def case_five_channel_image(tmp, m):
    return load_gt(ArrayDataset(np.zeros((48, 64, 5), np.uint8)))


def case_zero_size_image(tmp, m):
    return load_gt(ArrayDataset(np.zeros((0, 0, 3), np.uint8)))


def mask_case(masks):
    def run(tmp, m):
        return ArrayDataset(photo(), masks=masks).load_mask_checked(0, image_shape=(48, 64, 3))
    return run


def case_mask_list(tmp, m):
    masks = [np.pad(np.ones((10, 10), bool), ((5, 33), (5, 49))),
             np.pad(np.ones((8, 8), bool), ((30, 10), (40, 16)))]
    mask, ids = ArrayDataset(photo(), masks=lambda im: (masks, [1, 1])).load_mask_checked(
        0, image_shape=(48, 64, 3))
    return mask.shape == (48, 64, 2) and mask.dtype == bool and ids.tolist() == [1, 1]


def full(n=1, h=48, w=64):
    mask = np.zeros((h, w, n), bool)
    mask[10:20, 10:20] = True
    return mask


CASES = [
    ("image: corrupt JPEG", case_corrupt_jpeg, ValueError, [r"corrupt\.jpg", "image_id=0"]),
    ("image: truncated JPEG", case_truncated_jpeg, ValueError, [r"cut\.jpg"]),
    ("image: empty file", case_empty_file, ValueError, [r"empty\.png"]),
    ("image: missing file", case_missing_file, FileNotFoundError, [r"nowhere\.jpg"]),
    ("image: text file named .png", case_text_as_png, ValueError, [r"notes\.png"]),
    ("image: CMYK JPEG keeps its colours", case_cmyk_jpeg, None, []),
    ("image: 16-bit gray PNG keeps the high byte", case_16bit_gray_png, None, []),
    ("image: palette PNG gives its colours", case_palette_png, None, []),
    ("image: gray+alpha PNG becomes gray RGB", case_gray_alpha_png, None, []),
    ("image: EXIF orientation applied", case_exif_rotated_jpeg, None, []),
    ("load_image: floats in [0, 1] train as uint8", case_float01_image_trains_as_uint8, None,
     []),
    ("load_image: NaN pixels", case_nan_image, ValueError, ["custom-7|image_id 0", "NaN"]),
    ("load_image: normalised floats", case_normalised_float_image, ValueError,
     ["image_id 0|custom-7"]),
    ("load_image: five channels", case_five_channel_image, ValueError, ["image_id 0|custom-7"]),
    ("load_image: zero-size array", case_zero_size_image, ValueError, ["image_id 0|custom-7"]),
    ("load_mask: a list of masks is stacked", case_mask_list, None, []),
    ("load_mask: mask of another size", mask_case(lambda im: (full(1, 30, 30), [1])),
     MaskError, ["image_id 0", "30x30"]),
    ("load_mask: more masks than class ids", mask_case(lambda im: (full(2), [1])),
     MaskError, ["image_id 0", "2"]),
    ("load_mask: class id beyond NUM_CLASSES", mask_case(lambda im: (full(1), [7])),
     MaskError, ["image_id 0", "7"]),
    ("load_mask: 4-D mask", mask_case(lambda im: (full(1)[..., None], [1])), MaskError,
     ["image_id 0"]),
    ("load_mask: None as mask", mask_case(lambda im: (None, [1])), MaskError, ["image_id 0"]),
    ("load_mask: None as class ids", mask_case(lambda im: (full(1), None)), MaskError,
     ["image_id 0"]),
    ("load_mask: an instance without pixels",
     mask_case(lambda im: (np.zeros((48, 64, 1), bool), [1])), MaskError, ["image_id 0"]),
    ("load_mask: NaN in a float mask",
     mask_case(lambda im: (np.full((48, 64, 1), np.nan, np.float32), [1])), MaskError,
     ["image_id 0"]),
    ("load_mask: class ids that are not integers", mask_case(lambda im: (full(1), [1.5])),
     MaskError, ["image_id 0"]),
    ("load_mask: the image's size turned 90 degrees",
     mask_case(lambda im: (full(1, 64, 48), [1])), MaskError, ["image_id 0", "exif"]),
]


def case_train_no_instances(tmp, m):
    d = FileDataset(lambda ds, i: (np.zeros((64, 64, 0), bool), np.zeros(0, np.int32)))
    d.add_class("f", 1, "thing")
    path = os.path.join(tmp, "plain.png")
    Image.fromarray(photo(64, 64)).save(path)
    for i in range(3):
        d.add_image("f", image_id=i, path=path)
    d.prepare()
    return m["train"].train(d, None, 0.001, 1, "heads", verbose=0)


def case_train_normalize(tmp, m):
    A = pytest.importorskip("albumentations")
    return m["train"].train(shapes(), None, 0.001, 1, "heads", verbose=0,
                            augmentation=A.Compose([A.HorizontalFlip(), A.Normalize()]))


def case_train_resizing_augmentation(tmp, m):
    def crop(image, mask):
        return image[:32], mask[:32]
    return m["train"].train(shapes(), None, 0.001, 1, "heads", verbose=0, augmentation=crop)


def case_train_empty_dataset(tmp, m):
    d = ShapesDataset()
    d.prepare()
    return m["train"].train(d, None, 0.001, 1, "heads", verbose=0)


def case_train_unknown_layers(tmp, m):
    return m["train"].train(shapes(), None, 0.001, 1, "no_such_layer", verbose=0)


def case_train_load_mask_error(tmp, m):
    class Broken(ShapesDataset):
        def load_mask(self, image_id):
            if image_id == 1:
                raise OSError("image file is truncated (6 bytes not processed)")
            return super().load_mask(image_id)
    d = Broken()
    d.load_shapes(2, 64, 64, seed=1)
    d.prepare()
    return m["train"].train(d, None, 0.001, 2, "heads", verbose=0, seed=0)


CASES += [
    ("train: no image has an instance", case_train_no_instances, NoTrainingSamples,
     ["all 3 images", "3 have no instance in load_mask"]),
    ("train: A.Normalize in the augmentation", case_train_normalize, ValueError,
     ["Normalize", "MEAN_PIXEL"]),
    ("train: augmentation that changes the size", case_train_resizing_augmentation, ValueError,
     ["shape|size"]),
    ("train: a dataset without images", case_train_empty_dataset, ValueError, ["no images"]),
    ("train: layers that match nothing", case_train_unknown_layers, ValueError,
     ["no_such_layer", "heads"]),
    ("train: load_mask raises inside the pipeline", case_train_load_mask_error, OSError,
     ["image_id 1", "truncated"]),
]


def config_case(**attrs):
    def run(tmp, m):
        return type("BadConfig", (Config,), dict({"NAME": "bad", "NUM_CLASSES": 2}, **attrs))()
    return run


def case_num_classes_one(tmp, m):
    return modellib.MaskRCNN("inference", type("C", (Config,), {"NAME": "c"})(), tmp)


def case_crop_for_inference(tmp, m):
    c = type("C", (Config,), {"NAME": "c", "NUM_CLASSES": 2, "IMAGE_RESIZE_MODE": "crop",
                              "IMAGE_MIN_DIM": 256})()
    return modellib.MaskRCNN("inference", c, tmp)


CASES += [
    ("config: IMAGE_MAX_DIM not a multiple of 64", config_case(IMAGE_MAX_DIM=1000),
     ConfigError, ["IMAGE_MAX_DIM = 1000", "960 or 1024"]),
    ("config: NUM_CLASSES = 1 at build", case_num_classes_one, ConfigError,
     ["NUM_CLASSES = 1", r"1 \+ the number"]),
    ("config: unknown backbone", config_case(BACKBONE="resnet18"), ConfigError,
     ["BACKBONE = 'resnet18'", "resnet50"]),
    ("config: crop mode for inference", case_crop_for_inference, ConfigError,
     ["IMAGE_RESIZE_MODE = 'crop'", "pad64"]),
    ("config: unknown resize mode", config_case(IMAGE_RESIZE_MODE="fit"), ConfigError,
     ["IMAGE_RESIZE_MODE = 'fit'", "square"]),
    ("config: MEAN_PIXEL of two values", config_case(MEAN_PIXEL=[1, 2]), ConfigError,
     ["MEAN_PIXEL", "3 values"]),
    ("config: confidence above 1", config_case(DETECTION_MIN_CONFIDENCE=1.5), ConfigError,
     ["DETECTION_MIN_CONFIDENCE = 1.5", r"\[0, 1\]"]),
    ("config: MASK_SHAPE against MASK_POOL_SIZE", config_case(MASK_SHAPE=[56, 56]),
     ConfigError, ["MASK_SHAPE", r"\[28, 28\]"]),
    ("config: unknown loss weight", config_case(LOSS_WEIGHTS={"mask_loss": 1.0}),
     ConfigError, ["LOSS_WEIGHTS", "mrcnn_mask_loss"]),
    ("config: zero images per GPU", config_case(IMAGES_PER_GPU=0), ConfigError,
     ["IMAGES_PER_GPU = 0", ">= 1"]),
]


def weights_case(layout_fn, **load):
    def run(tmp, m):
        path = write_classic_h5(os.path.join(tmp, layout_fn.__name__ + ".h5"), layout_fn())
        return m["r50"].load_weights(path, by_name=True, **load)
    return run


def coco_r101():
    return resnet_layout(101)


def coco_81_classes():
    return classic_layout(81)


def rotten():
    layout = classic_layout(4)
    kernel = layout["conv1"][0][1].copy()
    kernel.reshape(-1)[:100] = np.inf
    layout["conv1"][0] = ("conv1/kernel:0", kernel)
    return layout


def unrelated():
    return {"dense": [("dense/kernel:0", np.ones((3, 3), np.float32))]}


def case_truncated_weights(tmp, m):
    path = write_classic_h5(os.path.join(tmp, "full.h5"), classic_layout(4))
    data = open(path, "rb").read()
    cut = write(tmp, "cut.h5", data[:len(data) // 3])
    return m["r50"].load_weights(cut, by_name=True)


def case_not_hdf5(tmp, m):
    return m["r50"].load_weights(write(tmp, "weights.h5", b"<html>404</html>" * 8),
                                 by_name=True)


def case_missing_weights(tmp, m):
    return m["r50"].load_weights(os.path.join(tmp, "mask_rcnn_nope.h5"), by_name=True)


CASES += [
    ("weights: ResNet-101 file for a ResNet-50 model", weights_case(coco_r101), WeightsError,
     [r"coco_r101\.h5", "ResNet-101", 'BACKBONE = "resnet101"']),
    ("weights: another NUM_CLASSES", weights_case(coco_81_classes), WeightsError,
     ["mrcnn_class_logits|mrcnn_bbox_fc|mrcnn_mask", "exclude="]),
    ("weights: bit rot (infinite values)", weights_case(rotten), WeightsError,
     [r"rotten\.h5", "conv1", "100 NaN or infinite"]),
    ("weights: a file of another model", weights_case(unrelated), WeightsError,
     [r"unrelated\.h5", "shares no layer"]),
    ("weights: truncated file", case_truncated_weights, WeightsError, [r"cut\.h5", "truncated"]),
    ("weights: not HDF5 (an HTML error page)", case_not_hdf5, WeightsError,
     [r"weights\.h5", "not a Keras weight file"]),
    ("weights: missing file", case_missing_weights, FileNotFoundError,
     [r"mask_rcnn_nope\.h5", "weights/README.md"]),
]


def detect_case(images):
    def run(tmp, m):
        return m["infer"].detect(images() if callable(images) else images)
    return run


def case_detect_on_training_model(tmp, m):
    return m["train"].detect([photo()])


def nan_image():
    image = photo().astype(np.float32)
    image[0, 0, 0] = np.nan
    return [image]


CASES += [
    ("detect: a bare image instead of a list", detect_case(lambda: photo()), TypeError,
     [r"\[image\]"]),
    ("detect: a zero-size image", detect_case(lambda: [np.zeros((0, 0, 3), np.uint8)]),
     ValueError, ["image 0"]),
    ("detect: 10000x50 in square mode", detect_case(lambda: [np.zeros((10000, 50, 3),
                                                                      np.uint8)]),
     ValueError, ["image 0"]),
    ("detect: one bad image among three",
     detect_case(lambda: [photo(), np.zeros((5, 5, 7), np.uint8), photo()]), ValueError,
     ["image 1 of 3"]),
    ("detect: a file path instead of pixels", detect_case(["photo.jpg"]), ValueError,
     ["image 0", "read_image"]),
    ("detect: NaN pixels", detect_case(nan_image), ValueError, ["image 0", "NaN"]),
    ("detect: on a training-mode model", case_detect_on_training_model, ValueError,
     ["mode='inference'"]),
]


def test_the_table_has_at_least_forty_cases():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,run,error,patterns", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, run, error, patterns, shared, tmp_path):
    import re
    if error is None:
        result = run_with_timeout(lambda: run(str(tmp_path), shared))
        assert result is True or result is np.True_, result
        return
    with pytest.raises(error) as e:
        run_with_timeout(lambda: run(str(tmp_path), shared))
    assert not isinstance(e.value, Timeout)
    message = str(e.value)
    for pattern in patterns:
        assert re.search(pattern, message, re.I), (pattern, message)
