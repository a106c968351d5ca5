"""Today's float32 detections, kept to check that speed work leaves them unchanged.

A ResNet-50 Mask R-CNN (the classic graph, every stage of it) gets weights drawn from a
seed made of each weight's own name, so adding or reordering layers elsewhere does not
change them; it detects on a seeded synthetic shapes image with 100 detections (no
confidence floor). ``tests/data/float32_detections.npz`` holds the result, written by

    .venv/bin/python tests/golden_detections.py --write

Rewrite it only when a change is meant to change detections, and say so in the commit.
tests/test_float32_unchanged.py compares against it.
"""
import argparse
import os
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "data", "float32_detections.npz")
SIZE = 256


def golden_config():
    """Every value the detections depend on, written out (not from tiny_configs, so that
    changing the tests' presets does not move the reference)."""
    from mrcnn.config import Config

    class GoldenConfig(Config):
        NAME = "golden"
        BACKBONE = "resnet50"
        NUM_CLASSES = 1 + 7
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = SIZE
        IMAGE_MAX_DIM = SIZE
        IMAGE_RESIZE_MODE = "square"
        RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
        POST_NMS_ROIS_INFERENCE = 400
        DETECTION_MAX_INSTANCES = 100
        DETECTION_MIN_CONFIDENCE = 0.0
        DETECTION_NMS_THRESHOLD = 0.3
        TOP_DOWN_PYRAMID_SIZE = 128
        FPN_CLASSIF_FC_LAYERS_SIZE = 256
        MASK_HEAD_CHANNELS = 64
        COMPUTE_DTYPE = "float32"

    return GoldenConfig()


# kernels of the layers that make logits and box deltas are scaled down, so that scores
# spread over (0, 1) instead of saturating into ties and boxes stay near their proposals
KERNEL_SCALE = {"rpn_class_raw": 0.02, "rpn_bbox_pred": 0.02, "mrcnn_class_logits": 0.1,
                "mrcnn_bbox_fc": 0.02}


def named_value(path, shape):
    """The value of the weight called ``path``: He-normal kernels, frozen-BN statistics
    near the identity, small biases; drawn from a seed made of the name."""
    rng = np.random.RandomState(zlib.crc32(path.encode("utf-8")))
    parts = path.split("/")
    leaf = parts[-1]
    if leaf == "kernel":
        fan_in = int(np.prod(shape[:-1]))
        scale = KERNEL_SCALE.get(parts[-2], 1.0) if len(parts) > 1 else 1.0
        return rng.normal(0, scale * np.sqrt(2.0 / fan_in), shape)
    if leaf == "gamma":
        return rng.uniform(0.3, 0.7, shape)
    if leaf == "moving_variance":
        return rng.uniform(0.8, 1.2, shape)
    if parts[-2:] == ["mrcnn_mask", "bias"]:
        # masks cover most of their box: the smallest has 120 pixels, so one pixel that
        # another CPU's rounding flips at the 0.5 threshold still leaves IoU >= 0.99
        return rng.normal(2.0, 0.05, shape)
    return rng.normal(0, 0.05, shape)    # bias, beta, moving_mean


def golden_model(model_dir):
    import keras
    from mrcnn import model as modellib
    model = modellib.MaskRCNN("inference", golden_config(), model_dir)
    for w in model.keras_model.weights:
        w.assign(named_value(w.path, tuple(w.shape)).astype(keras.backend.standardize_dtype(
            w.dtype)))
    return model


def golden_image():
    """A seeded synthetic image: shapes on a coloured background, plus mild noise."""
    sys.path.insert(0, os.path.dirname(HERE))
    from samples.shapes.shapes import ShapesDataset
    d = ShapesDataset()
    d.load_shapes(1, SIZE, SIZE, seed=7)
    d.prepare()
    image = d.load_image(0).astype(np.int16)
    noise = np.random.RandomState(7).randint(-12, 13, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def detect(model_dir):
    r = golden_model(model_dir).detect([golden_image()])[0]
    return {"rois": r["rois"], "class_ids": r["class_ids"], "scores": r["scores"],
            "masks": r["masks"]}


def save(result, path=GOLDEN):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    masks = result["masks"]
    np.savez_compressed(path, rois=result["rois"], class_ids=result["class_ids"],
                        scores=result["scores"], mask_shape=np.array(masks.shape),
                        masks=np.packbits(masks.astype(bool).ravel()))


def load(path=GOLDEN):
    with np.load(path) as f:
        shape = tuple(f["mask_shape"])
        masks = np.unpackbits(f["masks"])[:int(np.prod(shape))].reshape(shape).astype(bool)
        return {"rois": f["rois"], "class_ids": f["class_ids"], "scores": f["scores"],
                "masks": masks}


def match(reference, result, box_px=1, score_tol=1e-4, min_mask_iou=0.99):
    """Pairs each reference detection with one of ``result``'s: same class, every box side
    within ``box_px``, score within ``score_tol``, mask IoU >= ``min_mask_iou``. Detections
    whose scores tie may come out in either order, so they are matched, not indexed.
    Returns (pairs, unmatched reference indices)."""
    used, pairs, missing = set(), [], []
    for i in range(len(reference["scores"])):
        found = None
        for j in range(len(result["scores"])):
            if j in used or result["class_ids"][j] != reference["class_ids"][i]:
                continue
            if abs(float(result["scores"][j]) - float(reference["scores"][i])) > score_tol:
                continue
            if np.abs(result["rois"][j].astype(int) - reference["rois"][i].astype(int)).max() \
                    > box_px:
                continue
            a, b = reference["masks"][..., i], result["masks"][..., j]
            union = np.logical_or(a, b).sum()
            iou = np.logical_and(a, b).sum() / union if union else 1.0
            if iou < min_mask_iou:
                continue
            found = j
            break
        if found is None:
            missing.append(i)
        else:
            used.add(found)
            pairs.append((i, found))
    return pairs, missing


def main(argv=None):
    import tempfile
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write", action="store_true", help="write " + GOLDEN)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        result = detect(d)
    s = result["scores"]
    print("{} detections, classes {}, scores {:.4f}..{:.4f}, smallest gap between scores "
          "{:.2e}, mask pixels min {} p10 {} median {} max {}".format(
              len(s), np.bincount(result["class_ids"]).tolist(), s.min(), s.max(),
              np.diff(np.sort(s)).min() if len(s) > 1 else 0,
              *np.percentile(result["masks"].sum(axis=(0, 1)), [0, 10, 50, 100]).astype(int)))
    if args.write:
        save(result)
        print("wrote", GOLDEN)


if __name__ == "__main__":
    main()
