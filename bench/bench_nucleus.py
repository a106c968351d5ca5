"""Nucleus from scratch on the CPU: mrcnn vs torchvision maskrcnn_resnet50_fpn, equal time.

    .venv/bin/python bench/bench_nucleus.py --minutes 12 [--torch-python .venv-torch/bin/python]

Both sides train from random weights (no pretrained backbone) on the 52 training images
of samples/nucleus's fixed split, for the same wall-clock budget (model building and
graph tracing included), then predict the 13 validation images at their own
resolution. The parent scores both sets of predictions with the same code
(mrcnn.evaluate: pycocotools segm/bbox AP, and the per-image compute_ap).

Matched settings: ResNet-50 FPN with trainable batch norm; random 256x256 crops with
a horizontal flip; batch 2; SGD lr 0.01, momentum 0.9, weight decay 1e-4 (mrcnn: the
classic size-normalised L2 term; torchvision: SGD's decay), gradient
norm clipped at 5; anchors 8-128 px with ratios 0.5/1/2; 128 RPN anchors and 128 ROIs
per image for training, at most 25% positive, GT boxes among the proposals;
1000/2000 proposals (train/test); up to 400 detections, score threshold 0; masks at 0.5.
Each side keeps its own head design: mrcnn the nucleus sample's (conv box head, a
128-channel mask head), torchvision its default (two-FC box head, 256-channel mask head).
"""
import argparse
import datetime
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import _child  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data", "nucleus_dsb2018", "stage1_test")
CROP = 256
LR = 0.01


def split(data):
    sys.path.insert(0, ROOT)
    from samples.nucleus.nucleus import VAL_IDS
    ids = sorted(d for d in os.listdir(data) if os.path.isdir(os.path.join(data, d, "images")))
    return [i for i in ids if i not in set(VAL_IDS)], [i for i in ids if i in set(VAL_IDS)]


def save_predictions(path, preds):
    """preds: {image id: (boxes y1x1y2x2, class ids, scores, masks [H, W, N] bool)}."""
    import numpy as np
    arrays = {}
    for k, (boxes, ids, scores, masks) in preds.items():
        arrays[k + "/boxes"] = np.asarray(boxes, np.float32).reshape(-1, 4)
        arrays[k + "/ids"] = np.asarray(ids, np.int32)
        arrays[k + "/scores"] = np.asarray(scores, np.float32)
        arrays[k + "/shape"] = np.array(masks.shape, np.int64)
        arrays[k + "/masks"] = np.packbits(masks.astype(bool).ravel())
    np.savez_compressed(path, **arrays)


def load_predictions(path):
    import numpy as np
    data = np.load(path)
    out = {}
    for key in {k.split("/")[0] for k in data.files}:
        shape = tuple(data[key + "/shape"])
        masks = np.unpackbits(data[key + "/masks"])[:int(np.prod(shape))].reshape(shape)
        out[key] = {"rois": data[key + "/boxes"].round().astype(np.int32),
                    "class_ids": data[key + "/ids"], "scores": data[key + "/scores"],
                    "masks": masks.astype(bool)}
    return out


# ---------------------------------------------------------------- mrcnn side

