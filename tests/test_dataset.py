"""Dataset: prepare() maps, load_image conversions, load_mask validation."""
import numpy as np
import pytest
from PIL import Image

from mrcnn import utils


class TwoSourceDataset(utils.Dataset):
    def load(self):
        self.add_class("cars", 1, "car")
        self.add_class("cars", 2, "truck, lorry")
        self.add_class("cars", 1, "car")  # duplicate: ignored
        self.add_class("people", 7, "person")
        self.add_image("cars", image_id="c-10", path="/x/c10.jpg")
        self.add_image("people", image_id=42, path="/x/p42.jpg", note="hi")
        self.add_image("cars", image_id="c-11", path="/x/c11.jpg")


def test_prepare_builds_ids_names_and_source_maps_for_two_sources():
    d = TwoSourceDataset()
    d.load()
    d.prepare()
    assert d.num_classes == 4
    assert d.class_ids.tolist() == [0, 1, 2, 3]
    assert d.class_names == ["BG", "car", "truck", "person"]
    assert d.num_images == 3 and d.image_ids.tolist() == [0, 1, 2]
    assert d.class_from_source_map == {".0": 0, "cars.1": 1, "cars.2": 2, "people.7": 3}
    assert d.image_from_source_map == {"cars.c-10": 0, "people.42": 1, "cars.c-11": 2}
    assert d.sources == ["", "cars", "people"]
    assert d.source_class_ids == {"": [0], "cars": [0, 1, 2], "people": [0, 3]}
    assert d.map_source_class_id("people.7") == 3
    assert d.get_source_class_id(2, "cars") == 2
    assert d.source_image_link(1) == "/x/p42.jpg"
    assert d.image_info[1]["note"] == "hi"
    with pytest.raises(ValueError, match="belongs to source 'cars'"):
        d.get_source_class_id(1, "people")
    with pytest.raises(KeyError, match="no class 'people.8'"):
        d.map_source_class_id("people.8")


def test_add_class_rejects_dotted_source():
    with pytest.raises(ValueError, match="must not contain a dot"):
        utils.Dataset().add_class("my.data", 1, "x")


@pytest.mark.parametrize("kind", ["gray", "rgba", "gray16", "rgb16", "gray_alpha"])
def test_load_image_returns_rgb_uint8(tmp_path, kind):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 1] = np.arange(8) * 30
    path = str(tmp_path / "img.png")
    if kind == "gray":
        Image.fromarray(rgb[..., 1]).save(path)
        expect = np.stack([rgb[..., 1]] * 3, axis=-1)
    elif kind == "rgba":
        Image.fromarray(np.dstack([rgb, np.full((6, 8), 7, np.uint8)])).save(path)
        expect = rgb
    elif kind == "gray_alpha":
        Image.fromarray(np.dstack([rgb[..., 1], rgb[..., 0]]), mode="LA").save(path)
        expect = np.stack([rgb[..., 1]] * 3, axis=-1)
    elif kind == "gray16":
        g16 = rgb[..., 1].astype(np.uint16) * 257
        Image.fromarray(g16).save(path)
        expect = np.stack([rgb[..., 1]] * 3, axis=-1)
    else:
        import imageio.v3 as iio
        path = str(tmp_path / "img.tif")
        iio.imwrite(path, rgb.astype(np.uint16) * 257)
        expect = rgb
    d = utils.Dataset()
    d.add_image("t", 1, path)
    d.prepare()
    image = d.load_image(0)
    assert image.dtype == np.uint8 and image.shape == (6, 8, 3)
    np.testing.assert_array_equal(image, expect)


def test_load_image_16bit_rgb_png_becomes_8bit(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rgb16 = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 1000).astype(np.uint16)
    path = str(tmp_path / "rgb16.png")
    cv2.imwrite(path, rgb16[..., ::-1])  # OpenCV writes BGR
    d = utils.Dataset()
    d.add_image("t", 1, path)
    d.prepare()
    image = d.load_image(0)
    assert image.dtype == np.uint8 and image.shape == (4, 5, 3)
    assert np.abs(image.astype(int) - rgb16 // 257).max() <= 1


def test_load_image_corrupt_or_missing_file_names_image_and_path(tmp_path):
    good = np.full((40, 40, 3), 128, np.uint8)
    full = tmp_path / "full.jpg"
    Image.fromarray(good).save(full)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[:200])
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a png")
    d = utils.Dataset()
    d.add_image("t", 1, str(truncated))
    d.add_image("t", 2, str(junk))
    d.add_image("t", 3, str(tmp_path / "missing.jpg"))
    d.prepare()
    with pytest.raises(ValueError, match=r"image_id=0.*truncated\.jpg.*corrupt"):
        d.load_image(0)
    with pytest.raises(ValueError, match=r"image_id=1.*junk\.png"):
        d.load_image(1)
    with pytest.raises(FileNotFoundError, match=r"image_id=2.*missing\.jpg"):
        d.load_image(2)


class ListMaskDataset(utils.Dataset):
    """A load_mask that returns Python lists, as many user datasets do."""

    def load(self, bad_shape=False):
        self.add_class("s", 1, "a")
        self.add_class("s", 2, "b")
        self.add_image("s", 0, None, bad_shape=bad_shape)

    def load_image(self, image_id):
        return np.zeros((8, 10, 3), np.uint8)

    def load_mask(self, image_id):
        h = 9 if self.image_info[image_id]["bad_shape"] else 8
        m1 = np.zeros((h, 10), np.uint8)
        m1[1:4, 1:4] = 1
        m2 = np.zeros((h, 10), np.uint8)
        m2[5:7, 5:9] = 1
        return [m1, m2], [1, 2]

    def image_reference(self, image_id):
        return "list-image-{}".format(image_id)


def test_load_mask_returning_lists_is_accepted():
    d = ListMaskDataset()
    d.load()
    d.prepare()
    mask, ids = d.load_mask_checked(0, image_shape=d.load_image(0).shape)
    assert mask.shape == (8, 10, 2) and mask.dtype == bool
    assert ids.dtype == np.int32 and ids.tolist() == [1, 2]
    # the classic crash: class_ids[_idx] with a list
    keep = np.sum(mask, axis=(0, 1)) > 0
    assert ids[keep].tolist() == [1, 2]


def test_mis_shaped_mask_gives_named_error():
    d = ListMaskDataset()
    d.load(bad_shape=True)
    d.prepare()
    with pytest.raises(utils.MaskError) as e:
        d.load_mask_checked(0, image_shape=(8, 10, 3))
    assert "image_id 0 (list-image-0)" in str(e.value)
    assert "9x10 differs from the image size 8x10" in str(e.value)


def test_class_id_out_of_range_names_the_fix():
    class Bad(ListMaskDataset):
        def load_mask(self, image_id):
            m = np.ones((8, 10, 1), bool)
            return m, [5]
    d = Bad()
    d.load()
    d.prepare()
    with pytest.raises(utils.MaskError, match="map_source_class_id"):
        d.load_mask_checked(0, image_shape=(8, 10))


def test_default_load_mask_warns_and_is_empty(caplog):
    d = utils.Dataset()
    d.add_image("t", 1, None)
    d.prepare()
    mask, ids = d.load_mask(0)
    assert mask.shape == (0, 0, 0) and ids.shape == (0,)
    assert "default load_mask" in caplog.text
