"""Per-image AP of a model on a dataset, the classic way (``utils.compute_ap``).

    python -m samples.calculate_ap --sample nucleus --dataset ../shared/data/nucleus_dsb2018/stage1_test \\
        --weights last --iou 0.5 0.75 --csv out/nucleus_ap.csv
    python -m samples.calculate_ap --sample traffic --dataset data/traffic --weights W.h5
    python -m samples.calculate_ap --sample my_package.my_sample --dataset ... --weights ...

--sample is a sample name (traffic, nucleus, coco) or any module with a ``SAMPLE``
(a ``samples.common.Sample``). Prints one line per image and the means, and writes a CSV
(image id, reference, ground-truth and predicted instance counts, AP per threshold and
AP over 0.50:0.95).
"""
import argparse
import importlib
import os
import sys

from samples import common


def load_sample(name):
    for module_name in ("samples.{}.train".format(name), name):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, "SAMPLE"):
            return module.SAMPLE
    raise common.SampleError("--sample {!r}: not a sample (traffic, nucleus, coco) nor a module "
                             "with a SAMPLE".format(name))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m samples.calculate_ap", description=__doc__
                                .split("\n")[0])
    p.add_argument("--sample", required=True, help="traffic | nucleus | coco | module path")
    p.add_argument("--dataset", required=True)
    p.add_argument("--subset", default=None, help="train, val or all (default: the sample's)")
    p.add_argument("--weights", required=True, help="coco | last | PATH ...")
    p.add_argument("--logs", default=common.DEFAULT_LOGS)
    p.add_argument("--config", default=None, help="module:Class of another Config")
    p.add_argument("--iou", type=float, nargs="+", default=[0.5])
    p.add_argument("--limit", type=int, default=None, help="first N images (default: all)")
    p.add_argument("--min-confidence", type=float, default=None)
    p.add_argument("--csv", default="out/per_image_ap.csv")
    args = p.parse_args(argv)
    from mrcnn import evaluate
    try:
        sample = load_sample(args.sample)
        dataset = sample.load_dataset(args.dataset, args.subset or sample.default_eval_subset,
                                      args)
        model, _ = common.inference_model(sample, args, dataset.class_names)
        results = evaluate.run_detection(model, dataset, limit=args.limit)
        report = evaluate.calculate_ap(dataset, results, iou_threshold=args.iou)
    except common.SampleError as e:
        print("error: {}".format(e), file=sys.stderr)
        raise SystemExit(2)
    extra = ["AP@{:g}".format(t) for t in args.iou[1:]]
    print("{:>6}  {:<40} {:>4} {:>5} {:>7}{} {:>9}".format(
        "image", "reference", "gt", "pred", "AP@{:g}".format(args.iou[0]),
        "".join("{:>8}".format(k) for k in extra), "AP50:95"))
    for r in report["per_image"]:
        print("{:>6}  {:<40} {:>4} {:>5} {:>7.3f}{} {:>9.3f}".format(
            r["image_id"], str(r["reference"])[-40:], r["num_gt"], r["num_pred"], r["AP"],
            "".join("{:>8.3f}".format(r[k]) for k in extra), r["AP_range"]))
    print("mean over {} images: mAP@{:g} = {:.3f}{}, mAP@0.50:0.95 = {:.3f}".format(
        report["num_images"], args.iou[0], report["mAP"],
        "".join(", m{} = {:.3f}".format(k, report["m" + k]) for k in extra),
        report["mAP_range"]))
    os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
    print("wrote", common.write_per_image_csv(report, args.csv))
    return report


if __name__ == "__main__":
    main()
