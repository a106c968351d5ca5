"""Train and evaluate on any COCO-format instance dataset.

    # fine-tune the COCO weights on a Label Studio / CVAT / Roboflow export
    python samples/coco/train.py train --dataset=export/ --weights=coco \\
        --schedule heads:10,all:20@0.0001 --lr 0.001
    # evaluate on every image of a COCO JSON (not only the first 500)
    python samples/coco/train.py evaluate --dataset=val/instances.json --model=last
    python samples/coco/train.py detect --weights=last --image photo.jpg --out out/

(``python -m samples.coco.train ...`` from the repository root works the same; so does
``mrcnn train --format coco ...``, with a split by --val-fraction instead.)

See samples/coco/README.md.
"""
if not __package__:  # run as a file (python samples/coco/train.py): find the samples package
    import os
    import sys
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "samples.coco"

from mrcnn.cli import Sample, run_sample

from .coco import CocoSampleConfig, load_coco_sample


def add_arguments(parser, command):
    parser.add_argument("--images", default=None,
                        help="image folder (default: images/ beside the JSON, else the "
                             "JSON's folder)")
    if command in ("train", "evaluate", "inspect", "calculate-ap"):
        parser.add_argument("--val-dataset", default=None,
                            help="validation JSON or folder (default: every tenth image of "
                                 "--dataset)")
        parser.add_argument("--val-every", type=int, default=10,
                            help="without --val-dataset: every N-th image is validation")


SAMPLE = Sample("coco", CocoSampleConfig, load_coco_sample,
                add_arguments=add_arguments, classes_from_data=True,
                default_eval_subset="all",
                description="Mask R-CNN on a COCO-format dataset (COCO, Label Studio, "
                            "CVAT, Roboflow exports)",
                prog="samples/coco/train.py")


def main(argv=None):
    return run_sample(SAMPLE, argv)


if __name__ == "__main__":
    main()
