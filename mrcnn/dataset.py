"""The ``Dataset`` base class (``mrcnn.utils.Dataset``).

Subclass it, add classes and images in a ``load_*`` method of your own, then override
``load_mask`` (and, when your images are not files, ``load_image``)::

    class ShapesDataset(utils.Dataset):
        def load_shapes(self, count):
            self.add_class("shapes", 1, "square")
            for i in range(count):
                self.add_image("shapes", image_id=i, path=None, ...)

        def load_mask(self, image_id):
            ...
            return mask, class_ids      # bool [H, W, N], int32 [N]

    dataset = ShapesDataset()
    dataset.load_shapes(500)
    dataset.prepare()

Internal ids (``dataset.image_ids``, ``dataset.class_ids``) are contiguous integers from
0; id 0 of the classes is the background "BG". Source ids ("coco.18") map to them with
``map_source_class_id`` / ``image_from_source_map``.
"""
import logging

import numpy as np

from .imageops import read_image
from .masks import MaskError, check_mask

log = logging.getLogger(__name__)


class Dataset(object):
    """The base class for dataset classes."""

    def __init__(self, class_map=None):
        self._image_ids = []
        self.image_info = []
        # Background is always the first class
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}

    def add_class(self, source, class_id, class_name):
        """Register a class of a source. Adding the same (source, id) twice is a no-op."""
        if "." in source:
            raise ValueError("Dataset.add_class: source name {!r} must not contain a dot "
                             "(source ids are written 'source.id'); rename the source."
                             .format(source))
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        """Register an image; extra keyword arguments are stored in its image_info."""
        image_info = {"id": image_id, "source": source, "path": path}
        image_info.update(kwargs)
        self.image_info.append(image_info)

    def image_reference(self, image_id):
        """A link to the image or its details, to help find it when debugging.

        Override for your dataset; the default is the image's path (or "")."""
        info = self.image_info[image_id] if 0 <= image_id < len(self.image_info) else {}
        return str(info.get("path") or "")

    def prepare(self, class_map=None):
        """Build the internal ids and maps. Call after adding classes and images."""

        def clean_name(name):
            """The name up to its first comma ("person, man" -> "person")."""
            return ",".join(name.split(",")[:1])

        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)

        self.class_from_source_map = {"{}.{}".format(info["source"], info["id"]): id
                                      for info, id in zip(self.class_info, self.class_ids)}
        self.image_from_source_map = {"{}.{}".format(info["source"], info["id"]): id
                                      for info, id in zip(self.image_info, self.image_ids)}

        self.sources = sorted(set(i["source"] for i in self.class_info))
        self.source_class_ids = {}
        for source in self.sources:
            self.source_class_ids[source] = []
            for i, info in enumerate(self.class_info):
                # Include BG class in all datasets
                if i == 0 or source == info["source"]:
                    self.source_class_ids[source].append(i)

    def map_source_class_id(self, source_class_id):
        """The internal class id for a source class id: "coco.12" -> 23."""
        try:
            return self.class_from_source_map[source_class_id]
        except AttributeError:
            raise RuntimeError("Dataset.map_source_class_id: call prepare() first") from None
        except KeyError:
            raise KeyError("no class {!r} in this dataset; known: {}".format(
                source_class_id, sorted(self.class_from_source_map)[:20])) from None

    def get_source_class_id(self, class_id, source):
        """The source's own id of an internal class id: (23, "coco") -> 12."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError("class id {} belongs to source {!r}, not {!r}".format(
                class_id, info["source"], source))
        return info["id"]

    @property
    def image_ids(self):
        return self._image_ids

    def source_image_link(self, image_id):
        """The path or URL of the image."""
        return self.image_info[image_id]["path"]

    #: Apply the EXIF orientation of image files (as viewers and annotation tools show
    #: them; see ``mrcnn.imageops.decode_image``). Set False in a subclass when the
    #: annotations were made on the stored pixels.
    exif_orientation = True

    def load_image(self, image_id):
        """Load the image as RGB uint8 [H, W, 3] with ``mrcnn.utils.read_image``.

        Grayscale becomes RGB, alpha is dropped, 16-bit keeps its high byte, CMYK is
        converted, EXIF orientation is applied (``exif_orientation``). A missing or
        corrupt file raises an error that names the image id and its path.

        An override may return uint8 RGB, grayscale, RGBA, uint16, or floats in [0, 1]
        or [0, 255]: training converts them by the same rule as ``detect``
        (``mrcnn.imageops.as_model_image``).
        """
        path = self.image_info[image_id]["path"]
        try:
            return read_image(path, exif_orientation=self.exif_orientation)
        except (OSError, ValueError) as e:
            raise type(e)("Dataset.load_image(image_id={}): {}".format(image_id, e)) from None

    def load_mask(self, image_id):
        """Instance masks of the image: (bool [H, W, N], int32 class_ids [N]).

        Override this for your dataset. The default has no instances and warns."""
        log.warning("You are using the default load_mask(); define your own in %s.",
                    type(self).__name__)
        mask = np.empty([0, 0, 0])
        class_ids = np.empty([0], np.int32)
        return mask, class_ids

    def load_mask_checked(self, image_id, image_shape=None, allow_empty_instances=False):
        """``load_mask`` plus validation (see ``masks.check_mask``): the pipeline calls this.

        image_shape: (height, width, ...) of the image, to check the mask size against.
        Returns: (bool [H, W, N], int32 [N]); raises MaskError naming the image.
        """
        mask, class_ids = self.load_mask(image_id)
        mask, class_ids = check_mask(mask, class_ids, image_shape=image_shape,
                                     image_id=image_id,
                                     reference=self._safe_reference(image_id),
                                     allow_empty_instances=allow_empty_instances)
        num_classes = getattr(self, "num_classes", None)
        if num_classes is not None and class_ids.size and np.abs(class_ids).max() >= num_classes:
            bad = class_ids[np.abs(class_ids) >= num_classes]
            raise MaskError(
                "load_mask for image_id {} ({}): class id(s) {} but the dataset has only {} "
                "classes (0..{}). Return internal ids from dataset.map_source_class_id(), "
                "not source ids.".format(image_id, self._safe_reference(image_id),
                                         bad.tolist()[:10], num_classes, num_classes - 1))
        return mask, class_ids

    def _safe_reference(self, image_id):
        try:
            return self.image_reference(image_id)
        except Exception:
            return ""
