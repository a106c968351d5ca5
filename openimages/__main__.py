"""Command line: ``python -m openimages download ...`` (also ``openimages-download``).

    python -m openimages download --classes "Person" "Car" "Traffic light" "Traffic sign" \\
        --split train --limit-per-class 1000 --out data/traffic/train --workers 16
    python -m openimages coco --dir data/traffic/train          # COCO JSON export
"""
import argparse
import logging
import sys

from . import metadata as md


def _count(text):
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError("give 0 or more, not {}".format(n))
    return n


def build_parser():
    p = argparse.ArgumentParser(prog="python -m openimages",
                                description="Open Images V5 subset downloader (images + only "
                                            "the masks needed)")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="download a class-filtered subset")
    d.add_argument("--classes", nargs="+", required=True,
                   help="class names (exact, case-insensitive) or MIDs such as /m/0bt9lr")
    d.add_argument("--split", choices=md.SPLITS, default="train")
    d.add_argument("--limit-per-class", type=int, default=None,
                   help="images per class (default: all)")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--workers", type=int, default=16, help="parallel image downloads")
    d.add_argument("--seed", type=int, default=0, help="seed of the image selection")
    d.add_argument("--no-subclasses", action="store_true",
                   help="do not expand classes through the hierarchy (Person -> Man, ...)")
    d.add_argument("--with-boxes", action="store_true",
                   help="also read the box CSV to report boxes without masks")
    d.add_argument("--metadata-url", default=md.DEFAULT_METADATA_URL)
    d.add_argument("--masks-url", default=md.DEFAULT_MASKS_URL)
    d.add_argument("--s3-endpoint", default=None, help="S3 endpoint (default: AWS)")
    d.add_argument("--bucket", default=md.DEFAULT_BUCKET)
    d.add_argument("--coco", action="store_true", help="also write coco.json")
    d.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    d.add_argument("--retries", type=_count, default=4,
                   help="tries after the first for transient network failures (refused or "
                        "dropped connections, timeouts, HTTP 429 and 5xx; default 4); "
                        "permanent ones (404, 403, ...) are not tried again")
    c = sub.add_parser("coco", help="export a downloaded subset to COCO JSON")
    c.add_argument("--dir", required=True)
    c.add_argument("--out", default=None)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if args.command == "coco":
        from .coco_export import export_coco
        print("wrote", export_coco(args.dir, args.out))
        return 0
    from .classes import UnknownClassError
    from .download import DownloadError, EmptySubsetError, download
    try:
        download(args.classes, args.split, args.out, limit_per_class=args.limit_per_class,
                 subclasses=not args.no_subclasses, seed=args.seed,
                 metadata_url=args.metadata_url, masks_url=args.masks_url,
                 s3_endpoint=args.s3_endpoint, bucket=args.bucket, workers=args.workers,
                 with_boxes=args.with_boxes, progress=not args.quiet, retries=args.retries)
    except KeyboardInterrupt as e:
        # Ctrl-C: DownloadInterrupted says what is on disk and how to resume
        print("interrupted: {}".format(e if str(e) else "run the same command again to "
                                       "resume"), file=sys.stderr)
        return 130
    except EmptySubsetError as e:
        print("error: {}".format(e), file=sys.stderr)
        return 2
    except DownloadError as e:
        print("error: {}; run the same command again to resume".format(e), file=sys.stderr)
        return 2
    except (UnknownClassError, FileNotFoundError) as e:
        print("error: {}".format(e), file=sys.stderr)
        return 2
    if args.coco:
        from .coco_export import export_coco
        print("wrote", export_coco(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
