"""Train and evaluate on any COCO-format instance dataset.

    # fine-tune the COCO weights on a Label Studio / CVAT / Roboflow export
    python -m samples.coco.train train --dataset export/ --weights coco \\
        --schedule heads:10,all:20@0.0001 --lr 0.001
    # evaluate on every image of a COCO JSON (not only the first 500)
    python -m samples.coco.train evaluate --dataset val/instances.json --weights last
    python -m samples.coco.train detect --weights last --image photo.jpg --out out/

See samples/coco/README.md.
"""
from .. import common
from .coco import CocoSampleConfig, load_coco_sample


def add_arguments(parser, command):
    parser.add_argument("--images", default=None,
                        help="image folder (default: images/ beside the JSON, else the "
                             "JSON's folder)")
    if command in ("train", "evaluate", "inspect"):
        parser.add_argument("--val-dataset", default=None,
                            help="validation JSON or folder (default: every tenth image of "
                                 "--dataset)")
        parser.add_argument("--val-every", type=int, default=10,
                            help="without --val-dataset: every N-th image is validation")


SAMPLE = common.Sample("coco", CocoSampleConfig, load_coco_sample,
                       add_arguments=add_arguments, classes_from_data=True,
                       default_eval_subset="all",
                       description="Mask R-CNN on a COCO-format dataset (COCO, Label Studio, "
                                   "CVAT, Roboflow exports)")


def main(argv=None):
    return common.main(SAMPLE, argv)


if __name__ == "__main__":
    main()
