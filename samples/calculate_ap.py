"""Per-image AP of a model on a dataset, the classic way (``utils.compute_ap``).

    python samples/calculate_ap.py --sample nucleus \\
        --dataset=../shared/data/nucleus_dsb2018/stage1_test --weights=last --iou 0.5 0.75 \\
        --csv out/nucleus_ap.csv
    python samples/calculate_ap.py --sample traffic --dataset=data/traffic --weights=W.h5
    python samples/calculate_ap.py --sample my_package.my_sample --dataset ... --weights ...

--sample is a sample name (traffic, nucleus, coco) or any module with a ``SAMPLE``
(a ``mrcnn.cli.Sample``). Prints one line per image and the means, and writes a CSV
(image id, reference, ground-truth and predicted instance counts, AP per threshold and
AP over 0.50:0.95). ``python -m samples.calculate_ap`` and ``mrcnn calculate-ap``
(with --format instead of --sample) do the same.
"""
if not __package__:  # run as a file (python samples/calculate_ap.py): find the samples package
    import os
    import sys
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    __package__ = "samples"

import argparse
import importlib
import sys

from mrcnn.cli import CliError
from mrcnn.cli.evaluate import cmd_calculate_ap
from mrcnn.cli.main import HelpFormatter, add_calculate_ap_arguments, run_command


def load_sample(name):
    for module_name in ("samples.{}.train".format(name), name):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, "SAMPLE"):
            return module.SAMPLE
    raise CliError("--sample {!r}: not a sample (traffic, nucleus, coco) nor a module with a "
                   "SAMPLE".format(name))


class _AnySample(object):
    """Stands for the sample in the help text before --sample is known."""
    default_eval_subset = "the sample's"
    add_arguments = None


def build_parser(sample=None, add_help=True):
    p = argparse.ArgumentParser(prog="samples/calculate_ap.py", formatter_class=HelpFormatter,
                                description=__doc__.split("\n")[0], add_help=add_help)
    p.add_argument("--sample", required=add_help,
                   help="traffic | nucleus | coco | a module with a SAMPLE")
    if sample is not None:
        add_calculate_ap_arguments(p, sample)
        if sample.add_arguments:
            sample.add_arguments(p, "calculate-ap")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    first, _ = build_parser(add_help=False).parse_known_args(argv)
    if first.sample is None:  # --help, or the error that --sample is required
        build_parser(_AnySample()).parse_args(argv)
    try:
        sample = load_sample(first.sample)
    except CliError as e:
        print("error: {}".format(e), file=sys.stderr)
        raise SystemExit(2)
    args = build_parser(sample).parse_args(argv)
    args.command = "calculate-ap"
    args._argv = argv
    return run_command(sample, cmd_calculate_ap, args)


if __name__ == "__main__":
    main()
