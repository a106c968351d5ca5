"""One image reader for every path (training's Dataset.load_image, detect in the samples,
export --check, the web demo): CMYK, 16-bit, palette, gray+alpha, RGBA, EXIF orientation."""
import numpy as np
import pytest
from PIL import Image, ImageOps

from mrcnn import demo, utils
from mrcnn.dataset import Dataset
from mrcnn.datasets._common import image_size
from mrcnn.imageops import read_image


def one_image_dataset(path, exif_orientation=True):
    class Files(Dataset):
        pass
    Files.exif_orientation = exif_orientation
    d = Files()
    d.add_class("files", 1, "thing")
    d.add_image("files", image_id=0, path=str(path))
    d.prepare()
    return d


def every_reader(path):
    """The pixels each path of the library gets from one file."""
    return {"read_image": read_image(str(path)),
            "utils.read_image": utils.read_image(str(path)),
            "Dataset.load_image": one_image_dataset(path).load_image(0),
            "demo.read_upload": demo.read_upload(str(path))[0]}


def assert_every_reader_gives(path, expected):
    for name, image in every_reader(path).items():
        assert image.dtype == np.uint8 and image.shape == expected.shape, name
        assert image.flags.writeable and image.flags.c_contiguous, name
        np.testing.assert_array_equal(image, expected, err_msg=name)


def test_cmyk_jpeg_keeps_its_colours_on_every_path(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[...] = (200, 50, 10)
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=100)
    with Image.open(path) as im:
        assert im.mode == "CMYK" and "adobe" in im.info  # Adobe's inverted CMYK JPEG
        pil_rgb = np.asarray(im.convert("RGB"))
    image = read_image(str(path))
    # the colours of the photo, not their inverse (55, 205, 245)
    assert np.abs(image.astype(int) - (200, 50, 10)).max() <= 3
    assert_every_reader_gives(path, pil_rgb)
    assert "CMYK" in demo.read_upload(str(path))[1]


def test_16_bit_gray_and_rgb_png_keep_the_high_byte_on_every_path(tmp_path):
    cv2 = pytest.importorskip("cv2")
    values = np.array([[0, 255, 256, 32896], [40000, 65280, 65534, 65535]], np.uint16)
    expected = np.array([[0, 0, 1, 128], [156, 255, 255, 255]], np.uint8)  # value >> 8
    gray = tmp_path / "gray16.png"
    Image.fromarray(values).save(gray)
    with Image.open(gray) as im:
        assert im.mode == "I;16"
    assert_every_reader_gives(gray, np.stack([expected] * 3, axis=-1))
    rgb16 = np.stack([values, values[::-1], values[:, ::-1]], axis=-1)
    color = tmp_path / "rgb16.png"
    cv2.imwrite(str(color), rgb16[:, :, ::-1])  # OpenCV writes BGR
    assert cv2.imread(str(color), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert_every_reader_gives(color, np.stack([expected, expected[::-1], expected[:, ::-1]],
                                              axis=-1))
    image, note = demo.read_upload(str(gray))
    assert "16 bits" in note and "grayscale" in note


def test_palette_png_with_and_without_transparency_gives_the_palette_colours(tmp_path):
    index = np.array([[0, 1], [2, 1]], np.uint8)
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9)
    expected = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [0, 255, 0]]], np.uint8)
    for name, transparency in (("p.png", None), ("pt.png", 0)):
        im = Image.fromarray(index, "P")
        im.putpalette(palette)
        path = tmp_path / name
        if transparency is None:
            im.save(path)
        else:
            im.save(path, transparency=transparency)  # index 0 (red) fully transparent
        with Image.open(path) as check:
            assert check.mode == "P" and ("transparency" in check.info) == (
                transparency is not None)
        assert_every_reader_gives(path, expected)


def test_gray_alpha_and_rgba_drop_the_alpha_on_every_path(tmp_path):
    la = np.zeros((4, 5, 2), np.uint8)
    la[..., 0] = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    la[:2, :, 1] = 255
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    assert_every_reader_gives(path, np.stack([la[..., 0]] * 3, axis=-1))
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 2] = 7
    rgba[:2, :, 3] = 255
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert_every_reader_gives(path, rgba[..., :3])


def exif_png(path, array, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, exif=exif.tobytes())
    return path


