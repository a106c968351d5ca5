"""Instance-mask helpers (NumPy).

Instance masks are ``[height, width, num_instances]`` bool arrays; ``class_ids`` is an
int32 ``[num_instances]`` array (negative ids mark crowd regions, as in COCO).
"""
import warnings

import numpy as np
import scipy.ndimage

from .imageops import resize


def compute_overlaps_masks(masks1, masks2):
    """IoU overlaps between two sets of masks.

    masks1: [height, width, N1]; masks2: [height, width, N2]. Values > 0.5 are inside.
    Returns: float32 [N1, N2]. The IoU is computed in float32, as the classic code does
    (ties at thresholds depend on it). Two empty masks have IoU 0.
    """
    masks1 = np.asarray(masks1)
    masks2 = np.asarray(masks2)
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]), dtype=np.float32)
    m1 = np.reshape(masks1 > .5, (-1, masks1.shape[-1])).astype(np.float32)
    m2 = np.reshape(masks2 > .5, (-1, masks2.shape[-1])).astype(np.float32)
    area1 = np.sum(m1, axis=0)
    area2 = np.sum(m2, axis=0)
    intersections = np.dot(m1.T, m2)
    union = area1[:, None] + area2[None, :] - intersections
    with np.errstate(invalid="ignore", divide="ignore"):
        overlaps = intersections / union
    overlaps[union == 0] = 0
    return overlaps


