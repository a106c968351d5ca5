"""Dataset loaders for common annotation formats (each a ``mrcnn.utils.Dataset``).

- ``CocoDataset`` / ``load_coco``: COCO instances JSON (COCO, Label Studio, CVAT, ...).
- ``InstancePngDataset``: one instance-id mask PNG per image (PennFudan).
- ``MaskFolderDataset``: one binary PNG per instance (nucleus / DSB2018).
- ``NpyDataset``: per-image .npy dicts of boxes, labels and masks (torchvision style).
- ``ViaDataset``: VGG Image Annotator JSON, versions 1 and 2 (the balloon sample).
"""
from .coco import CocoDataset, load_coco
from .instance_png import InstancePngDataset
from .mask_folders import MaskFolderDataset
from .npy import NpyDataset
from .via import ViaDataset, read_via_json

__all__ = ["CocoDataset", "load_coco", "InstancePngDataset", "MaskFolderDataset",
           "NpyDataset", "ViaDataset", "read_via_json"]
