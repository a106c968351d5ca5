"""samples/coco on the shared COCO sample: load, a short training run, evaluation of
the whole set; and how Label Studio / CVAT export folders are found."""
import csv
import json
import os
import shutil

import pytest

from samples import common
from samples.coco import train as coco_train
from samples.coco.coco import find_annotation, load_coco_sample

TINY = ["--config", "tiny_configs:TinyCocoConfig"]


def test_split_is_fixed_and_whole_set_is_default_for_evaluate(coco_sample):
    all_ = load_coco_sample(coco_sample, "all")
    train = load_coco_sample(coco_sample, "train")
    val = load_coco_sample(coco_sample, "val")
    assert all_.num_images == 100 and val.num_images == 10 and train.num_images == 90
    ids = lambda d: {d.image_info[i]["id"] for i in d.image_ids}  # noqa: E731
    assert ids(train) | ids(val) == ids(all_) and not ids(train) & ids(val)
    assert sorted(ids(val)) == sorted(ids(all_))[::10]
    assert train.class_names == all_.class_names and len(all_.class_names) == 81
    assert coco_train.SAMPLE.default_eval_subset == "all"


def test_export_layouts_are_found(tmp_path, coco_sample):
    ann = os.path.join(coco_sample, "instances.json")
    # Label Studio: result.json + images/
    ls = tmp_path / "labelstudio"
    (ls / "images").mkdir(parents=True)
    shutil.copy(ann, ls / "result.json")
    assert find_annotation(str(ls)) == (str(ls / "result.json"), str(ls / "images"))
    # CVAT COCO 1.0: annotations/instances_default.json + images/
    cvat = tmp_path / "cvat"
    (cvat / "annotations").mkdir(parents=True)
    (cvat / "images").mkdir()
    shutil.copy(ann, cvat / "annotations" / "instances_default.json")
    assert find_annotation(str(cvat)) == (
        str(cvat / "annotations" / "instances_default.json"), str(cvat / "images"))
    two = tmp_path / "two"
    two.mkdir()
    (two / "a.json").write_text("{}")
    (two / "b.json").write_text("{}")
    with pytest.raises(common.SampleError, match="2 JSON files"):
        find_annotation(str(two))
    with pytest.raises(common.SampleError, match="no such file"):
        find_annotation(str(tmp_path / "missing"))


def test_train_step_then_evaluate_whole_set(coco_sample, tmp_path):
    logs = tmp_path / "logs"
    last = coco_train.main(["train", "--dataset", coco_sample, "--weights", "none",
                            "--layers", "heads", "--epochs", "1", "--steps", "1",
                            "--logs", str(logs), "--seed", "0", "--quiet"] + TINY)
    assert os.path.basename(last) == "mask_rcnn_tinycoco_0001.h5"
    with open(os.path.join(os.path.dirname(last), "class_names.json")) as f:
        names = json.load(f)
    assert len(names) == 81 and names[0] == "BG" and "person" in names
    out = tmp_path / "eval"
    report = coco_train.main(["evaluate", "--dataset", coco_sample, "--weights", "last",
                              "--logs", str(logs), "--out", str(out)] + TINY)
    assert report["images"] == 100 and report["coco"]["num_images"] == 100
    assert report["per_image"]["num_images"] == 100
    with open(out / "per_image_ap.csv") as f:
        assert len(list(csv.reader(f))) == 1 + 100 + 1
    assert os.path.isfile(out / "pr_curve_segm.png")
