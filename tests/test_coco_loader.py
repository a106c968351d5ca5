"""The COCO JSON loader on data the test writes (polygon, RLE, uncompressed RLE, crowd,
category ids from 0 as Label Studio writes them, missing files) and on the real sample."""
import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from mrcnn.datasets import CocoDataset, load_coco


def write_fixture(tmp_path, with_missing=False):
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    Image.fromarray(np.full((20, 30, 3), 50, np.uint8)).save(images_dir / "a.png")
    Image.fromarray(np.full((10, 10, 3), 90, np.uint8)).save(images_dir / "b.png")
    # polygon: a 10x6 rectangle at x 2..12, y 3..9 (pycocotools rasterises polygons
    # with x1 <= x < x2 for these corners)
    poly = [[2, 3, 12, 3, 12, 9, 2, 9]]
    # uncompressed RLE (column-major counts) of a 2x3 block at rows 5..7, cols 20..23
    block = np.zeros((20, 30), np.uint8)
    block[5:7, 20:23] = 1
    counts, run, value = [], 0, 0
    for v in block.flatten(order="F"):
        if v == value:
            run += 1
        else:
            counts.append(run)
            run, value = 1, v
    counts.append(run)
    # compressed RLE of a crowd region on image b
    crowd = np.zeros((10, 10), np.uint8, order="F")
    crowd[0:4, 0:4] = 1
    rle = mask_utils.encode(np.asfortranarray(crowd))
    rle["counts"] = rle["counts"].decode("ascii")
    data = {
        "images": [{"id": 5, "file_name": "a.png", "height": 20, "width": 30},
                   {"id": 9, "file_name": "upload/1/b.png", "height": 10, "width": 10}],
        "categories": [{"id": 0, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 0, "segmentation": poly, "iscrowd": 0,
             "area": 60, "bbox": [2, 3, 10, 6]},
            {"id": 2, "image_id": 5, "category_id": 3, "iscrowd": 0, "area": 6,
             "segmentation": {"size": [20, 30], "counts": counts}, "bbox": [20, 5, 3, 2]},
            {"id": 3, "image_id": 9, "category_id": 3, "iscrowd": 1, "area": 16,
             "segmentation": rle, "bbox": [0, 0, 4, 4]},
            {"id": 4, "image_id": 9, "category_id": 0, "iscrowd": 0, "area": 0,
             "segmentation": [[1, 1, 1, 1, 1, 1]], "bbox": [1, 1, 0, 0]},
        ],
    }
    if with_missing:
        data["images"].append({"id": 11, "file_name": "gone.jpg", "height": 5, "width": 5})
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return str(path), str(images_dir)


def test_polygon_rle_uncompressed_rle_and_crowd(tmp_path):
    ann, images = write_fixture(tmp_path)
    d = load_coco(ann, images)
    assert d.class_names == ["BG", "cat", "dog"]
    # category 0 (Label Studio numbering) maps to internal 1, and back
    assert d.map_source_class_id("coco.0") == 1 and d.map_source_class_id("coco.3") == 2
    assert d.get_source_class_id(1, "coco") == 0
    assert [info["id"] for info in d.image_info] == [5, 9]

    mask, ids = d.load_mask_checked(0, image_shape=d.load_image(0).shape)
    assert mask.shape == (20, 30, 2) and ids.tolist() == [1, 2]
    ys, xs = np.where(mask[:, :, 0])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (3, 8, 2, 11)
    assert mask[:, :, 0].sum() == 60
    expected_block = np.zeros((20, 30), bool)
    expected_block[5:7, 20:23] = True
    np.testing.assert_array_equal(mask[:, :, 1], expected_block)

    # file_name with folders (Label Studio) is found by its base name; the crowd region
    # gets a negative id; the degenerate polygon is skipped
    mask, ids = d.load_mask_checked(1, image_shape=d.load_image(1).shape)
    assert ids.tolist() == [-2]
    assert mask[:, :, 0].sum() == 16


def test_class_ids_filter_selects_images_and_classes(tmp_path):
    ann, images = write_fixture(tmp_path)
    d = CocoDataset()
    d.load_coco(ann, images, class_ids=[0])
    d.prepare()
    assert d.class_names == ["BG", "cat"]
    assert [info["id"] for info in d.image_info] == [5, 9]
    mask, ids = d.load_mask(0)
    assert ids.tolist() == [1]
    with pytest.raises(ValueError, match=r"category ids \[7\]"):
        CocoDataset().load_coco(ann, images, class_ids=[7])


