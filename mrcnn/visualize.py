"""Display and save images, masks, boxes and metrics (matplotlib).

Every function that draws a figure takes an optional ``save_path``: with it, the
figure is written to that file (PNG, by extension) and closed, and no window opens,
which is what you want on a server. Without it, the figure is shown with
``plt.show()`` (a no-op under the Agg backend). Set ``MPLBACKEND=Agg`` on machines
without a display.
"""
import colorsys
import itertools
import random

import matplotlib
import numpy as np

from .metrics import compute_matches


def _plt():
    import matplotlib.pyplot as plt
    return plt


def _finish(fig, save_path, dpi=100, tight=True):
    """Save (and close) or show a figure we created. tight: crop to what is drawn (draws
    the figure twice); a figure laid out by tight_layout needs no crop."""
    plt = _plt()
    if save_path:
        fig.savefig(save_path, dpi=dpi, bbox_inches="tight" if tight else None)
        plt.close(fig)
        return save_path
    if matplotlib.get_backend().lower() != "agg":
        plt.show()
    return None


############################################################
#  Colours and masks
############################################################

def random_colors(N, bright=True, seed=None):
    """N visually distinct colours, as RGB tuples in [0, 1].

    Generated in HSV, then shuffled (with ``seed`` for a repeatable order).
    """
    brightness = 1.0 if bright else 0.7
    hsv = [(i / N, 1, brightness) for i in range(N)]
    colors = list(map(lambda c: colorsys.hsv_to_rgb(*c), hsv))
    rng = random.Random(seed) if seed is not None else random
    rng.shuffle(colors)
    return colors


def apply_mask(image, mask, color, alpha=0.5):
    """Blend ``color`` into ``image`` where ``mask`` is set.

    image: [H, W, 3] (modified in place and returned); mask: [H, W] bool or 0/1;
    color: RGB in [0, 1]; alpha: opacity of the colour.
    """
    for c in range(3):
        image[:, :, c] = np.where(mask == 1,
                                  image[:, :, c] * (1 - alpha) + alpha * color[c] * 255,
                                  image[:, :, c])
    return image


def color_splash(image, masks):
    """The classic colour splash: the image in grayscale, the instances in colour.

    image: [H, W, 3] uint8 RGB; masks: [H, W, N] bool (N may be 0).
    Returns a new [H, W, 3] uint8 image.
    """
    image = np.asarray(image)
    gray = np.dot(image[..., :3].astype(np.float32), [0.299, 0.587, 0.114])
    gray = np.repeat(gray[..., None], 3, axis=2).round().astype(np.uint8)
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[-1] == 0:
        return gray
    keep = masks.any(axis=-1)
    return np.where(keep[..., None], image[..., :3], gray).astype(np.uint8)


def draw_detections(image, boxes, masks, class_ids, class_names, scores=None,
                    show_mask=True, show_bbox=True, alpha=0.45, colors=None):
    """Instances drawn into a copy of the image (masks, boxes, "class score" labels)
    with PIL: fast enough for video, no figure. Returns [H, W, 3] uint8.

    boxes: [N, (y1, x1, y2, x2)] pixels; masks: [H, W, N] bool; class_ids: [N];
    scores: [N] or None. Colours are per class (stable across frames).
    """
    from PIL import Image, ImageDraw
    out = np.array(image[..., :3], dtype=np.float32, copy=True)
    n = len(class_ids)
    palette = colors or random_colors(max(len(class_names), 1), seed=7)
    masks = np.asarray(masks)
    if show_mask and masks.ndim == 3:
        for i in range(min(n, masks.shape[-1])):
            color = np.array(palette[int(class_ids[i]) % len(palette)]) * 255
            m = masks[:, :, i].astype(bool)
            out[m] = out[m] * (1 - alpha) + color * alpha
    pil = Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for i in range(n):
        color = tuple(int(c * 255) for c in palette[int(class_ids[i]) % len(palette)])
        y1, x1, y2, x2 = [int(v) for v in boxes[i]]
        if show_bbox:
            # a box under a pixel (torchvision's rule keeps them) is drawn as one pixel
            draw.rectangle([x1, y1, max(x2 - 1, x1), max(y2 - 1, y1)], outline=color, width=2)
        cid = int(class_ids[i])
        label = class_names[cid] if 0 <= cid < len(class_names) else "class {}".format(cid)
        if scores is not None:
            label = "{} {:.2f}".format(label, float(scores[i]))
        left, top, right, bottom = draw.textbbox((x1 + 2, y1 + 1), label)
        draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=(0, 0, 0))
        draw.text((x1 + 2, y1 + 1), label, fill=(255, 255, 255))
    return np.asarray(pil)


