"""Mask R-CNN on Open Images traffic classes: download, train, evaluate, detect.

    # 1. the data: train and validation splits, up to 500 images per class
    python samples/traffic/train.py download --out data/traffic --limit-per-class 500
    # 2. fine-tune from COCO weights, the classic staged way
    python samples/traffic/train.py train --dataset=data/traffic --weights=coco \\
        --schedule heads:20,4+:40,all:60@0.0001 --lr 0.001 --augment
    # 3. both metrics on the validation split, JSON + CSV + PR curves
    python samples/traffic/train.py evaluate --dataset=data/traffic --weights=last
    # 4. pictures, a colour splash, a video
    python samples/traffic/train.py detect --weights=last --image street.jpg --out out/
    python samples/traffic/train.py detect --weights=last --video drive.mp4 --splash

``python -m samples.traffic.train ...`` from the repository root works the same.

See samples/traffic/README.md.
"""
if not __package__:  # run as a file (python samples/traffic/train.py): find the samples package
    import os
    import sys
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "samples.traffic"

import os

from openimages import metadata as md

from mrcnn.cli import CliError, Sample, run_sample

from .traffic import CLASS_NAMES, CLASSES, TrafficConfig, load_traffic


def add_download_arguments(p):
    p.add_argument("--out", required=True, help="dataset folder (train/ and validation/ "
                                                "are written in it)")
    p.add_argument("--limit-per-class", type=int, default=500,
                   help="images per class and split (default 500; 0 = all)")
    p.add_argument("--splits", nargs="+", default=["train", "validation"],
                   choices=list(md.SPLITS), help="default: train validation")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metadata-url", default=md.DEFAULT_METADATA_URL)
    p.add_argument("--masks-url", default=md.DEFAULT_MASKS_URL)
    p.add_argument("--s3-endpoint", default=None)
    p.add_argument("--quiet", action="store_true")


def download(args):
    """download the four classes from Open Images (train and validation splits)"""
    from openimages.classes import UnknownClassError
    from openimages.download import DownloadError, EmptySubsetError
    from openimages.download import download as fetch
    manifests = {}
    for split in args.splits:
        folder = os.path.join(args.out, split)
        try:
            manifests[split] = fetch(CLASSES, split, folder,
                                     limit_per_class=args.limit_per_class or None,
                                     seed=args.seed, metadata_url=args.metadata_url,
                                     masks_url=args.masks_url, s3_endpoint=args.s3_endpoint,
                                     workers=args.workers, progress=not args.quiet)
        except (UnknownClassError, EmptySubsetError, FileNotFoundError) as e:
            raise CliError("download of the {} split: {}".format(split, e))
        except DownloadError as e:
            raise CliError("download of the {} split failed: {}. Run the same command "
                           "again to resume.".format(split, e))
        # (the downloader printed its summary unless --quiet)
    return manifests


SAMPLE = Sample(
    "traffic", TrafficConfig, load_traffic, class_names=CLASS_NAMES,
    commands={"download": (add_download_arguments, download)},
    description="Person, Car, Traffic light and Traffic sign from Open Images V5",
    prog="samples/traffic/train.py")


def main(argv=None):
    return run_sample(SAMPLE, argv)


if __name__ == "__main__":
    main()
