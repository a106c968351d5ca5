"""Dataset-level evaluation: COCO-style AP with pycocotools, and the classic per-image
``calculate_ap`` report.

Two metrics, for two audiences:

- **COCO AP** (``evaluate_coco``): what papers and other libraries report. AP, AP50,
  AP75, APs/m/l and AR1/10/100 for bbox and segm, plus per-category AP. Computed by
  pycocotools, so the numbers match everyone else's.
- **Per-image mAP** (``calculate_ap``): the classic Matterport samples' number, the mean
  over images of ``utils.compute_ap`` at IoU 0.5, plus the mean of
  ``utils.compute_ap_range`` (0.5:0.95). See ``mrcnn.metrics`` for how it differs.

Typical use with a trained model::

    report = evaluate.evaluate_model(model, val_dataset)
    print(evaluate.format_report(report))
    evaluate.save_report(report, "eval.json")

Or with detections you already have (one ``detect`` result dict per image)::

    gt = evaluate.ground_truth_from_dataset(dataset)
    dets = evaluate.detections_to_coco(gt, {image_id: result, ...})
    results = evaluate.evaluate_coco(gt, dets)
"""
import contextlib
import io
import json
import math
import os
import time
from collections.abc import Mapping

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .boxes import extract_bboxes
from .metrics import RANGE_THRESHOLDS, compute_ap_thresholds

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


class CocoGroundTruth(object):
    """Ground truth as a pycocotools COCO object, plus the id maps to and from a Dataset.

    coco: the COCO object.
    image_id_map: {dataset image id: COCO image id}.
    category_map: {dataset class id: COCO category id}.
    """

    def __init__(self, coco, image_id_map=None, category_map=None):
        self.coco = coco
        self.image_id_map = dict(image_id_map) if image_id_map is not None else \
            {i: i for i in coco.getImgIds()}
        self.category_map = dict(category_map) if category_map is not None else \
            {c: c for c in coco.getCatIds()}

    def coco_image_id(self, image_id):
        return self.image_id_map[image_id]

    def coco_category_id(self, class_id):
        try:
            return self.category_map[int(class_id)]
        except KeyError:
            raise KeyError("class id {} has no COCO category; known class ids: {}".format(
                class_id, sorted(self.category_map))) from None

    def category_name(self, category_id):
        return self.coco.cats[category_id]["name"]


def _quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _coco_from_dict(data):
    coco = COCO()
    coco.dataset = data
    _quiet(coco.createIndex)
    return coco


