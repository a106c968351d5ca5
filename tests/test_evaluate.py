"""Dataset-level evaluation against pycocotools, and the per-image report."""
import contextlib
import io
import json
import math
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn import evaluate, utils
from mrcnn.datasets import load_coco


@pytest.fixture(scope="module")
def coco_dataset(coco_sample):
    root = coco_sample
    return load_coco(os.path.join(root, "instances.json"), os.path.join(root, "images")), root


def gt_as_results(dataset, shift=(0, 0)):
    """detect()-style dicts made from the ground truth (crowd regions left out),
    boxes and masks shifted by (dy, dx) pixels, scores decreasing."""
    results = {}
    dy, dx = shift
    for i in dataset.image_ids:
        info = dataset.image_info[i]
        mask, ids = dataset.load_mask_checked(i, image_shape=(info["height"], info["width"]))
        keep = ids > 0
        mask, ids = mask[:, :, keep], ids[keep]
        mask = np.roll(mask, (dy, dx), axis=(0, 1))
        if dy:
            mask[:dy] = False
        if dx:
            mask[:, :dx] = False
        rois = utils.extract_bboxes(mask)
        results[i] = {"rois": rois, "class_ids": ids, "masks": mask,
                      "scores": np.linspace(0.99, 0.5, len(ids)) if len(ids) else np.zeros(0)}
    return results


@pytest.mark.shared_data
def test_ground_truth_fed_back_gives_ap_one(coco_dataset):
    dataset, _ = coco_dataset
    gt = evaluate.ground_truth_from_dataset(dataset)
    dets = evaluate.detections_to_coco(gt, gt_as_results(dataset))
    res = evaluate.evaluate_coco(gt, dets)
    for t in ("bbox", "segm"):
        assert res[t]["AP"] == pytest.approx(1.0, abs=1e-12), t
        assert res[t]["AP50"] == pytest.approx(1.0, abs=1e-12)
        assert res[t]["AR100"] == pytest.approx(1.0, abs=1e-12)
        # keyed by COCO category id (1 is person), the name alongside
        assert res[t]["per_category"][1]["name"] == "person"
        assert res[t]["per_category"][1]["AP"] == pytest.approx(1.0)
    assert res["num_images"] == 100
    assert len(res["segm"]["per_category"]) == 80
    table = evaluate.format_coco_table(res)
    assert "AP50" in table and "person (1)" in table


