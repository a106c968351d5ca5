"""The synthetic shapes dataset: squares, circles and triangles drawn on the fly.

Every image is generated from its own seed, so ``load_image``/``load_mask`` give the
same picture each time and a dataset is reproducible from ``(count, seed)``.

    from samples.shapes.shapes import ShapesConfig, ShapesDataset
    dataset = ShapesDataset()
    dataset.load_shapes(500, 128, 128, seed=1)
    dataset.prepare()
"""
import numpy as np
import skimage.draw

from mrcnn import utils
from mrcnn.config import Config

SHAPES = ("square", "circle", "triangle")


class ShapesConfig(Config):
    """Small images and few ROIs: trains on a CPU."""
    NAME = "shapes"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 4
    NUM_CLASSES = 1 + 3  # background + 3 shapes
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TRAIN_ROIS_PER_IMAGE = 32
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 5


class ShapesDataset(utils.Dataset):
    """Random arrangements of 1-4 shapes on a plain background."""

    def load_shapes(self, count, height=128, width=128, seed=0):
        """Add ``count`` images of ``height`` x ``width``; image i uses seed (seed, i)."""
        for i, name in enumerate(SHAPES, start=1):
            self.add_class("shapes", i, name)
        for i in range(count):
            rng = np.random.RandomState([seed, i])
            bg_color, shapes = self.random_image(height, width, rng)
            self.add_image("shapes", image_id=i, path=None, width=width, height=height,
                           bg_color=bg_color, shapes=shapes)

    def random_image(self, height, width, rng):
        """A background colour and a list of (shape, colour, (y, x, size)) that do not
        overlap much (boxes with IoU > 0.3 are dropped)."""
        bg_color = tuple(int(c) for c in rng.randint(0, 256, 3))
        shapes, boxes = [], []
        for _ in range(rng.randint(1, 5)):
            shape = SHAPES[rng.randint(0, len(SHAPES))]
            color = tuple(int(c) for c in rng.randint(0, 256, 3))
            buffer = max(4, min(20, min(height, width) // 6))
            y = int(rng.randint(buffer, height - buffer - 1))
            x = int(rng.randint(buffer, width - buffer - 1))
            s = int(rng.randint(buffer, max(buffer + 1, min(height, width) // 4)))
            shapes.append((shape, color, (y, x, s)))
            boxes.append([y - s, x - s, y + s, x + s])
        keep = utils.non_max_suppression(np.array(boxes), np.arange(len(boxes)), 0.3)
        shapes = [s for i, s in enumerate(shapes) if i in keep]
        return bg_color, shapes

    def load_image(self, image_id):
        info = self.image_info[image_id]
        image = np.zeros([info["height"], info["width"], 3], dtype=np.uint8)
        image[:, :] = info["bg_color"]
        for shape, color, dims in info["shapes"]:
            rr, cc = self._pixels(shape, dims, image.shape[:2])
            image[rr, cc] = color
        return image

    def load_mask(self, image_id):
        """One mask per shape; later shapes occlude earlier ones."""
        info = self.image_info[image_id]
        shapes = info["shapes"]
        mask = np.zeros([info["height"], info["width"], len(shapes)], dtype=bool)
        for i, (shape, _, dims) in enumerate(shapes):
            rr, cc = self._pixels(shape, dims, mask.shape[:2])
            mask[rr, cc, i] = True
        # Handle occlusions: walk back from the top shape
        if len(shapes):
            occlusion = np.logical_not(mask[:, :, -1])
            for i in range(len(shapes) - 2, -1, -1):
                mask[:, :, i] &= occlusion
                occlusion &= np.logical_not(mask[:, :, i])
        keep = mask.any(axis=(0, 1))
        class_ids = np.array([self.class_names.index(s[0]) for s in shapes], dtype=np.int32)
        return mask[:, :, keep], class_ids[keep]

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        return "shapes image {}: {}".format(image_id, [s[0] for s in info["shapes"]])

    @staticmethod
    def _pixels(shape, dims, size):
        y, x, s = dims
        if shape == "square":
            return skimage.draw.rectangle((y - s, x - s), (y + s - 1, x + s - 1), shape=size)
        if shape == "circle":
            return skimage.draw.disk((y, x), s, shape=size)
        # Equilateral-ish triangle pointing up, as in the classic sample
        h = s / np.sin(np.radians(60))
        rows = np.array([y - s, y + s, y + s])
        cols = np.array([x, x - h, x + h])
        return skimage.draw.polygon(rows, cols, shape=size)