def encode_mask(mask):
    """COCO RLE (counts as str) of a [H, W] binary mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def ground_truth_from_json(annotation_json):
    """Ground truth straight from a COCO JSON file (image and category ids are the
    file's own; annotation ids starting at 0 or repeated, as Label Studio writes them,
    are renumbered 1..N so that pycocotools matches every one: see
    ``mrcnn.datasets.coco.read_coco``, whose map back is ``gt.coco.annotation_id_map``)."""
    from .datasets.coco import read_coco
    return CocoGroundTruth(read_coco(annotation_json))


def ground_truth_from_dataset(dataset, image_ids=None):
    """Ground truth of a prepared Dataset.

    A CocoDataset keeps its original annotations (so areas and crowd flags are the
    file's own, and results equal pycocotools on that file). Any other Dataset is
    converted from ``load_mask``: boxes and areas from the masks, negative class ids
    as crowd regions of class ``abs(id)``.
    """
    if image_ids is None:
        image_ids = list(dataset.image_ids)
    coco = getattr(dataset, "coco", None)
    source = getattr(dataset, "coco_source", None)
    if coco is not None and source is not None:
        image_id_map = {i: dataset.image_info[i]["id"] for i in image_ids}
        category_map = {c: dataset.class_info[c]["id"] for c in dataset.class_ids
                        if dataset.class_info[c]["source"] == source}
        return CocoGroundTruth(coco, image_id_map, category_map)

    images, annotations = [], []
    ann_id = 1
    for image_id in image_ids:
        info = dataset.image_info[image_id]
        image_shape = None
        if info.get("height") and info.get("width"):
            image_shape = (int(info["height"]), int(info["width"]))
        else:
            image_shape = dataset.load_image(image_id).shape[:2]
        mask, class_ids = dataset.load_mask_checked(image_id, image_shape=image_shape,
                                                    allow_empty_instances=True)
        h, w = image_shape
        images.append({"id": int(image_id), "height": int(h), "width": int(w),
                       "file_name": os.path.basename(str(info.get("path") or image_id))})
        boxes = extract_bboxes(mask)
        for k in range(mask.shape[-1]):
            area = int(mask[:, :, k].sum())
            if area == 0:
                continue
            y1, x1, y2, x2 = boxes[k]
            annotations.append({
                "id": ann_id, "image_id": int(image_id),
                "category_id": int(abs(class_ids[k])),
                "segmentation": encode_mask(mask[:, :, k]),
                "area": area, "bbox": [int(x1), int(y1), int(x2 - x1), int(y2 - y1)],
                "iscrowd": int(class_ids[k] < 0)})
            ann_id += 1
    categories = [{"id": int(c), "name": dataset.class_names[c]}
                  for c in dataset.class_ids if c != 0]
    coco = _coco_from_dict({"images": images, "annotations": annotations,
                            "categories": categories})
    return CocoGroundTruth(coco, {i: int(i) for i in image_ids},
                           {int(c): int(c) for c in dataset.class_ids if c != 0})


def detections_to_coco(gt, results):
    """COCO result dicts from ``detect`` outputs.

    gt: a CocoGroundTruth (for the id maps).
    results: {dataset image id: detect() dict with rois [N, (y1, x1, y2, x2)],
        class_ids [N], scores [N], masks bool [H, W, N] (masks optional)}.
    Returns: a list of {image_id, category_id, bbox [x, y, w, h], score, segmentation}.
    """
    out = []
    for image_id, r in results.items():
        rois = np.asarray(r["rois"]).reshape(-1, 4)
        masks = r.get("masks")
        for k in range(rois.shape[0]):
            y1, x1, y2, x2 = [float(v) for v in rois[k]]
            det = {"image_id": gt.coco_image_id(image_id),
                   "category_id": gt.coco_category_id(r["class_ids"][k]),
                   "bbox": [x1, y1, x2 - x1, y2 - y1],
                   "score": float(r["scores"][k])}
            if masks is not None and np.asarray(masks).ndim == 3:
                det["segmentation"] = encode_mask(np.asarray(masks)[:, :, k])
            out.append(det)
    return out


def _load_results(coco_gt, detections, iou_type):
    """A COCO results object for one iou type (bbox results drop masks, segm results
    drop boxes, so that areas come from what is being evaluated)."""
    dets = []
    for d in detections:
        d = dict(d)
        if iou_type == "bbox":
            d.pop("segmentation", None)
        else:
            if "segmentation" not in d:
                raise ValueError("segm evaluation needs masks: a detection for image {} has "
                                 "no 'segmentation'".format(d.get("image_id")))
            d.pop("bbox", None)
        d.pop("id", None)
        d.pop("area", None)
        dets.append(d)
    if not dets:
        empty = {"images": coco_gt.dataset.get("images", []),
                 "categories": coco_gt.dataset.get("categories", []), "annotations": []}
        return _coco_from_dict(empty)
    return _quiet(coco_gt.loadRes, dets)


def evaluate_coco(gt, detections, iou_types=("bbox", "segm"), image_ids=None,
                  verbose=False, plot_dir=None):
    """COCO-style evaluation with pycocotools.

    gt: a CocoGroundTruth (``ground_truth_from_dataset`` / ``ground_truth_from_json``)
        or a COCO JSON path.
    detections: a list of COCO result dicts, or a path to a results JSON.
    iou_types: "bbox" and/or "segm".
    image_ids: COCO image ids to evaluate (default: every image of the ground truth;
        for a Dataset's ground truth, the images it was built from).
    verbose: print pycocotools' own summary too.
    plot_dir: when given, precision-recall curves are written there as
        pr_curve_<iou_type>.png (paths in out["pr_curves"]).

    Returns: {iou_type: {"AP": ..., "AP50": ..., ..., "AR100": ...,
              "per_category": {category_id: {"category_id", "name", "AP", "AP50"}}},
              "num_images": n}
    per_category is keyed by the COCO category id (names may repeat); in a saved
    report (JSON) the keys are strings.
    AP values are in [0, 1]; -1 where pycocotools has nothing to average (no ground
    truth in that area range).
    """
    if not isinstance(gt, CocoGroundTruth):
        gt = ground_truth_from_json(gt)
    if isinstance(detections, (str, os.PathLike)):
        with open(detections) as f:
            detections = json.load(f)
    if image_ids is None:
        image_ids = sorted(set(gt.image_id_map.values()))
    out = {"num_images": len(image_ids), "num_detections": len(detections)}
    for iou_type in iou_types:
        if iou_type not in ("bbox", "segm"):
            raise ValueError("iou_type {!r}: use 'bbox' or 'segm'".format(iou_type))
        coco_dt = _load_results(gt.coco, detections, iou_type)
        E = COCOeval(gt.coco, coco_dt, iou_type)
        E.params.imgIds = list(image_ids)
        runner = (lambda f: f()) if verbose else (lambda f: _quiet(f))
        runner(E.evaluate)
        runner(E.accumulate)
        runner(E.summarize)
        stats = {name: float(v) for name, v in zip(STAT_NAMES, E.stats)}
        stats["per_category"] = _per_category(gt, E)
        out[iou_type] = stats
        if plot_dir:
            from . import visualize
            os.makedirs(plot_dir, exist_ok=True)
            path = os.path.join(plot_dir, "pr_curve_{}.png".format(iou_type))
            visualize.plot_coco_pr_curves(E, save_path=path, title="Precision-recall ({}, {} "
                                          "images)".format(iou_type, len(image_ids)))
            out.setdefault("pr_curves", {})[iou_type] = path
    return out


def _per_category(gt, E):
    """AP and AP50 per category from an accumulated COCOeval (area all, 100 dets)."""
    precision = E.eval["precision"]  # [T, R, K, A, M]
    table = {}
    for k, cat_id in enumerate(E.params.catIds):
        p = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        ap = float(np.mean(p[p > -1])) if np.any(p > -1) else float("nan")
        ap50 = float(np.mean(p50[p50 > -1])) if np.any(p50 > -1) else float("nan")
        table[int(cat_id)] = {"category_id": int(cat_id), "name": gt.category_name(cat_id),
                              "AP": ap, "AP50": ap50}
    return table


def category_label(key, entry):
    """"name (id)" of a per_category entry; reports saved before entries had a name
    were keyed by name."""
    name = entry.get("name", key)
    cat_id = entry.get("category_id")
    return "{} ({})".format(name, cat_id) if cat_id is not None else str(name)


def _ground_truth_instances(dataset, image_id):
    """Ground truth of one image at its original size, crowd regions left out."""
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask_checked(image_id, image_shape=image.shape,
                                                allow_empty_instances=True)
    keep = (class_ids > 0) & mask.reshape(-1, mask.shape[-1]).any(axis=0) \
        if mask.shape[-1] else np.zeros([0], dtype=bool)
    mask = mask[:, :, keep]
    class_ids = class_ids[keep]
    return extract_bboxes(mask), class_ids, mask


def _thresholds(value):
    """IoU thresholds as a list of floats, from one number or a sequence."""
    return [float(t) for t in np.atleast_1d(value)]


def calculate_ap(dataset, results, image_ids=None, iou_threshold=0.5):
    """The classic per-image report.

    dataset: a prepared Dataset (ground truth, original image size).
    results: {image id: detect() dict} for the images to score, or an iterable of
        (image id, detect() dict) pairs such as ``iter_detections`` gives: each image is
        scored as it comes and its full-size masks are not kept.
    image_ids: the images to score (default: all of them; a dict's sorted).
    iou_threshold: a float, or a list of them (the first one gives "AP"/"mAP"; each
        further threshold t adds "AP@t" per image and "mAP@t").
    Returns: {"mAP": mean compute_ap at iou_threshold, "mAP_range": mean compute_ap_range
    over 0.5:0.95, "num_images": images scored, "num_skipped": images without ground
    truth (AP undefined, left out of the means), "per_image": [{image_id, reference,
    AP, AP_range, num_gt, num_pred}]}.
    """
    thresholds = _thresholds(iou_threshold)
    if isinstance(results, Mapping):
        if image_ids is None:
            image_ids = sorted(results)
        pairs = ((image_id, results[image_id]) for image_id in image_ids)
    elif image_ids is not None:
        wanted = set(image_ids)
        pairs = ((image_id, r) for image_id, r in results if image_id in wanted)
    else:
        pairs = results
    rows = []
    for image_id, r in pairs:
        rows.append(per_image_ap(dataset, image_id, r, thresholds))
        del r       # (not held while the next image is detected)
    return summarise_ap(rows, thresholds)


def per_image_ap(dataset, image_id, r, thresholds):
    """One image's row of calculate_ap: its detect() dict ``r`` scored against its
    ground truth at each IoU threshold (the first gives "AP", the others "AP@t")."""
    thresholds = _thresholds(thresholds)
    iou_threshold, extra = thresholds[0], thresholds[1:]
    gt_boxes, gt_class_ids, gt_masks = _ground_truth_instances(dataset, image_id)
    rois = np.asarray(r["rois"]).reshape(-1, 4)
    masks = np.asarray(r["masks"])
    if masks.ndim != 3:
        masks = np.zeros(gt_masks.shape[:2] + (0,), dtype=bool)
    args = (gt_boxes, gt_class_ids, gt_masks, rois, np.asarray(r["class_ids"]),
            np.asarray(r["scores"]), masks)
    # one mask-IoU computation for every threshold (the classic code did one per call)
    aps = compute_ap_thresholds(*args, [iou_threshold] + extra + list(RANGE_THRESHOLDS))
    ap_range = np.mean(aps[1 + len(extra):])
    row = {"image_id": int(image_id), "reference": dataset.image_reference(image_id),
           "AP": float(aps[0]), "AP_range": float(ap_range),
           "num_gt": int(gt_class_ids.shape[0]), "num_pred": int(rois.shape[0])}
    for t, ap in zip(extra, aps[1:]):
        row["AP@{:g}".format(t)] = float(ap)
    return row


def summarise_ap(rows, thresholds):
    """calculate_ap's report from per_image_ap rows: the means over the images with
    ground truth."""
    thresholds = _thresholds(thresholds)
    iou_threshold, extra = thresholds[0], thresholds[1:]
    scored = [row for row in rows if not math.isnan(row["AP"])]

    def mean(key):
        return float(np.mean([row[key] for row in scored])) if scored else float("nan")
    report = {
        "iou_threshold": iou_threshold,
        "mAP": mean("AP"),
        "mAP_range": mean("AP_range"),
        "num_images": len(scored),
        "num_skipped": len(rows) - len(scored),
        "per_image": rows,
    }
    for t in extra:
        report["mAP@{:g}".format(t)] = mean("AP@{:g}".format(t))
    return report


def iter_detections(model, dataset, image_ids=None, limit=None, progress=True):
    """``model.detect`` over dataset images, a batch of config.BATCH_SIZE at a time:
    yields (image id, detect() dict) in order, so that a caller can score each image
    and let its full-size masks go (a 640x480 COCO image with 100 detections holds
    30 MB of masks). ``limit`` caps the number of images (default: all of them; the
    classic sample stopped at 500)."""
    if image_ids is None:
        image_ids = list(dataset.image_ids)
    if limit:
        image_ids = image_ids[:limit]
    batch = int(getattr(model.config, "BATCH_SIZE", 1))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(image_ids), desc="detect", unit="img")
    try:
        for start in range(0, len(image_ids), batch):
            ids = list(image_ids[start:start + batch])
            images = [dataset.load_image(i) for i in ids]
            pad = batch - len(images)
            # (the padding's results are dropped here, and each result is let go once
            # the caller has it: none is alive during the next batch's detect)
            outs = list(zip(ids, model.detect(images + images[-1:] * pad, verbose=0)))
            del images
            if bar is not None:
                bar.update(len(ids))
            outs.reverse()
            while outs:
                pair = outs.pop()
                yield pair
                del pair
    finally:
        if bar is not None:
            bar.close()


def run_detection(model, dataset, image_ids=None, limit=None, progress=True):
    """Run ``model.detect`` over dataset images (see iter_detections).

    Returns: {image id: detect() dict}, every image's full-size masks included: for a
    large set, use evaluate_model or pass iter_detections(...) to calculate_ap, which
    score each image as it comes."""
    return dict(iter_detections(model, dataset, image_ids, limit, progress))


def evaluate_model(model, dataset, image_ids=None, limit=None, iou_types=("bbox", "segm"),
                   progress=True, iou_thresholds=0.5, plot_dir=None):
    """Detect on a dataset and report both metrics.

    Each image is scored as soon as it is detected and its masks are kept only as COCO
    RLE: memory grows with the number of images by the RLEs and the per-image rows, not
    by full-size masks.
    iou_thresholds: of the per-image compute_ap report (see calculate_ap).
    plot_dir: where to write the precision-recall PNGs (see evaluate_coco).

    Returns: {"coco": evaluate_coco(...), "per_image": calculate_ap(...),
    "detect_seconds": s (loading the images and detecting), "images": n}.
    """
    if image_ids is None:
        image_ids = list(dataset.image_ids)
    if limit:
        image_ids = image_ids[:limit]
    ids = list(dict.fromkeys(image_ids))    # (each image once, in order)
    gt = ground_truth_from_dataset(dataset, ids)
    thresholds = _thresholds(iou_thresholds)
    detections, rows, seconds = [], [], 0.0
    stream = iter_detections(model, dataset, ids, progress=progress)
    with contextlib.closing(stream):
        while True:
            t0 = time.time()
            try:
                image_id, r = next(stream)
            except StopIteration:
                break
            seconds += time.time() - t0
            detections.extend(detections_to_coco(gt, {image_id: r}))
            rows.append(per_image_ap(dataset, image_id, r, thresholds))
            del r
    coco = evaluate_coco(gt, detections, iou_types=iou_types,
                         image_ids=[gt.coco_image_id(i) for i in ids], plot_dir=plot_dir)
    return {"coco": coco, "per_image": summarise_ap(rows, thresholds),
            "detect_seconds": seconds, "images": len(ids)}


def _fmt(v):
    return "  nan" if v is None or (isinstance(v, float) and math.isnan(v)) else \
        "{:5.3f}".format(v) if v >= 0 else "  -  "


def format_coco_table(coco_results):
    """A printable table of evaluate_coco results (summary and per-category AP)."""
    types = [t for t in ("bbox", "segm") if t in coco_results]
    lines = ["COCO-style evaluation on {} images ({} detections)".format(
        coco_results.get("num_images"), coco_results.get("num_detections"))]
    lines.append("{:<8}".format("metric") + "".join("{:>8}".format(t) for t in types))
    for name in STAT_NAMES[:9]:
        lines.append("{:<8}".format(name) +
                     "".join("{:>8}".format(_fmt(coco_results[t][name])) for t in types))
    if types:
        cats = list(coco_results[types[0]]["per_category"])
        if cats:
            lines.append("")
            header = "{:<24}".format("category (id)") + "".join(
                "{:>10}".format(t + " AP") for t in types) + "".join(
                "{:>10}".format(t + " AP50") for t in types)
            lines.append(header)
            for c in cats:
                label = category_label(c, coco_results[types[0]]["per_category"][c])
                row = "{:<24}".format(label if len(label) <= 24 else label[:15] + "..." +
                                      label[-6:])
                row += "".join("{:>10}".format(_fmt(coco_results[t]["per_category"][c]["AP"]))
                               for t in types)
                row += "".join("{:>10}".format(_fmt(coco_results[t]["per_category"][c]["AP50"]))
                               for t in types)
                lines.append(row)
    return "\n".join(lines)


def format_report(report):
    """A printable report of evaluate_model (or a dict with 'coco'/'per_image' keys)."""
    lines = []
    if "coco" in report:
        lines.append(format_coco_table(report["coco"]))
    if "per_image" in report:
        p = report["per_image"]
        lines.append("")
        lines.append("Per-image (classic compute_ap) on {} images ({} without ground truth "
                     "left out):".format(p["num_images"], p["num_skipped"]))
        lines.append("  mAP @ IoU {:.2f}:        {}".format(p["iou_threshold"], _fmt(p["mAP"])))
        for key in sorted(k for k in p if k.startswith("mAP@")):
            lines.append("  mAP @ IoU {:.2f}:        {}".format(float(key[4:]), _fmt(p[key])))
        lines.append("  mAP @ IoU 0.50:0.95:   {}".format(_fmt(p["mAP_range"])))
    return "\n".join(lines)


def save_report(report, path):
    """Write a report (any of the dicts above) as JSON; NaN becomes null."""
    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (np.floating, float)):
            v = float(v)
            return None if math.isnan(v) else v
        if isinstance(v, np.integer):
            return int(v)
        return v
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".part"
    with open(tmp, "w") as f:
        json.dump(clean(report), f, indent=2)
    os.replace(tmp, path)
    return path
