"""The custom-data loaders of mrcnn.datasets on data the tests write."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from mrcnn.datasets import (InstancePngDataset, MaskFolderDataset, NpyDataset, ViaDataset,
                            read_via_json)


def write_image(path, h=30, w=40, value=100):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


# ---------------------------------------------------------------- PennFudan style

def pennfudan(tmp_path):
    img, msk = tmp_path / "PNGImages", tmp_path / "PedMasks"
    ids = np.zeros((30, 40), np.uint8)
    ids[2:10, 3:8] = 1
    ids[12:20, 20:30] = 2
    for stem in ("FudanPed00001", "FudanPed00002"):
        write_image(str(img / (stem + ".png")))
        os.makedirs(msk, exist_ok=True)
        Image.fromarray(ids).save(msk / (stem + "_mask.png"))
    return img, msk, ids


def test_instance_png_one_class(tmp_path):
    img, msk, ids = pennfudan(tmp_path)
    ds = InstancePngDataset()
    ds.load_folder(str(img), str(msk), class_name="pedestrian")
    ds.prepare()
    assert ds.class_names == ["BG", "pedestrian"] and ds.num_images == 2
    masks, class_ids = ds.load_mask_checked(0)
    assert list(class_ids) == [1, 1]
    np.testing.assert_array_equal(masks[..., 0], ids == 1)
    np.testing.assert_array_equal(masks[..., 1], ids == 2)


def test_instance_png_class_map_and_errors(tmp_path):
    img, msk, ids = pennfudan(tmp_path)
    ds = InstancePngDataset()
    ds.load_folder(str(img), str(msk), class_map={1: "person", 2: "car"})
    ds.prepare()
    assert ds.class_names == ["BG", "car", "person"]
    masks, class_ids = ds.load_mask(1)
    assert list(class_ids) == [2, 1]  # value 1 -> person (2), value 2 -> car (1)
    # a callable map may drop values
    ds = InstancePngDataset()
    ds.load_folder(str(img), str(msk), class_map=lambda stem, v: "car" if v == 2 else None,
                   class_names=["car"])
    ds.prepare()
    masks, class_ids = ds.load_mask(0)
    assert list(class_ids) == [1]
    np.testing.assert_array_equal(masks[..., 0], ids == 2)
    with pytest.raises(FileNotFoundError, match="mask_name"):
        InstancePngDataset().load_folder(str(img), str(msk), mask_name="{stem}.png")
    # a colour image where a mask should be (the photos' folder given as the masks) is
    # refused when the folder is loaded, not at the first load_mask of a training run
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(msk / "FudanPed00001_mask.png")
    with pytest.raises(ValueError, match=r"FudanPed00001_mask\.png is a colour image \(RGB\)"
                                         r".*image folder rather than the masks"):
        InstancePngDataset().load_folder(str(img), str(msk))


def test_instance_png_mask_name_with_an_unknown_placeholder_is_refused_at_once(tmp_path):
    img, msk, _ = pennfudan(tmp_path)
    with pytest.raises(ValueError, match=r"placeholder \{name\}.*only one is \{stem\}"):
        InstancePngDataset().load_folder(str(img), str(msk), mask_name="{name}_mask.png")
    with pytest.raises(ValueError, match="not a valid pattern"):
        InstancePngDataset().load_folder(str(img), str(msk), mask_name="{stem_mask.png")


def test_every_folder_loader_takes_image_ids(tmp_path):
    img, msk, _ = pennfudan(tmp_path / "pf")
    ds = InstancePngDataset()
    ds.load_folder(str(img), str(msk), image_ids=["FudanPed00002"])
    assert [i["id"] for i in ds.image_info] == ["FudanPed00002"]
    with pytest.raises(FileNotFoundError, match="FudanPed00009"):
        InstancePngDataset().load_folder(str(img), str(msk), image_ids=["FudanPed00009"])
    masks = np.zeros((1, 30, 40), np.uint8)
    masks[0, 1:5, 2:9] = 1
    for stem in ("a", "b", "c"):
        write_image(str(tmp_path / "npy" / (stem + ".jpg")))
        np.save(tmp_path / "npy" / (stem + ".npy"), {"labels": [1], "masks": masks})
    ds = NpyDataset()
    ds.load_folder(str(tmp_path / "npy"), class_names=["x"], image_ids=["c", "a"])
    assert [i["id"] for i in ds.image_info] == ["a", "c"]
    via_files(tmp_path / "via")
    ds = ViaDataset()
    ds.load_via(str(tmp_path / "via" / "v2.json"), image_ids=["b.jpg"])
    assert [i["id"] for i in ds.image_info] == ["b.jpg"]


# ---------------------------------------------------------------- nucleus style

def test_mask_folders_reads_every_instance(tmp_path):
    expected = {}
    for sample, boxes in (("a1", [(0, 5, 0, 5), (10, 20, 10, 30), (22, 28, 1, 4)]),
                          ("b2", [(3, 9, 3, 9)])):
        write_image(str(tmp_path / sample / "images" / (sample + ".png")))
        os.makedirs(tmp_path / sample / "masks")
        ms = []
        for k, (y1, y2, x1, x2) in enumerate(boxes):
            m = np.zeros((30, 40), np.uint8)
            m[y1:y2, x1:x2] = 255
            Image.fromarray(m).save(tmp_path / sample / "masks" / "{}_{}.png".format(sample, k))
            ms.append(m > 0)
        expected[sample] = np.stack(ms, -1)
    ds = MaskFolderDataset()
    ds.load_folder(str(tmp_path), class_name="nucleus")
    ds.prepare()
    assert [ds.image_reference(i) for i in ds.image_ids] == ["a1", "b2"]
    for i in ds.image_ids:
        masks, ids = ds.load_mask_checked(i)
        np.testing.assert_array_equal(masks, expected[ds.image_reference(i)])
        assert set(ids) == {1}
    only = MaskFolderDataset()
    only.load_folder(str(tmp_path), image_ids=["b2"])
    assert len(only.image_info) == 1
    with pytest.raises(FileNotFoundError, match="zz"):
        MaskFolderDataset().load_folder(str(tmp_path), image_ids=["zz"])
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "b2" / "masks" / "x.png")
    ds = MaskFolderDataset()
    ds.load_folder(str(tmp_path), image_ids=["b2"])
    with pytest.raises(ValueError, match="10x10 but its image is 40x30"):
        ds.load_mask(0)


# ---------------------------------------------------------------- .npy dicts

def test_npy_dicts_both_mask_layouts_and_errors(tmp_path):
    masks = np.zeros((2, 30, 40), np.uint8)
    masks[0, 1:5, 2:9] = 1
    masks[1, 10:20, 15:25] = 1
    write_image(str(tmp_path / "0001.jpg"))
    np.save(tmp_path / "0001.npy", {"boxes": np.array([[2, 1, 9, 5], [15, 10, 25, 20]]),
                                    "labels": np.array([2, 1]), "masks": masks})
    write_image(str(tmp_path / "0002.jpg"))
    np.save(tmp_path / "0002.npy", {"labels": [1], "masks": masks[:1].transpose(1, 2, 0)})
    ds = NpyDataset()
    ds.load_folder(str(tmp_path), class_names=["cat", "dog"], box_tolerance=0)
    ds.prepare()
    m, ids = ds.load_mask_checked(0)
    assert list(ids) == [2, 1] and m.shape == (30, 40, 2)
    np.testing.assert_array_equal(m[..., 1], masks[1] > 0)
    m, ids = ds.load_mask_checked(1)
    assert list(ids) == [1] and m.shape == (30, 40, 1)
    np.save(tmp_path / "0002.npy", {"labels": [3], "masks": masks[:1]})
    with pytest.raises(ValueError, match=r"labels \[3\] are outside 1..2"):
        ds.load_mask(1)
    np.save(tmp_path / "0002.npy", {"labels": [1, 2], "masks": masks[:1]})
    with pytest.raises(ValueError, match="N = 2 labels"):
        ds.load_mask(1)
    np.save(tmp_path / "0001.npy", {"boxes": [[0, 0, 9, 5], [15, 10, 25, 20]],
                                    "labels": [2, 1], "masks": masks})
    with pytest.raises(ValueError, match="differ from the masks' extents by up to 2 px"):
        ds.load_mask(0)
    os.remove(tmp_path / "0002.npy")
    with pytest.raises(FileNotFoundError, match="0002.npy"):
        NpyDataset().load_folder(str(tmp_path), class_names=["cat", "dog"])


# ---------------------------------------------------------------- VIA

REGIONS = [
    {"shape_attributes": {"name": "rect", "x": 2, "y": 3, "width": 4, "height": 5},
     "region_attributes": {"name": "balloon"}},
    {"shape_attributes": {"name": "polygon", "all_points_x": [20, 30, 30, 20],
                          "all_points_y": [10, 10, 20, 20]},
     "region_attributes": {"name": "kite"}},
    {"shape_attributes": {"name": "circle", "cx": 10, "cy": 22, "r": 3},
     "region_attributes": {"name": {"balloon": True, "kite": False}}},
]


def via_files(tmp_path):
    for name in ("a.jpg", "b.jpg", "empty.jpg"):
        write_image(str(tmp_path / name))
    v2 = {"a.jpg1234": {"filename": "a.jpg", "size": 1234, "regions": REGIONS,
                        "file_attributes": {}},
          "b.jpg99": {"filename": "b.jpg", "size": 99, "regions": REGIONS[:1]},
          "empty.jpg1": {"filename": "empty.jpg", "size": 1, "regions": []}}
    v1 = {k: dict(e, regions={str(i): r for i, r in enumerate(e["regions"])})
          for k, e in v2.items()}
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    (tmp_path / "v2.json").write_text(json.dumps(v2))
    (tmp_path / "project.json").write_text(json.dumps({"_via_settings": {},
                                                      "_via_img_metadata": v2}))
    return tmp_path


@pytest.mark.parametrize("name", ["v1.json", "v2.json", "project.json"])
def test_via_versions_give_the_same_masks(tmp_path, name):
    via_files(tmp_path)
    ds = ViaDataset()
    ds.load_via(str(tmp_path / name), class_attribute="name")
    ds.prepare()
    assert ds.class_names == ["BG", "balloon", "kite"]
    assert [ds.image_reference(i).split(os.sep)[-1] for i in ds.image_ids] == ["a.jpg",
                                                                                "b.jpg"]
    masks, ids = ds.load_mask_checked(0)
    assert list(ids) == [1, 2, 1]
    rect = np.zeros((30, 40), bool)
    rect[3:8, 2:6] = True
    np.testing.assert_array_equal(masks[..., 0], rect)
    assert masks[10:21, 20:31, 1].all() and masks[..., 1].sum() == 121
    # disk of radius 3: the 25 pixels strictly inside (dy, dx in -2..2)
    assert masks[20:25, 8:13, 2].all() and masks[..., 2].sum() == 25


def test_via_single_class_empty_images_and_errors(tmp_path):
    via_files(tmp_path)
    ds = ViaDataset()
    ds.load_via(str(tmp_path / "v2.json"), class_name="balloon", include_empty=True)
    ds.prepare()
    assert ds.num_images == 3 and ds.class_names == ["BG", "balloon"]
    assert ds.load_mask(2)[0].shape == (30, 40, 0)
    assert list(ds.load_mask(0)[1]) == [1, 1, 1]
    with pytest.raises(ValueError, match="not in class_names"):
        ViaDataset().load_via(str(tmp_path / "v2.json"), class_attribute="name",
                              class_names=["balloon"])
    os.remove(tmp_path / "b.jpg")
    with pytest.raises(FileNotFoundError, match="b.jpg"):
        ViaDataset().load_via(str(tmp_path / "v2.json"))
    (tmp_path / "v3.json").write_text(json.dumps({"project": {}, "metadata": {}}))
    with pytest.raises(ValueError, match="VIA 3"):
        read_via_json(str(tmp_path / "v3.json"))


def test_via_filenames_never_reach_outside_the_image_folder(tmp_path, caplog):
    via_files(tmp_path / "train")
    write_image(str(tmp_path / "secret.jpg"), value=255)
    data = json.loads((tmp_path / "train" / "v2.json").read_text())
    data["a.jpg1234"]["filename"] = "../secret.jpg"                 # climbs out
    data["b.jpg99"]["filename"] = str(tmp_path / "secret.jpg")      # absolute, outside
    (tmp_path / "train" / "evil.json").write_text(json.dumps(data))
    with pytest.raises(FileNotFoundError, match=r"2 images of .*evil\.json are missing.*only "
                                                r"read from inside image_dir"):
        ViaDataset().load_via(str(tmp_path / "train" / "evil.json"))
    assert "point outside" in caplog.text
    # a Windows export's "images\\a.jpg" is found, by its base name
    data["a.jpg1234"]["filename"] = "images\\a.jpg"
    data["b.jpg99"]["filename"] = "b.jpg"
    (tmp_path / "train" / "win.json").write_text(json.dumps(data))
    ds = ViaDataset()
    ds.load_via(str(tmp_path / "train" / "win.json"))
    assert [ds.image_info[i]["path"] for i in range(2)] == [
        str(tmp_path / "train" / "a.jpg"), str(tmp_path / "train" / "b.jpg")]


def test_via_masks_follow_the_exif_orientation_of_the_image(tmp_path):
    # a phone photo stored 30x40 (rows x cols) with orientation 6: shown 40x30
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.full((30, 40, 3), 100, np.uint8)).save(tmp_path / "p.jpg",
                                                              exif=exif.tobytes())
    region = {"shape_attributes": {"name": "rect", "x": 2, "y": 30, "width": 5, "height": 6},
              "region_attributes": {}}          # drawn on the upright (displayed) photo
    (tmp_path / "via.json").write_text(json.dumps(
        {"p.jpg1": {"filename": "p.jpg", "regions": [region]}}))
    ds = ViaDataset()
    ds.load_via(str(tmp_path / "via.json"))
    ds.prepare()
    image = ds.load_image(0)
    assert image.shape == (40, 30, 3)
    mask, ids = ds.load_mask_checked(0, image_shape=image.shape)
    assert mask.shape == (40, 30, 1) and mask[30:36, 2:7, 0].all() and mask.sum() == 30
