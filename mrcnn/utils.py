"""Common utility functions and classes, under their classic Matterport names.

This module is a facade: the code lives in modules named after what they hold
(``dataset``, ``boxes``, ``masks``, ``anchors``, ``imageops``, ``metrics``). Importing
it does not import TensorFlow.
"""
import logging
import os
import shutil
import tempfile
import urllib.request

import numpy as np

from .anchors import compute_backbone_shapes, generate_anchors, generate_pyramid_anchors
from .boxes import (apply_box_deltas, box_refinement, compute_iou, compute_overlaps,
                    denorm_boxes, extract_bboxes, non_max_suppression, norm_boxes,
                    trim_zeros)
from .dataset import Dataset
from .imageops import read_image, resize, resize_image, to_rgb_uint8
from .masks import (MaskError, check_mask, compute_overlaps_masks, expand_mask,
                    minimize_mask, paste_masks_torchvision, resize_mask, unmold_mask,
                    unmold_masks)
from .metrics import compute_ap, compute_ap_range, compute_ap_thresholds, compute_matches, \
    compute_recall

__all__ = [
    "Dataset", "MaskError", "check_mask",
    "extract_bboxes", "compute_iou", "compute_overlaps", "compute_overlaps_masks",
    "non_max_suppression", "apply_box_deltas", "box_refinement", "trim_zeros",
    "norm_boxes", "denorm_boxes",
    "resize", "resize_image", "resize_mask", "minimize_mask", "expand_mask", "unmold_mask",
    "unmold_masks", "paste_masks_torchvision",
    "read_image", "to_rgb_uint8",
    "generate_anchors", "generate_pyramid_anchors", "compute_backbone_shapes",
    "compute_matches", "compute_ap", "compute_ap_range", "compute_ap_thresholds",
    "compute_recall",
    "batch_slice", "download_trained_weights", "COCO_MODEL_URL",
]

log = logging.getLogger(__name__)

# URL of the published Matterport COCO weights (ResNet-101, 81 classes).
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"


def batch_slice(inputs, graph_fn, batch_size, names=None):
    """Run ``graph_fn`` on each item of a batch and stack the results (TensorFlow).

    inputs: a tensor or list of tensors sharing the batch dimension.
    graph_fn: a function of one item of each input, returning a tensor or a list.
    batch_size: number of items (must be static).
    names: optional names for the outputs.
    Returns: a tensor, or a list of tensors, each [batch, ...].
    """
    import tensorflow as tf

    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    outputs = []
    for i in range(batch_size):
        output_slice = graph_fn(*[x[i] for x in inputs])
        if not isinstance(output_slice, (tuple, list)):
            output_slice = [output_slice]
        outputs.append(output_slice)
    # From a list of items of outputs to a list of outputs of items
    outputs = list(zip(*outputs))
    if names is None:
        names = [None] * len(outputs)
    result = [tf.stack(o, axis=0, name=n) for o, n in zip(outputs, names)]
    if len(result) == 1:
        result = result[0]
    return result


def download_trained_weights(coco_model_path, verbose=1, url=COCO_MODEL_URL, timeout=60):
    """Download the COCO-trained weights to ``coco_model_path``.

    The file is written to a temporary name and renamed when complete, so an
    interrupted download never leaves a truncated .h5 that looks done. Offline, the
    error says where to put the file by hand.
    """
    coco_model_path = os.fspath(coco_model_path)
    target_dir = os.path.dirname(os.path.abspath(coco_model_path))
    os.makedirs(target_dir, exist_ok=True)
    if verbose > 0:
        print("Downloading pretrained model to " + coco_model_path + " ...")
    fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=target_dir)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            expected = resp.headers.get("Content-Length")
            shutil.copyfileobj(resp, out, length=1 << 20)
        if expected is not None and os.path.getsize(tmp) != int(expected):
            raise IOError("download of {} stopped at {} of {} bytes".format(
                url, os.path.getsize(tmp), expected))
        os.replace(tmp, coco_model_path)
    except Exception as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise RuntimeError(
            "could not download {} ({}: {}). If this machine is offline, download the "
            "file elsewhere and copy it to {} (see weights/README.md)."
            .format(url, type(e).__name__, e, coco_model_path)) from None
    if verbose > 0:
        print("... done downloading pretrained model!")
    return coco_model_path
