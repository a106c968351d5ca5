"""The README demo: train Mask R-CNN on shapes from scratch, detect, and draw.

    python -m samples.demo --out out/ [--train-minutes M] [--verbose]

Writes out/shapes_dataset.png (generated shapes with their masks and boxes), when
../shared/data is present out/coco_sample.png (a real COCO image with its masks), then
trains on shapes from scratch for a few minutes on the CPU (samples/shapes/train.py
--quick) and writes out/shapes/shapes_detections.png (ground truth above, detections
below), and prints mAP@0.5 on 50 held-out images beside what it should reach (the
recorded figures are in bench/RESULTS.md).
"""
if not __package__:  # run as a file (python samples/demo.py): find the samples package
    import os
    import sys
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    __package__ = "samples"
if __name__ == "__main__":  # quiet TensorFlow start-up unless --verbose
    import sys
    from mrcnn.cli import logs
    logs.setup("--verbose" in sys.argv)
    logs.import_tensorflow()

import argparse
import os

import numpy as np

from mrcnn import utils, visualize


def draw_shapes(out_dir, count=4, seed=0):
    from samples.shapes.shapes import ShapesDataset
    dataset = ShapesDataset()
    dataset.load_shapes(count, 128, 128, seed=seed)
    dataset.prepare()
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, count, figsize=(4 * count, 4.4))
    for ax, image_id in zip(np.atleast_1d(axes), dataset.image_ids):
        image = dataset.load_image(image_id)
        mask, class_ids = dataset.load_mask_checked(image_id, image_shape=image.shape)
        visualize.display_instances(image, utils.extract_bboxes(mask), mask, class_ids,
                                    dataset.class_names, ax=ax,
                                    title="shapes image {}".format(image_id))
    path = os.path.join(out_dir, "shapes_dataset.png")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def draw_coco(out_dir, shared_dir):
    from mrcnn.datasets import load_coco
    root = os.path.join(shared_dir, "coco_val2017_sample")
    if not os.path.isdir(root):
        return None
    dataset = load_coco(os.path.join(root, "instances.json"), os.path.join(root, "images"))
    # the image with the most instances
    counts = [len(info["annotations"]) for info in dataset.image_info]
    image_id = int(np.argmax(counts))
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask_checked(image_id, image_shape=image.shape)
    path = os.path.join(out_dir, "coco_sample.png")
    visualize.display_instances(image, utils.extract_bboxes(mask), mask, class_ids,
                                dataset.class_names, figsize=(10, 10),
                                title=os.path.basename(dataset.image_reference(image_id)),
                                save_path=path)
    return path


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="folder for the PNG files (default: out)")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")
    parser.add_argument("--shared", default=os.path.join(here, "..", "..", "shared", "data"),
                        help="the real-data folder (default: ../shared/data)")
    parser.add_argument("--train-minutes", type=float, default=None,
                        help="shapes training time; 0 skips training (default: the quick "
                             "run's, samples/shapes/train.py --quick)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for path in (draw_shapes(args.out), draw_coco(args.out, args.shared)):
        if path:
            print("wrote", path)
    if args.train_minutes is None or args.train_minutes > 0:
        from samples.shapes import train
        minutes = ["--minutes", str(args.train_minutes)] if args.train_minutes else []
        # --dtype auto: bfloat16 where it trains faster than float32 on this CPU
        train.main(["--quick", "--dtype", "auto", "--val-images", "50", "--out",
                    os.path.join(args.out, "shapes")] + minutes)


if __name__ == "__main__":
    main()