def test_missing_image_files_are_reported_by_name(tmp_path):
    ann, images = write_fixture(tmp_path, with_missing=True)
    with pytest.raises(FileNotFoundError, match=r"1 of 3 image files.*gone\.jpg"):
        CocoDataset().load_coco(ann, images)
    d = CocoDataset()
    d.load_coco(ann, images, skip_missing=True)
    d.prepare()
    assert d.num_images == 2 and d.missing_images == ["gone.jpg"]


@pytest.mark.shared_data
def test_real_coco_sample_loads_with_all_instances(coco_sample):
    d = load_coco(os.path.join(coco_sample, "instances.json"), os.path.join(coco_sample, "images"))
    assert d.num_images == 100
    assert d.num_classes == 81
    assert d.class_names[1] == "person"
    total = 0
    for i in d.image_ids[:20]:
        image = d.load_image(i)
        mask, ids = d.load_mask_checked(i, image_shape=image.shape)
        info = d.image_info[i]
        # every mask's pixel count equals its annotation area (data README)
        areas = sorted(a["area"] for a in info["annotations"])
        assert sorted(mask.reshape(-1, mask.shape[-1]).sum(axis=0).tolist()) == areas
        total += len(ids)
    assert total > 0


def test_windows_file_names_are_found_with_either_image_dir(tmp_path):
    ann, images = write_fixture(tmp_path)
    data = json.load(open(ann))
    data["images"][0]["file_name"] = "images\\a.png"        # Label Studio on Windows
    data["images"][1]["file_name"] = "images\\b.png"
    (tmp_path / "win.json").write_text(json.dumps(data))
    for image_dir in (str(tmp_path), images):
        d = load_coco(str(tmp_path / "win.json"), image_dir)
        assert [os.path.relpath(d.image_info[i]["path"], images) for i in d.image_ids] == \
            ["a.png", "b.png"]
        assert d.load_image(0).shape == (20, 30, 3)
    # a Windows absolute name: looked up by its base name inside image_dir
    data["images"][1]["file_name"] = "C:\\export\\images\\b.png"
    (tmp_path / "drive.json").write_text(json.dumps(data))
    d = load_coco(str(tmp_path / "drive.json"), images)
    assert d.image_info[1]["path"] == os.path.join(images, "b.png")


def test_file_names_never_reach_outside_image_dir(tmp_path, caplog):
    ann, images = write_fixture(tmp_path)
    secret = tmp_path / "secret"
    secret.mkdir()
    Image.fromarray(np.full((20, 30, 3), 255, np.uint8)).save(secret / "a.png")
    Image.fromarray(np.full((10, 10, 3), 255, np.uint8)).save(secret / "x.png")
    data = json.load(open(ann))
    data["images"][0]["file_name"] = "../secret/a.png"
    data["images"][1]["file_name"] = str(secret / "x.png")     # absolute, outside
    (tmp_path / "evil.json").write_text(json.dumps(data))
    with pytest.raises(FileNotFoundError, match=r"1 of 2 image files .*x\.png.*point outside "
                                                r"the folder"):
        load_coco(str(tmp_path / "evil.json"), images)
    d = CocoDataset()
    d.load_coco(str(tmp_path / "evil.json"), images, skip_missing=True)
    d.prepare()
    # "../secret/a.png" is read as images/a.png (its base name, inside), never secret/a.png
    assert [d.image_info[i]["path"] for i in d.image_ids] == [os.path.join(images, "a.png")]
    assert d.load_image(0)[0, 0].tolist() == [50, 50, 50]
    assert "2 file_name(s)" in caplog.text and "point outside" in caplog.text
    data["images"][0]["file_name"] = None
    (tmp_path / "none.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"image id 5 of .*none\.json has no usable file_name"):
        load_coco(str(tmp_path / "none.json"), images)


def test_annotation_ids_from_zero_or_repeated_are_renumbered_with_a_map_back(tmp_path):
    ann, images = write_fixture(tmp_path)
    data = json.load(open(ann))
    for k, a in enumerate(data["annotations"]):
        a["id"] = [0, 7, 7, 3][k]                          # 0, and 7 twice
    d = load_coco(data, images)
    assert sorted(d.coco.anns) == [1, 2, 3, 4]           # none lost to the repeat
    assert [d.original_annotation_id(i) for i in (1, 2, 3, 4)] == [0, 7, 7, 3]
    assert data["annotations"][0]["id"] == 0             # the caller's dict is untouched
    untouched = load_coco(ann, images)                   # positive unique ids stay as they are
    assert sorted(untouched.coco.anns) == [1, 2, 3, 4] and untouched.annotation_id_map == {}