def resize_mask(mask, scale, padding, crop=None):
    """Resize masks with the scale and padding that ``resize_image`` returned.

    mask: [height, width, num_instances]; scale: float; padding: [(top, bottom),
    (left, right), (0, 0)]; crop: (y, x, height, width) or None.
    Nearest-neighbour, so the masks stay binary.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = scipy.ndimage.zoom(mask, zoom=[scale, scale, 1], order=0)
    if crop is not None:
        y, x, h, w = crop
        mask = mask[y:y + h, x:x + w]
    else:
        mask = np.pad(mask, padding, mode="constant", constant_values=0)
    return mask


def minimize_mask(bbox, mask, mini_shape):
    """Crop each mask to its box and resize it to ``mini_shape`` to save memory.

    bbox: [N, (y1, x1, y2, x2)]; mask: [height, width, N]; mini_shape: (h, w).
    Returns: bool [h, w, N].
    """
    mini_mask = np.zeros(tuple(mini_shape) + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        m = mask[:, :, i].astype(bool)
        y1, x1, y2, x2 = bbox[i][:4]
        m = m[y1:y2, x1:x2]
        if m.size == 0:
            raise ValueError("minimize_mask: instance {} has a box {} with area zero; "
                             "drop empty masks before minimising them".format(i, list(bbox[i][:4])))
        m = resize(m, mini_shape)
        mini_mask[:, :, i] = np.around(m).astype(bool)
    return mini_mask


def expand_mask(bbox, mini_mask, image_shape):
    """Put mini-masks (from ``minimize_mask``) back at full image size.

    bbox: [N, (y1, x1, y2, x2)]; mini_mask: [h, w, N]; image_shape: (height, width, ...).
    Returns: bool [height, width, N].
    """
    mask = np.zeros(tuple(image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        m = mini_mask[:, :, i]
        y1, x1, y2, x2 = bbox[i][:4]
        h = y2 - y1
        w = x2 - x1
        m = resize(m, (h, w))
        mask[y1:y2, x1:x2, i] = np.around(m).astype(bool)
    return mask


def unmold_mask(mask, bbox, image_shape, threshold=0.5):
    """Turn a mask from the mask head into a full-size binary mask.

    mask: [height, width] float, usually 28x28, values in [0, 1].
    bbox: (y1, x1, y2, x2) where the mask goes, in image pixels.
    image_shape: (height, width, ...) of the image.
    threshold: pixels at or above it are inside (Config.DETECTION_MASK_THRESHOLD).
    Returns: bool [height, width].
    """
    y1, x1, y2, x2 = bbox
    mask = resize(mask, (y2 - y1, x2 - x1))
    mask = np.where(mask >= threshold, 1, 0).astype(bool)
    full_mask = np.zeros(tuple(image_shape[:2]), dtype=bool)
    full_mask[y1:y2, x1:x2] = mask
    return full_mask


def _bilinear_weights(n_in, n_out):
    """[n_out, n_in] weights of a 1-D linear resize from n_in to n_out samples, as
    ``resize`` (scikit-image, order 1, mode "constant", no anti-aliasing) does it: output
    sample o reads the input at (o + 0.5) * n_in / n_out - 0.5, and samples beyond the
    edges count as 0 (resize then clips the result to the input's range)."""
    x = (np.arange(n_out) + 0.5) * (n_in / float(n_out)) - 0.5
    return np.maximum(0.0, 1.0 - np.abs(x[:, None] - np.arange(n_in)[None, :]))


def unmold_masks(masks, boxes, image_shape, threshold=0.5):
    """``unmold_mask`` for many masks at once: the same pixels, without a full-size
    temporary per mask.

    masks: [N, height, width] float (the mask head's 28x28 probabilities).
    boxes: [N, (y1, x1, y2, x2)] int image pixels.
    image_shape: (H, W, ...). threshold: as in unmold_mask.
    Returns: bool [H, W, N]. A box with no area gives an empty mask.

    Each resize is two small matrix products (separable linear interpolation with the
    weights of ``resize``), written straight into its box of the output.
    """
    masks = np.asarray(masks)
    boxes = np.asarray(boxes).astype(np.int64).reshape(-1, 4)
    out = np.zeros(tuple(image_shape[:2]) + (len(boxes),), dtype=bool)
    height, width = out.shape[:2]
    cache = {}

    def weights(n_in, n_out):
        key = (n_in, n_out)
        if key not in cache:
            cache[key] = _bilinear_weights(n_in, n_out)
        return cache[key]

    for i, (y1, x1, y2, x2) in enumerate(boxes):
        if y2 <= y1 or x2 <= x1:
            continue
        m = masks[i].astype(np.float64)
        values = weights(m.shape[0], y2 - y1) @ m @ weights(m.shape[1], x2 - x1).T
        # resize clips its result to the input's range (the zeros beyond the edges
        # never pull a mask whose values are all high below its minimum), and returns
        # float32: the same here, so pixels at the threshold fall the same way
        values = np.clip(values, m.min(), m.max()).astype(np.float32)
        # the part of the box inside the image (unmold_mask's slice assignment clips too)
        ty1, tx1, ty2, tx2 = max(y1, 0), max(x1, 0), min(y2, height), min(x2, width)
        if ty2 > ty1 and tx2 > tx1:
            out[ty1:ty2, tx1:tx2, i] = values[ty1 - y1:ty2 - y1, tx1 - x1:tx2 - x1] >= threshold
    return out


def _torch_bilinear_weights(n_in, n_out):
    """[n_out, n_in] weights of a bilinear resize with align_corners=False, as
    PyTorch's F.interpolate computes them (float32, no antialiasing)."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0))
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = (src - i0).astype(np.float32)
    w = np.zeros((n_out, n_in), dtype=np.float32)
    w[np.arange(n_out), i0] += np.float32(1) - lam
    w[np.arange(n_out), i1] += lam
    return w


def paste_masks_torchvision(masks, boxes, image_shape, threshold=0.5, padding=1):
    """Paste mask-head masks into the image as torchvision's paste_masks_in_image does.

    masks: [N, M, M] float probabilities; boxes: [N, (y1, x1, y2, x2)] float image
    pixels (not rounded); image_shape: (H, W, ...).
    Each mask is padded by ``padding`` cells of 0, its box expanded around its centre
    by (M + 2 * padding) / M, truncated to whole pixels (x2, y2 inclusive), the mask
    resized bilinearly (align_corners=False) to that box and pasted, clipped to the
    image. Returns: bool [H, W, N], probability >= threshold.
    """
    masks = np.asarray(masks, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    height, width = int(image_shape[0]), int(image_shape[1])
    out = np.zeros((height, width, len(boxes)), dtype=bool)
    if not len(boxes):
        return out
    m_size = masks.shape[-1]
    scale = np.float32(float(m_size + 2 * padding) / m_size)
    padded = np.pad(masks, [(0, 0), (padding, padding), (padding, padding)])
    half_h = (boxes[:, 2] - boxes[:, 0]) * np.float32(0.5) * scale
    half_w = (boxes[:, 3] - boxes[:, 1]) * np.float32(0.5) * scale
    cy = (boxes[:, 2] + boxes[:, 0]) * np.float32(0.5)
    cx = (boxes[:, 3] + boxes[:, 1]) * np.float32(0.5)
    expanded = np.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=1)
    expanded = np.trunc(expanded).astype(np.int64)  # torch's .to(int64)
    for i, (y1, x1, y2, x2) in enumerate(expanded):
        h = max(int(y2 - y1 + 1), 1)
        w = max(int(x2 - x1 + 1), 1)
        values = _torch_bilinear_weights(padded.shape[1], h) @ padded[i] @ \
            _torch_bilinear_weights(padded.shape[2], w).T
        ty1, tx1 = max(y1, 0), max(x1, 0)
        ty2, tx2 = min(y2 + 1, height), min(x2 + 1, width)
        if ty2 > ty1 and tx2 > tx1:
            out[ty1:ty2, tx1:tx2, i] = values[ty1 - y1:ty2 - y1, tx1 - x1:tx2 - x1] >= threshold
    return out


class MaskError(ValueError):
    """``load_mask`` returned something the pipeline cannot use; the message says why."""


def check_mask(mask, class_ids, image_shape=None, image_id=None, reference=None,
               allow_empty_instances=False):
    """Validate and coerce what a ``Dataset.load_mask`` returned.

    This is the single place where the pipeline checks masks. It accepts:
    - a list/tuple of [H, W] masks (stacked on the last axis), or an [H, W, N] array;
    - a single [H, W] mask with one class id;
    - any numeric or bool dtype (non-zero = inside; floats: >= 0.5 = inside);
    - class ids as a list, tuple or array of integers (floats holding integers are ok).

    image_shape: (height, width, ...) of the image the masks belong to, or None.
    image_id / reference: used to name the image in error messages.
    allow_empty_instances: if False, an instance mask without any pixel is an error.

    Returns: (bool [H, W, N] mask, int32 [N] class_ids).
    Raises MaskError naming the image, what is wrong, and the fix.
    """
    where = _where(image_id, reference)

    def fail(what, fix):
        raise MaskError("load_mask for {}: {}. {}".format(where, what, fix))

    if mask is None or class_ids is None:
        fail("returned None", "Return (mask [H, W, N] bool, class_ids [N] int32); for an "
             "image without instances return np.zeros([H, W, 0], bool), np.zeros([0], np.int32)")

    # class ids
    try:
        ids = np.asarray(class_ids)
    except Exception as e:
        fail("class_ids cannot be converted to an array ({})".format(e),
             "Return class_ids as a 1-D integer array.")
    if ids.ndim == 0:
        ids = ids.reshape(1)
    if ids.ndim != 1:
        fail("class_ids has shape {}, expected [N]".format(ids.shape),
             "Return one class id per instance, as a 1-D array.")
    if ids.size and ids.dtype.kind not in "iub":
        if ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and np.all(ids == np.round(ids)):
            pass
        else:
            fail("class_ids {} are not integers".format(ids.tolist()[:10]),
                 "Return integer class ids (dataset.class_ids, from prepare()).")
    ids = ids.astype(np.int32)
    if np.any(ids == 0):
        fail("class id 0 (background) given to instance(s) {}".format(
            np.where(ids == 0)[0].tolist()[:10]),
            "Instances need class ids >= 1 (negative for crowd regions); use "
            "dataset.map_source_class_id('source.id') to get them.")

    # masks
    if isinstance(mask, (list, tuple)):
        if len(mask) == 0:
            mask = np.zeros(tuple(image_shape[:2]) + (0,), dtype=bool) if image_shape is not None \
                else np.zeros((0, 0, 0), dtype=bool)
        else:
            parts = [np.asarray(m) for m in mask]
            shapes = {p.shape for p in parts}
            if len(shapes) != 1:
                fail("the list of masks holds arrays of different shapes {}".format(sorted(shapes)),
                     "Give every instance mask the image's size [H, W].")
            if parts[0].ndim == 2:
                mask = np.stack(parts, axis=-1)
            elif parts[0].ndim == 3 and parts[0].shape[-1] == 1:
                mask = np.concatenate(parts, axis=-1)
            else:
                fail("the list of masks holds arrays of shape {}".format(parts[0].shape),
                     "Return a list of [H, W] masks, or one [H, W, N] array.")
    mask = np.asarray(mask)
    if mask.ndim == 2 and ids.size == 1:
        mask = mask[:, :, None]
    if mask.ndim != 3:
        fail("mask has shape {}, expected [height, width, instances]".format(mask.shape),
             "Stack instance masks on the last axis: np.stack(masks, axis=-1).")

    n = ids.shape[0]
    if mask.shape[-1] == 0 and n == 0:
        if image_shape is not None:
            return np.zeros(tuple(image_shape[:2]) + (0,), dtype=bool), ids
        return mask.astype(bool), ids

    if image_shape is not None:
        h, w = image_shape[:2]
        if mask.shape[:2] != (h, w):
            if mask.shape[0] == n and mask.shape[1:] == (h, w):
                fail("mask has shape {}, which looks like [instances, height, width]"
                     .format(mask.shape),
                     "Return masks as [height, width, instances]: np.transpose(mask, (1, 2, 0)).")
            if mask.shape[:2] == (w, h) and h != w:
                fail("mask size {}x{} is the image size {}x{} turned by 90 degrees".format(
                    mask.shape[0], mask.shape[1], h, w),
                    "The image file probably has an EXIF orientation, which read_image "
                    "applies (images come out as viewers and annotation tools show them). "
                    "If the annotations were made on the stored pixels, set "
                    "exif_orientation = False on the dataset class; otherwise fix the "
                    "width/height the annotations give for this image.")
            fail("mask size {}x{} differs from the image size {}x{}".format(
                mask.shape[0], mask.shape[1], h, w),
                "Resize each mask to the image with nearest-neighbour interpolation "
                "(e.g. skimage.transform.resize(m, (H, W), order=0)), or fix the mask files.")
    if mask.shape[-1] != n:
        fail("{} masks but {} class ids".format(mask.shape[-1], n),
             "Return exactly one class id per instance mask.")

    if mask.dtype != bool:
        if mask.dtype.kind == "f":
            mask = mask >= 0.5
        elif mask.dtype.kind in "iu":
            mask = mask != 0
        else:
            fail("mask dtype {} is not numeric".format(mask.dtype),
                 "Return a bool or 0/1 (or 0/255) integer array.")
    if not allow_empty_instances and n:
        empty = np.where(~mask.reshape(-1, n).any(axis=0))[0]
        if empty.size:
            fail("instance mask(s) {} are empty (no pixel set)".format(empty.tolist()[:10]),
                 "Drop empty instances in load_mask (e.g. keep = mask.any(axis=(0, 1))).")
    return mask, ids


def _where(image_id, reference):
    if image_id is None and not reference:
        return "an image"
    text = "image_id {}".format(image_id)
    if reference:
        text += " ({})".format(reference)
    return text