@pytest.mark.shared_data
def test_shifted_detections_equal_pycocotools_on_the_json_directly(coco_dataset):
    dataset, root = coco_dataset
    results = gt_as_results(dataset, shift=(3, 5))
    gt = evaluate.ground_truth_from_dataset(dataset)
    ours = evaluate.evaluate_coco(gt, evaluate.detections_to_coco(gt, results))

    # The same detections, written by hand with the file's own ids, scored by
    # pycocotools on the JSON file directly.
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(os.path.join(root, "instances.json"))
    name_to_cat = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
    file_to_id = {img["file_name"]: img["id"] for img in coco.loadImgs(coco.getImgIds())}
    bbox_dets, segm_dets = [], []
    for i, r in results.items():
        image_id = file_to_id[os.path.basename(dataset.image_info[i]["path"])]
        for k in range(len(r["class_ids"])):
            y1, x1, y2, x2 = r["rois"][k].tolist()
            cat = name_to_cat[dataset.class_names[r["class_ids"][k]]]
            rle = mask_utils.encode(np.asfortranarray(r["masks"][:, :, k].astype(np.uint8)))
            bbox_dets.append({"image_id": image_id, "category_id": cat,
                              "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(r["scores"][k])})
            segm_dets.append({"image_id": image_id, "category_id": cat, "segmentation": rle,
                              "score": float(r["scores"][k])})
    for iou_type, dets in (("bbox", bbox_dets), ("segm", segm_dets)):
        with contextlib.redirect_stdout(io.StringIO()):
            E = COCOeval(coco, coco.loadRes(dets), iou_type)
            E.evaluate()
            E.accumulate()
            E.summarize()
        direct = dict(zip(evaluate.STAT_NAMES, E.stats.tolist()))
        mine = {k: ours[iou_type][k] for k in evaluate.STAT_NAMES}
        assert mine == direct, iou_type
        assert 0.2 < direct["AP"] < 0.95  # the shift really costs something


def test_dataset_ground_truth_with_crowd_and_saved_report(tmp_path):
    """A non-COCO Dataset: GT built from load_mask, crowd (negative id) ignored as COCO does."""

    class Tiny(utils.Dataset):
        def load(self):
            self.add_class("t", 1, "thing")
            self.add_image("t", 0, None, height=40, width=40)

        def load_image(self, image_id):
            return np.zeros((40, 40, 3), np.uint8)

        def load_mask(self, image_id):
            m = np.zeros((40, 40, 2), bool)
            m[5:15, 5:15, 0] = True      # a thing
            m[20:40, 20:40, 1] = True    # a crowd region of things
            return m, np.array([1, -1], np.int32)

    d = Tiny()
    d.load()
    d.prepare()
    gt = evaluate.ground_truth_from_dataset(d)
    anns = gt.coco.loadAnns(gt.coco.getAnnIds())
    assert [(a["category_id"], a["iscrowd"], a["area"], a["bbox"]) for a in anns] == \
        [(1, 0, 100, [5, 5, 10, 10]), (1, 1, 400, [20, 20, 20, 20])]
    thing = np.zeros((40, 40, 1), bool)
    thing[5:15, 5:15] = True
    in_crowd = np.zeros((40, 40, 1), bool)
    in_crowd[22:30, 22:30] = True
    # a perfect detection, plus one inside the crowd region: ignored, so AP stays 1
    results = {0: {"rois": np.array([[5, 5, 15, 15], [22, 22, 30, 30]]),
                   "class_ids": np.array([1, 1]), "scores": np.array([0.9, 0.95]),
                   "masks": np.concatenate([thing, in_crowd], axis=-1)}}
    res = evaluate.evaluate_coco(gt, evaluate.detections_to_coco(gt, results))
    assert res["segm"]["AP"] == pytest.approx(1.0) and res["bbox"]["AP"] == pytest.approx(1.0)

    # the classic per-image report leaves crowds out of the GT: the crowd detection is a
    # false positive ranked first, so AP@0.5 = 0.5
    report = evaluate.calculate_ap(d, results)
    assert report["mAP"] == 0.5 and report["num_images"] == 1
    assert report["per_image"][0]["num_gt"] == 1

    path = evaluate.save_report({"coco": res, "per_image": report}, str(tmp_path / "r.json"))
    back = json.load(open(path))
    assert back["per_image"]["mAP"] == 0.5
    text = evaluate.format_report({"coco": res, "per_image": report})
    assert "mAP @ IoU 0.50:        0.500" in text


def test_no_detections_give_zero_and_image_without_gt_is_skipped():
    class Two(utils.Dataset):
        def load(self):
            self.add_class("t", 1, "thing")
            self.add_image("t", 0, None, height=20, width=20)
            self.add_image("t", 1, None, height=20, width=20)

        def load_image(self, image_id):
            return np.zeros((20, 20, 3), np.uint8)

        def load_mask(self, image_id):
            if image_id == 1:
                return np.zeros((20, 20, 0), bool), np.zeros(0, np.int32)
            m = np.zeros((20, 20, 1), bool)
            m[2:8, 2:8] = True
            return m, np.array([1])

    d = Two()
    d.load()
    d.prepare()
    empty = {"rois": np.zeros((0, 4)), "class_ids": np.zeros(0, np.int32),
             "scores": np.zeros(0), "masks": np.zeros((20, 20, 0), bool)}
    results = {0: empty, 1: empty}
    gt = evaluate.ground_truth_from_dataset(d)
    res = evaluate.evaluate_coco(gt, evaluate.detections_to_coco(gt, results))
    assert res["segm"]["AP"] == 0.0 and res["bbox"]["AP"] == 0.0
    report = evaluate.calculate_ap(d, results)
    assert report["mAP"] == 0.0 and report["num_skipped"] == 1
    assert math.isnan(report["per_image"][1]["AP"])


def ground_truth_as_detections(dataset, images):
    """What a perfect detect() returns: each image's ground truth (found by its pixels)
    as a detect() dict with a new masks array."""
    out = []
    for image in images:
        i = next(k for k in dataset.image_ids if np.array_equal(dataset.load_image(k), image))
        mask, ids = dataset.load_mask(i)
        mask = np.array(mask)
        out.append({"rois": utils.extract_bboxes(mask), "class_ids": ids,
                    "scores": np.ones(len(ids)), "masks": mask})
    return out


def test_evaluate_model_runs_detect_in_batches_over_all_images():
    from samples.shapes.shapes import ShapesConfig, ShapesDataset

    d = ShapesDataset()
    d.load_shapes(7, 64, 64, seed=3)
    d.prepare()

    class Oracle:
        """Stands in for MaskRCNN: detect() returns the ground truth."""
        config = ShapesConfig()
        calls = []

        def detect(self, images, verbose=0):
            assert len(images) == self.config.BATCH_SIZE
            self.calls.append(len(images))
            return ground_truth_as_detections(d, images)

    report = evaluate.evaluate_model(Oracle(), d, progress=False)
    assert report["images"] == 7 and Oracle.calls == [4, 4]
    assert report["per_image"]["mAP"] == 1.0 and report["per_image"]["mAP_range"] == 1.0
    assert report["coco"]["segm"]["AP"] == pytest.approx(1.0)


def test_evaluation_lets_each_images_masks_go_once_it_is_scored():
    """Memory must not grow with the set: when detect() runs on a batch, the masks of
    the batches before it are gone (evaluate_model and calculate_ap(iter_detections))."""
    import weakref
    from samples.shapes.shapes import ShapesConfig, ShapesDataset

    d = ShapesDataset()
    d.load_shapes(9, 64, 64, seed=4)
    d.prepare()

    class Watched:
        config = ShapesConfig()
        given = []
        alive_at_each_call = []

        def detect(self, images, verbose=0):
            self.alive_at_each_call.append(sum(m() is not None for m in self.given))
            out = ground_truth_as_detections(d, images)
            self.given.extend(weakref.ref(r["masks"]) for r in out)
            return out

    model = Watched()
    report = evaluate.evaluate_model(model, d, progress=False)
    assert report["images"] == 9 and report["per_image"]["mAP"] == 1.0
    # (BATCH_SIZE 4: three calls)
    assert model.alive_at_each_call == [0, 0, 0]
    model.given.clear()
    model.alive_at_each_call.clear()
    report = evaluate.calculate_ap(d, evaluate.iter_detections(model, d, progress=False))
    assert report["num_images"] == 9 and report["mAP"] == 1.0
    assert model.alive_at_each_call == [0, 0, 0]
    # image_ids picks from a stream as from a dict; a repeated id counts once
    picked = evaluate.calculate_ap(d, evaluate.iter_detections(model, d, progress=False),
                                   image_ids=[1, 3])
    assert [row["image_id"] for row in picked["per_image"]] == [1, 3]
    twice = evaluate.evaluate_model(model, d, image_ids=[2, 2, 5], progress=False)
    assert twice["images"] == 2 and twice["per_image"]["num_images"] == 2
    assert twice["coco"]["num_detections"] == \
        sum(row["num_pred"] for row in twice["per_image"]["per_image"])
    # a results dict keeps them all, as it says
    model.given.clear()
    results = evaluate.run_detection(model, d, progress=False)
    assert sum(m() is not None for m in model.given) == 9    # (not the batch's padding)
    assert sorted(results) == list(d.image_ids)


def test_calculate_ap_at_several_thresholds_and_pr_curve_pngs(tmp_path):
    class One(utils.Dataset):
        def load(self):
            self.add_class("t", 1, "thing")
            self.add_image("t", 0, None, height=20, width=20)

        def load_image(self, image_id):
            return np.zeros((20, 20, 3), np.uint8)

        def load_mask(self, image_id):
            m = np.zeros((20, 20, 1), bool)
            m[5:15, 5:15] = True  # 100 pixels
            return m, np.array([1])

    d = One()
    d.load()
    d.prepare()
    pred = np.zeros((20, 20, 1), bool)
    pred[5:15, 5:11] = True  # 60 pixels inside the ground truth: mask IoU 0.6
    results = {0: {"rois": np.array([[5, 5, 15, 11]]), "class_ids": np.array([1]),
                   "scores": np.array([0.9]), "masks": pred}}
    report = evaluate.calculate_ap(d, results, iou_threshold=[0.5, 0.75, 0.6])
    assert report["mAP"] == 1.0 and report["mAP@0.75"] == 0.0 and report["mAP@0.6"] == 1.0
    row = report["per_image"][0]
    assert (row["AP"], row["AP@0.75"], row["AP@0.6"]) == (1.0, 0.0, 1.0)
    # 0.5:0.95 in steps of 0.05: matched at 0.50, 0.55 and 0.60 -> 3 / 10
    assert row["AP_range"] == pytest.approx(0.3)
    text = evaluate.format_report({"per_image": report})
    assert "mAP @ IoU 0.75:        0.000" in text and "mAP @ IoU 0.60:        1.000" in text
    gt = evaluate.ground_truth_from_dataset(d)
    res = evaluate.evaluate_coco(gt, evaluate.detections_to_coco(gt, results),
                                 plot_dir=str(tmp_path / "pr"))
    assert sorted(res["pr_curves"]) == ["bbox", "segm"]
    for path in res["pr_curves"].values():
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# --- per-category table by id; Label Studio's annotation ids from 0 -----------------

def label_studio_export(tmp_path, names=("cat", "dog")):
    """A COCO export as Label Studio writes it on Windows: annotation ids from 0,
    file_name with a backslash. Two 20x30 images, five square instances."""
    root = tmp_path / "export"
    (root / "images").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((20, 30, 3), 80, np.uint8)).save(root / "images" / name)
    boxes = [(0, 5, 1, 2, 2, 6), (0, 5, 2, 15, 3, 8), (0, 9, 1, 4, 10, 7),
             (0, 9, 2, 20, 12, 5), (0, 9, 1, 1, 1, 3)]  # (_, image, category, x, y, size)
    annotations = []
    for k, (_, image_id, cat, x, y, size) in enumerate(boxes):
        annotations.append({"id": k, "image_id": image_id, "category_id": cat,
                            "segmentation": [[x, y, x + size, y, x + size, y + size, x,
                                              y + size]],
                            "bbox": [x, y, size, size], "area": size * size, "iscrowd": 0})
    data = {"images": [{"id": 5, "file_name": "images\\a.png", "height": 20, "width": 30},
                       {"id": 9, "file_name": "images\\b.png", "height": 20, "width": 30}],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)],
            "annotations": annotations}
    path = root / "result.json"
    path.write_text(json.dumps(data))
    return str(path), str(root)