def test_exif_orientation_is_applied_on_every_path(tmp_path):
    stored = np.zeros((4, 6, 3), np.uint8)      # 4 rows, 6 columns as stored
    stored[0, 0] = (255, 0, 0)                 # a red pixel top-left
    stored[3, 5] = (0, 0, 255)                 # a blue one bottom-right
    stored[0, 1] = (0, 255, 0)                 # green right of the red one
    # orientation 6: the viewer turns the stored image 90 degrees clockwise
    path = exif_png(tmp_path / "o6.png", stored, 6)
    image = read_image(str(path))
    assert image.shape == (6, 4, 3)
    assert image[0, 3].tolist() == [255, 0, 0] and image[1, 3].tolist() == [0, 255, 0]
    assert image[5, 0].tolist() == [0, 0, 255]
    assert_every_reader_gives(path, image)
    assert "EXIF" in demo.read_upload(str(path))[1]
    # every orientation as Pillow's own exif_transpose shows it
    for orientation in range(1, 9):
        path = exif_png(tmp_path / "o{}.png".format(orientation), stored, orientation)
        with Image.open(path) as im:
            shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        assert_every_reader_gives(path, shown)


def test_exif_orientation_can_be_turned_off_and_image_size_follows_it(tmp_path):
    stored = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    path = exif_png(tmp_path / "o8.png", stored, 8)
    # loaders size their masks from the header: it must match what load_image returns
    assert image_size(str(path)) == (6, 4) == read_image(str(path)).shape[:2]
    assert image_size(str(path), exif_orientation=False) == (4, 6)
    np.testing.assert_array_equal(read_image(str(path), exif_orientation=False), stored)
    np.testing.assert_array_equal(one_image_dataset(path, exif_orientation=False).load_image(0),
                                  stored)
    np.testing.assert_array_equal(read_image(str(path)), np.rot90(stored))


def test_decode_image_names_what_it_converted(tmp_path):
    from mrcnn.imageops import decode_image
    path = tmp_path / "rgb.png"
    Image.fromarray(np.full((3, 3, 3), 9, np.uint8)).save(path)
    image, notes = decode_image(str(path))
    assert notes == [] and image.tolist() == np.full((3, 3, 3), 9).tolist()
    path = tmp_path / "g16.png"
    Image.fromarray(np.full((3, 3), 1000, np.uint16)).save(path)
    assert decode_image(str(path))[1] == ["grayscale", "16-bit"]


def test_unreadable_files_raise_naming_the_file(tmp_path):
    good = tmp_path / "ok.jpg"
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(good, quality=90)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cannot read image .*cut\.jpg.*truncated"):
        read_image(str(truncated))
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(ValueError, match=r"cannot read image .*notes\.png"):
        read_image(str(text))
    with pytest.raises(FileNotFoundError, match=r"gone\.png"):
        read_image(str(tmp_path / "gone.png"))
    with pytest.raises(ValueError, match=r"image_id=0\).*cut\.jpg"):
        one_image_dataset(truncated).load_image(0)


def test_annotations_sized_for_the_stored_pixels_of_a_turned_photo_say_so(tmp_path):
    import json
    from mrcnn.datasets import load_coco
    from mrcnn.masks import MaskError
    (tmp_path / "images").mkdir()
    exif_png(tmp_path / "images" / "p.png", np.full((30, 40, 3), 90, np.uint8), 6)
    data = {"images": [{"id": 1, "file_name": "p.png", "height": 30, "width": 40}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "segmentation": [[2, 2, 9, 2, 9, 9, 2, 9]], "area": 49,
                             "bbox": [2, 2, 7, 7]}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    dataset = load_coco(str(tmp_path / "ann.json"), str(tmp_path / "images"))
    image = dataset.load_image(0)
    assert image.shape == (40, 30, 3)
    with pytest.raises(MaskError, match=r"image_id 0 .*mask size 30x40 is the image size 40x30 "
                                        r"turned by 90 degrees.*EXIF orientation.*"
                                        r"exif_orientation = False"):
        dataset.load_mask_checked(0, image_shape=image.shape)
    dataset.exif_orientation = False      # annotations made on the stored pixels
    image = dataset.load_image(0)
    assert dataset.load_mask_checked(0, image_shape=image.shape)[0].shape == (30, 40, 1)