############################################################
#  Images and instances
############################################################

def display_images(images, titles=None, cols=4, cmap=None, norm=None, interpolation=None,
                   save_path=None):
    """Show a grid of images with optional titles.

    images: list of [H, W] or [H, W, 3] arrays; titles: list of strings.
    """
    plt = _plt()
    titles = titles if titles is not None else [""] * len(images)
    rows = len(images) // cols + 1
    fig = plt.figure(figsize=(14, 14 * rows // cols))
    i = 1
    for image, title in zip(images, titles):
        ax = fig.add_subplot(rows, cols, i)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        ax.imshow(np.asarray(image).astype(np.uint8) if np.asarray(image).dtype != bool
                  else image, cmap=cmap, norm=norm, interpolation=interpolation)
        i += 1
    return _finish(fig, save_path)


def display_instances(image, boxes, masks, class_ids, class_names, scores=None, title="",
                      figsize=(16, 16), ax=None, show_mask=True, show_bbox=True,
                      colors=None, captions=None, save_path=None):
    """Draw instances: masks, boxes and "class score" captions.

    image: [H, W, 3] uint8; boxes: [N, (y1, x1, y2, x2)] pixels; masks: [H, W, N] bool;
    class_ids: [N]; class_names: names indexed by class id; scores: [N] or None.
    title: figure title; figsize: (w, h) when a new figure is made; ax: draw here.
    show_mask, show_bbox: draw masks / boxes; colors: one RGB per instance;
    captions: one string per instance instead of "class score".
    save_path: write the figure here (PNG) instead of showing it.
    Returns: the masked image as uint8 [H, W, 3].
    """
    from matplotlib import patches
    from matplotlib.patches import Polygon
    from skimage.measure import find_contours

    plt = _plt()
    boxes = np.asarray(boxes).reshape(-1, 4)
    N = boxes.shape[0]
    masks = np.asarray(masks) if masks is not None else None
    if masks is not None and masks.ndim == 3 and masks.shape[-1] != N:
        raise ValueError("display_instances: {} boxes but {} masks".format(N, masks.shape[-1]))
    if len(class_ids) != N:
        raise ValueError("display_instances: {} boxes but {} class ids".format(N, len(class_ids)))

    own_figure = ax is None
    if own_figure:
        fig, ax = plt.subplots(1, figsize=figsize)
    else:
        fig = ax.figure
    colors = colors or random_colors(N, seed=0)

    height, width = image.shape[:2]
    ax.set_ylim(height + 10, -10)
    ax.set_xlim(-10, width + 10)
    ax.axis("off")
    ax.set_title(title)

    masked_image = np.asarray(image).astype(np.float32).copy()
    for i in range(N):
        color = colors[i]
        if not np.any(boxes[i]):
            continue  # padding or an instance cropped away
        y1, x1, y2, x2 = boxes[i]
        if show_bbox:
            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2,
                                           alpha=0.7, linestyle="dashed",
                                           edgecolor=color, facecolor="none"))
        if captions is None:
            class_id = int(class_ids[i])
            label = class_names[abs(class_id)] if abs(class_id) < len(class_names) \
                else str(class_id)
            caption = "{} {:.3f}".format(label, scores[i]) if scores is not None else label
        else:
            caption = captions[i]
        ax.text(x1, y1 + 8, caption, color="w", size=11, backgroundcolor="none")

        if masks is None or masks.ndim != 3:
            continue
        mask = masks[:, :, i]
        if show_mask:
            masked_image = apply_mask(masked_image, mask, color)
        # Outline: pad so that masks touching the image border close their contour
        padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=np.uint8)
        padded[1:-1, 1:-1] = mask
        for verts in find_contours(padded, 0.5):
            verts = np.fliplr(verts) - 1  # (y, x) to (x, y), undo the padding
            ax.add_patch(Polygon(verts, facecolor="none", edgecolor=color))
    ax.imshow(masked_image.astype(np.uint8))
    if own_figure:
        _finish(fig, save_path)
    elif save_path:
        fig.savefig(save_path, bbox_inches="tight")
    return masked_image.astype(np.uint8)