def perfect_detections(annotation_json):
    """Each ground-truth annotation as a detection of score 1 (mask and box)."""
    data = json.load(open(annotation_json))
    sizes = {img["id"]: (img["height"], img["width"]) for img in data["images"]}
    dets = []
    for ann in data["annotations"]:
        h, w = sizes[ann["image_id"]]
        rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))
        rle["counts"] = rle["counts"].decode("ascii")
        dets.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                     "bbox": ann["bbox"], "score": 1.0, "segmentation": rle})
    return dets


def test_annotation_ids_from_zero_score_one_for_perfect_detections(tmp_path):
    path, root = label_studio_export(tmp_path)
    res = evaluate.evaluate_coco(path, perfect_detections(path))
    for t in ("bbox", "segm"):
        assert res[t]["AP"] == pytest.approx(1.0, abs=1e-12), t
        assert res[t]["AR100"] == pytest.approx(1.0, abs=1e-12), t
    gt = evaluate.ground_truth_from_json(path)
    assert sorted(gt.coco.anns) == [1, 2, 3, 4, 5]
    assert gt.coco.annotation_id_map == {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}
    # the same through the loader (Windows file_name) and the dataset's ground truth
    dataset = load_coco(path, root)
    assert dataset.original_annotation_id(1) == 0
    gt = evaluate.ground_truth_from_dataset(dataset)
    res = evaluate.evaluate_coco(gt, perfect_detections(path))
    assert res["segm"]["AP"] == pytest.approx(1.0, abs=1e-12)


def test_per_category_table_is_keyed_by_id_when_names_repeat(tmp_path):
    path, _ = label_studio_export(tmp_path, names=("Person", "Person", "Person"))
    dets = perfect_detections(path)
    res = evaluate.evaluate_coco(path, dets)
    table = res["segm"]["per_category"]
    assert sorted(table) == [1, 2, 3]
    assert [table[c]["name"] for c in (1, 2, 3)] == ["Person"] * 3
    assert table[1]["AP"] == pytest.approx(1.0) and table[2]["AP"] == pytest.approx(1.0)
    assert math.isnan(table[3]["AP"])            # category 3 has no ground truth
    text = evaluate.format_coco_table(res)
    assert "Person (1)" in text and "Person (2)" in text and "Person (3)" in text
    row = next(line for line in text.splitlines() if line.startswith("Person (1)"))
    assert row.split()[2:] == ["1.000"] * 4
    saved = json.load(open(evaluate.save_report({"coco": res}, str(tmp_path / "e.json"))))
    assert saved["coco"]["segm"]["per_category"]["2"]["name"] == "Person"
