"""Dataset loaders for common annotation formats (each a ``mrcnn.utils.Dataset``)."""
from .coco import CocoDataset, load_coco

__all__ = ["CocoDataset", "load_coco"]