def display_differences(image, gt_box, gt_class_id, gt_mask,
                        pred_box, pred_class_id, pred_score, pred_mask,
                        class_names, title="", ax=None, show_mask=True, show_box=True,
                        iou_threshold=0.5, score_threshold=0.5, save_path=None):
    """Ground truth (green) and predictions (red) on one image, with match IoUs."""
    gt_match, pred_match, overlaps = compute_matches(
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
        iou_threshold=iou_threshold, score_threshold=score_threshold)
    order = np.argsort(np.asarray(pred_score))[::-1]
    pred_box = np.asarray(pred_box)[order]
    pred_class_id = np.asarray(pred_class_id)[order]
    pred_score = np.asarray(pred_score)[order]
    pred_mask = np.asarray(pred_mask)[..., order]
    colors = [(0, 1, 0, .8)] * len(gt_match) + [(1, 0, 0, 1)] * len(pred_match)
    class_ids = np.concatenate([gt_class_id, pred_class_id])
    scores = np.concatenate([np.zeros([len(gt_match)]), pred_score])
    boxes = np.concatenate([gt_box, pred_box])
    masks = np.concatenate([gt_mask, pred_mask], axis=-1)
    captions = ["" for _ in gt_match] + [
        "{:.2f} / {:.2f}".format(
            pred_score[i],
            (overlaps[i, int(pred_match[i])] if pred_match[i] > -1
             else (overlaps[i].max() if overlaps.shape[1] else 0.0)))
        for i in range(len(pred_match))]
    title = title or "Ground Truth and Detections\n GT=green, pred=red, captions: score/IoU"
    return display_instances(image, boxes, masks, class_ids, class_names, scores, ax=ax,
                             show_bbox=show_box, show_mask=show_mask, colors=colors,
                             captions=captions, title=title, save_path=save_path)


def draw_box(image, box, color):
    """Draw a 1-pixel box outline into ``image`` (in place).

    box: (y1, x1, y2, x2) pixels, y2/x2 inside here; color: a value per channel."""
    y1, x1, y2, x2 = [int(v) for v in box]
    image[y1:y1 + 2, x1:x2] = color
    image[y2:y2 + 2, x1:x2] = color
    image[y1:y2, x1:x1 + 2] = color
    image[y1:y2, x2:x2 + 2] = color
    return image