def child_mrcnn(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.time()
    sys.path.insert(0, ROOT)
    import imgaug.augmenters as iaa
    import keras
    from mrcnn import model as modellib
    from samples.nucleus.nucleus import NucleusConfig, NucleusInferenceConfig, load_nucleus

    class Train(NucleusConfig):
        IMAGE_MIN_DIM = IMAGE_MAX_DIM = CROP
        DETECTION_MIN_CONFIDENCE = 0.0
        LEARNING_RATE = LR
        STEPS_PER_EPOCH = 50
        VALIDATION_STEPS = 1

    class Infer(NucleusInferenceConfig):
        DETECTION_MIN_CONFIDENCE = 0.0

    train = load_nucleus(args.data, "train")
    val = load_nucleus(args.data, "val")
    logs = tempfile.mkdtemp(prefix="nucleus-mrcnn-")
    model = modellib.MaskRCNN("training", Train(), logs)
    budget = args.minutes * 60
    steps = {"n": 0}

    class Budget(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps["n"] += 1
            if time.time() - t0 > budget:
                self.model.stop_training = True

    # one train() call (one graph trace); the callback ends it when the time is up, and
    # the checkpoint of that last, partial epoch is what we evaluate
    model.train(train, None, LR, 100000, "all", augmentation=iaa.Fliplr(0.5),
                custom_callbacks=[Budget()], seed=0, verbose=2)
    train_seconds = time.time() - t0
    infer = modellib.MaskRCNN("inference", Infer(), logs)
    infer.load_weights(model.find_last(), by_name=True)
    preds = {}
    for i in val.image_ids:
        r = infer.detect([val.load_image(i)], verbose=0)[0]
        preds[val.image_reference(i)] = (r["rois"], r["class_ids"], r["scores"], r["masks"])
    save_predictions(args.out, preds)
    return {"train_seconds": train_seconds, "steps": steps["n"], "images_seen": 2 * steps["n"]}


# ---------------------------------------------------------------- torchvision side

def read_sample(data, image_id):
    import numpy as np
    from PIL import Image
    with Image.open(os.path.join(data, image_id, "images", image_id + ".png")) as im:
        image = np.asarray(im.convert("RGB"))
    mask_dir = os.path.join(data, image_id, "masks")
    masks = []
    for name in sorted(os.listdir(mask_dir)):
        with Image.open(os.path.join(mask_dir, name)) as im:
            masks.append(np.asarray(im.convert("L")) > 0)
    return image, np.stack(masks)


def child_torch(args):
    t0 = time.time()
    import numpy as np
    import torch
    import torchvision
    from torchvision.models.detection import maskrcnn_resnet50_fpn
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    rng = np.random.RandomState(0)
    train_ids, val_ids = json.loads(args.split)
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,), (64,), (128,)),
                              aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2,
                                  trainable_backbone_layers=5, rpn_anchor_generator=anchors,
                                  min_size=CROP, max_size=CROP, rpn_batch_size_per_image=128,
                                  box_batch_size_per_image=128, rpn_post_nms_top_n_train=1000,
                                  rpn_post_nms_top_n_test=2000, box_detections_per_img=400,
                                  box_score_thresh=0.0,
                                  # pixels 0-255 minus the mean, as mrcnn's MEAN_PIXEL does
                                  image_mean=[43.53, 39.56, 48.22], image_std=[1.0] * 3)
    cache = {i: read_sample(args.data, i) for i in train_ids}

    def crop():
        while True:
            image, masks = cache[train_ids[rng.randint(len(train_ids))]]
            h, w = image.shape[:2]
            if min(h, w) < CROP:  # as mrcnn's crop mode: scale up to the crop size first
                s = CROP / min(h, w)
                size = (int(round(w * s)), int(round(h * s)))
                from PIL import Image
                image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
                masks = np.stack([np.asarray(Image.fromarray(m).resize(size, Image.NEAREST))
                                  for m in masks])
                h, w = image.shape[:2]
            y = rng.randint(0, h - CROP + 1)
            x = rng.randint(0, w - CROP + 1)
            img = image[y:y + CROP, x:x + CROP]
            m = masks[:, y:y + CROP, x:x + CROP]
            m = m[m.reshape(len(m), -1).any(axis=1)]
            if not len(m):
                continue
            if rng.rand() < 0.5:
                img, m = img[:, ::-1], m[:, :, ::-1]
            ys = [np.where(k.any(axis=1))[0] for k in m]
            xs = [np.where(k.any(axis=0))[0] for k in m]
            boxes = [[xx[0], yy[0], xx[-1] + 1, yy[-1] + 1] for yy, xx in zip(ys, xs)]
            return (torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float(),
                    {"boxes": torch.tensor(boxes, dtype=torch.float32),
                     "labels": torch.ones(len(m), dtype=torch.int64),
                     "masks": torch.from_numpy(np.ascontiguousarray(m).astype(np.uint8))})

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=LR, momentum=0.9, weight_decay=1e-4)
    model.train()
    budget = args.minutes * 60
    steps = 0
    while time.time() - t0 < budget:
        batch = [crop(), crop()]
        losses = model([b[0] for b in batch], [b[1] for b in batch])
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise RuntimeError("torchvision loss is {} at step {}".format(loss.item(), steps))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        steps += 1
        if steps % 50 == 0:
            print("step", steps, {k: round(v.item(), 3) for k, v in losses.items()}, flush=True)
    train_seconds = time.time() - t0
    model.eval()
    preds = {}
    with torch.no_grad():
        for image_id in val_ids:
            image, _ = read_sample(args.data, image_id)
            h, w = image.shape[:2]
            model.transform.min_size = (min(h, w),)  # predict at the image's own size
            model.transform.max_size = max(h, w)
            out = model([torch.from_numpy(image.copy()).permute(2, 0, 1).float()])[0]
            b = out["boxes"].numpy()
            masks = (out["masks"][:, 0].numpy() > 0.5).transpose(1, 2, 0)
            preds[image_id] = (b[:, [1, 0, 3, 2]], out["labels"].numpy(),
                               out["scores"].numpy(), masks)
    save_predictions(args.out, preds)
    return {"train_seconds": train_seconds, "steps": steps, "images_seen": 2 * steps,
            "torch": torch.__version__, "torchvision": torchvision.__version__}