def draw_rois(image, rois, refined_rois, mask, class_ids, class_names, limit=10,
              save_path=None):
    """Anchors/proposals (dashed) and their refinements (solid) for positive ROIs.

    rois: [N, (y1, x1, y2, x2)]; refined_rois: [N, 4]; mask: [N, H, W] mask targets;
    class_ids: [N] (0 = background, not drawn); limit: how many ROIs to draw.
    """
    from matplotlib import lines, patches

    plt = _plt()
    masked_image = np.asarray(image).astype(np.float32).copy()
    ids = np.arange(rois.shape[0], dtype=np.int32)
    ids = np.random.RandomState(0).choice(ids, limit, replace=False) \
        if ids.shape[0] > limit else ids
    fig, ax = plt.subplots(1, figsize=(12, 12))
    if rois.shape[0] > limit:
        ax.set_title("Showing {} random ROIs out of {}".format(len(ids), rois.shape[0]))
    else:
        ax.set_title("{} ROIs".format(len(ids)))
    ax.set_ylim(image.shape[0] + 20, -20)
    ax.set_xlim(-50, image.shape[1] + 20)
    ax.axis("off")
    colors = random_colors(len(ids), seed=0)
    for i, id in enumerate(ids):
        color = colors[i]
        class_id = class_ids[id]
        y1, x1, y2, x2 = rois[id]
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2,
                                       edgecolor=color if class_id else "gray",
                                       facecolor="none", linestyle="dashed"))
        if class_id:
            ry1, rx1, ry2, rx2 = refined_rois[id]
            ax.add_patch(patches.Rectangle((rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2,
                                           edgecolor=color, facecolor="none"))
            ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
            ax.text(rx1, ry1 + 8, "{}".format(class_names[class_id]), color="w", size=11,
                    backgroundcolor="none")
            m = mask[id]
            from .masks import unmold_mask
            full = unmold_mask(m, [int(v) for v in rois[id]], image.shape)
            masked_image = apply_mask(masked_image, full, color)
    ax.imshow(masked_image.astype(np.uint8))
    return _finish(fig, save_path)


def draw_boxes(image, boxes=None, refined_boxes=None, masks=None, captions=None,
               visibilities=None, title="", ax=None, save_path=None):
    """Draw boxes, optional refined boxes, masks and captions.

    boxes: [N, (y1, x1, y2, x2)] (dashed when refined_boxes is given);
    refined_boxes: [N, 4] (solid); masks: [H, W, N]; captions: N strings;
    visibilities: N values in {0: hidden, 1: faint, 2: strong}.
    """
    from matplotlib import lines, patches

    plt = _plt()
    if boxes is None and refined_boxes is None:
        raise ValueError("draw_boxes: give boxes or refined_boxes")
    N = boxes.shape[0] if boxes is not None else refined_boxes.shape[0]
    own_figure = ax is None
    if own_figure:
        fig, ax = plt.subplots(1, figsize=(12, 12))
    else:
        fig = ax.figure
    colors = random_colors(N, seed=0)
    margin = image.shape[0] // 10
    ax.set_ylim(image.shape[0] + margin, -margin)
    ax.set_xlim(-margin, image.shape[1] + margin)
    ax.axis("off")
    ax.set_title(title)
    masked_image = np.asarray(image).astype(np.float32).copy()
    for i in range(N):
        visibility = visibilities[i] if visibilities is not None else 1
        if visibility == 0:
            color, style, alpha = "gray", "dotted", 0.5
        elif visibility == 1:
            color, style, alpha = colors[i], "dotted", 1
        else:
            color, style, alpha = colors[i], "solid", 1
        if boxes is not None:
            if not np.any(boxes[i]):
                continue
            y1, x1, y2, x2 = boxes[i]
            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2,
                                           alpha=alpha, linestyle=style, edgecolor=color,
                                           facecolor="none"))
        if refined_boxes is not None and visibility > 0:
            ry1, rx1, ry2, rx2 = refined_boxes[i].astype(np.int32)
            ax.add_patch(patches.Rectangle((rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2,
                                           edgecolor=color, facecolor="none"))
            if boxes is not None:
                ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
        if captions is not None:
            caption = captions[i]
            if refined_boxes is not None:
                y1, x1, y2, x2 = ry1, rx1, ry2, rx2
            ax.text(x1, y1, caption, size=11, verticalalignment="top", color="w",
                    backgroundcolor="none",
                    bbox={"facecolor": color, "alpha": 0.5, "pad": 2, "edgecolor": "none"})
        if masks is not None:
            masked_image = apply_mask(masked_image, masks[:, :, i], color)
    ax.imshow(masked_image.astype(np.uint8))
    if own_figure:
        return _finish(fig, save_path)
    if save_path:
        fig.savefig(save_path, bbox_inches="tight")
    return save_path


def display_top_masks(image, mask, class_ids, class_names, limit=4, save_path=None):
    """The image and the union masks of its ``limit`` most common classes."""
    to_display = [image]
    titles = ["H x W={}x{}".format(image.shape[0], image.shape[1])]
    class_ids = np.asarray(class_ids)
    unique_class_ids = np.unique(class_ids)
    mask_area = [np.sum(mask[:, :, np.where(class_ids == i)[0]]) for i in unique_class_ids]
    top_ids = [v[0] for v in sorted(zip(unique_class_ids, mask_area),
                                    key=lambda r: r[1], reverse=True) if v[1] > 0]
    for i in range(limit):
        class_id = top_ids[i] if i < len(top_ids) else -1
        m = mask[:, :, np.where(class_ids == class_id)[0]]
        m = np.sum(m * np.arange(1, m.shape[-1] + 1), -1)
        to_display.append(m)
        titles.append(class_names[abs(class_id)] if class_id != -1 else "-")
    return display_images(to_display, titles=titles, cols=limit + 1, cmap="Blues_r",
                          save_path=save_path)


############################################################
#  Metrics
############################################################

def plot_precision_recall(AP, precisions, recalls, title=None, ax=None, save_path=None):
    """The precision-recall curve, as ``compute_ap`` returned it."""
    plt = _plt()
    own_figure = ax is None
    if own_figure:
        fig, ax = plt.subplots(1, figsize=(6, 5))
    else:
        fig = ax.figure
    ax.set_title(title or "Precision-Recall Curve. AP@50 = {:.3f}".format(AP))
    ax.set_ylim(0, 1.1)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.plot(recalls, precisions)
    if own_figure:
        return _finish(fig, save_path)
    if save_path:
        fig.savefig(save_path, bbox_inches="tight")
    return save_path


def plot_loss_history(history, steps_csv=None, save_path=None):
    """Training curves: one panel per loss (the total and the five), the per-step
    values of losses.csv in a light line, the training and validation means per epoch
    as points and lines. x is the epoch (a step k of epoch e sits inside (e-1, e]).

    history: history.json's entries (dicts with "epoch", "loss", "val_loss", ...).
    steps_csv: the path of losses.csv (optional).
    """
    import csv
    import os
    from .config import LOSS_NAMES
    plt = _plt()
    names = ("loss",) + tuple(LOSS_NAMES)
    steps = []
    if steps_csv and os.path.isfile(steps_csv):
        with open(steps_csv, newline="") as f:
            steps = [r for r in csv.DictReader(f) if r.get("step")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, name in zip(axes.ravel(), names):
        if steps:
            per_epoch = {}
            for r in steps:
                per_epoch.setdefault(int(r["epoch"]), []).append(r)
            xs, ys = [], []
            for epoch, rows in sorted(per_epoch.items()):
                for i, r in enumerate(rows):
                    xs.append(epoch - 1 + (i + 1) / len(rows))
                    ys.append(float(r[name]))
            ax.plot(xs, ys, color="#9ecae1", lw=0.8, label="step")
        for key, colour, label in ((name, "#08519c", "train"), ("val_" + name, "#e6550d",
                                                                  "validation")):
            pts = [(h["epoch"], h[key]) for h in history if key in h]
            if pts:
                ax.plot(*zip(*pts), "o-", color=colour, ms=3, lw=1.2, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes.ravel()[0].legend(loc="upper right", fontsize=8)
    # Fixed margins, not tight_layout: the figure is redrawn while training, and
    # tight_layout's extra draw to measure the labels was half of each redraw's time
    # (bench/RESULTS.md#per-image-graphs); one draw, not the two of a cropped save
    fig.subplots_adjust(left=0.05, right=0.985, bottom=0.07, top=0.955, wspace=0.18,
                        hspace=0.32)
    return _finish(fig, save_path, tight=False)


def plot_overlaps(gt_class_ids, pred_class_ids, pred_scores, overlaps, class_names,
                  threshold=0.5, save_path=None):
    """A grid of IoUs between ground-truth (rows) and predicted (columns) instances.

    overlaps: [len(pred), len(gt)] as compute_matches / compute_ap return it.
    """
    plt = _plt()
    gt_class_ids = np.asarray(gt_class_ids)[np.asarray(gt_class_ids) != 0]
    pred_class_ids = np.asarray(pred_class_ids)[np.asarray(pred_class_ids) != 0]
    fig = plt.figure(figsize=(12, 10))
    plt.imshow(overlaps, interpolation="nearest", cmap=plt.cm.Blues)
    plt.yticks(np.arange(len(pred_class_ids)),
               ["{} ({:.2f})".format(class_names[int(id)], pred_scores[i])
                for i, id in enumerate(pred_class_ids)])
    plt.xticks(np.arange(len(gt_class_ids)),
               [class_names[int(id)] for id in gt_class_ids], rotation=90)
    thresh = overlaps.max() / 2. if overlaps.size else 0
    for i, j in itertools.product(range(overlaps.shape[0]), range(overlaps.shape[1])):
        text = ""
        if overlaps[i, j] > threshold:
            text = "match" if gt_class_ids[j] == pred_class_ids[i] else "wrong"
        color = ("white" if overlaps[i, j] > thresh
                 else "black" if overlaps[i, j] > 0 else "grey")
        plt.text(j, i, "{:.3f}\n{}".format(overlaps[i, j], text),
                 horizontalalignment="center", verticalalignment="center",
                 fontsize=9, color=color)
    plt.tight_layout()
    plt.xlabel("Ground Truth")
    plt.ylabel("Predictions")
    return _finish(fig, save_path)


def plot_coco_pr_curves(coco_eval, class_names=None, save_path=None, title=None):
    """Precision-recall curves per IoU threshold from an accumulated pycocotools COCOeval.

    coco_eval: a COCOeval after evaluate() and accumulate().
    """
    plt = _plt()
    precision = coco_eval.eval["precision"]  # [T, R, K, A, M]
    recall = coco_eval.params.recThrs
    fig, ax = plt.subplots(1, figsize=(7, 5))
    for t, iou in enumerate(coco_eval.params.iouThrs):
        if t not in (0, 5, 9) and len(coco_eval.params.iouThrs) == 10:
            continue
        p = precision[t, :, :, 0, -1]
        p = np.where(p > -1, p, np.nan)
        with np.errstate(all="ignore"):
            curve = np.nanmean(p, axis=1) if p.size else p
        ax.plot(recall, curve, label="IoU {:.2f}".format(iou))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (mean over categories)")
    ax.set_title(title or "Precision-recall ({})".format(coco_eval.params.iouType))
    ax.legend()
    return _finish(fig, save_path)


############################################################
#  Tables and weights
############################################################

def display_table(table, save_path=None):
    """Render a list of rows as an HTML table in a notebook, or print it.

    With save_path, write the text table there as well.
    """
    text_rows = ["  ".join("{:<20}".format(str(c)) for c in row) for row in table]
    text = "\n".join(text_rows)
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
        if get_ipython() is not None:
            html = "<table>" + "".join(
                "<tr>" + "".join("<td>{}</td>".format(c) for c in row) + "</tr>"
                for row in table) + "</table>"
            display(HTML(html))
        else:
            print(text)
    except ImportError:
        print(text)
    if save_path:
        with open(save_path, "w") as f:
            f.write(text + "\n")
    return text


def weight_stats(model):
    """Rows of (weight name, shape, min, max, std) for every weight of a Keras model,
    with a warning mark on suspicious values (all zeros, NaN, huge std)."""
    rows = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for w in model.weights:
        value = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
        name = getattr(w, "path", None) or getattr(w, "name", "?")
        alarm = ""
        if value.size and (value.min() == value.max() and "bias" not in name
                           and "beta" not in name and "moving_mean" not in name):
            alarm = " *** dead?"
        if value.size and (np.isnan(value).any() or value.std() > 1000):
            alarm = " *** Overflow?"
        rows.append([name + alarm, str(value.shape),
                     "{:+9.4f}".format(value.min()) if value.size else "-",
                     "{:+10.4f}".format(value.max()) if value.size else "-",
                     "{:+9.4f}".format(value.std()) if value.size else "-"])
    return rows


def display_weight_stats(model, save_path=None):
    """Print (or save) statistics of a model's weights (accepts MaskRCNN or a Keras model)."""
    keras_model = getattr(model, "keras_model", model)
    return display_table(weight_stats(keras_model), save_path=save_path)


__all__ = ["random_colors", "apply_mask", "display_images", "display_instances",
           "display_differences", "draw_box", "draw_rois", "draw_boxes",
           "display_top_masks", "plot_precision_recall", "plot_overlaps",
           "plot_coco_pr_curves", "display_table", "weight_stats", "display_weight_stats"]