# ---------------------------------------------------------------- parent

def score(predictions_path, data):
    sys.path.insert(0, ROOT)
    from mrcnn import evaluate
    from samples.nucleus.nucleus import load_nucleus
    val = load_nucleus(data, "val")
    by_ref = {val.image_reference(i): i for i in val.image_ids}
    results = {by_ref[k]: r for k, r in load_predictions(predictions_path).items()}
    ids = sorted(results)
    gt = evaluate.ground_truth_from_dataset(val, ids)
    coco = evaluate.evaluate_coco(gt, evaluate.detections_to_coco(gt, results),
                                  image_ids=[gt.coco_image_id(i) for i in ids])
    per = evaluate.calculate_ap(val, results, ids)
    return {"segm_AP": coco["segm"]["AP"], "segm_AP50": coco["segm"]["AP50"],
            "bbox_AP": coco["bbox"]["AP"], "bbox_AP50": coco["bbox"]["AP50"],
            "mAP50_compute_ap": per["mAP"], "mAP_range_compute_ap": per["mAP_range"],
            "detections": coco["num_detections"]}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=12.0, help="training budget per side")
    p.add_argument("--data", default=DATA)
    p.add_argument("--torch-python", default=os.path.join(ROOT, ".venv-torch", "bin", "python"))
    p.add_argument("--only", choices=["mrcnn", "torchvision"], default=None)
    p.add_argument("--child", choices=["mrcnn", "torch"], default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--split", default=None)
    args = p.parse_args(argv)
    if args.child:
        result = (child_mrcnn if args.child == "mrcnn" else child_torch)(args)
        print("RESULT " + json.dumps(result))
        return result
    train_ids, val_ids = split(args.data)
    tmp = tempfile.mkdtemp(prefix="bench-nucleus-")
    rows = {}
    sides = [("mrcnn", sys.executable, "mrcnn"), ("torchvision", args.torch_python, "torch")]
    for label, python, child in sides:
        if args.only and args.only != label:
            continue
        out = os.path.join(tmp, label + ".npz")
        cmd = [python, os.path.abspath(__file__), "--child", child, "--minutes",
               str(args.minutes), "--data", args.data, "--out", out,
               "--split", json.dumps([train_ids, val_ids])]
        t = time.time()
        result = _child.run_child(cmd, label)
        result.update(score(out, args.data))
        result["wall_seconds"] = time.time() - t
        rows[label] = result
        print(label, json.dumps(result), flush=True)
    print("\nNucleus from scratch, {} min of training each, {} CPUs, {}".format(
        args.minutes, os.cpu_count(), datetime.date.today()))
    print("| | steps (batch 2) | train s | mask AP | mask AP50 | box AP | box AP50 | "
          "compute_ap mAP@0.5 | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        print("| {} | {} | {:.0f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.0f} |".format(
            label, r["steps"], r["train_seconds"], r["segm_AP"], r["segm_AP50"], r["bbox_AP"],
            r["bbox_AP50"], r["mAP50_compute_ap"], r["peak_rss_mb"]))
    return rows


if __name__ == "__main__":
    main()
