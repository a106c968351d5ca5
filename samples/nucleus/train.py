"""Nucleus segmentation (DSB2018): train from scratch, evaluate, detect.

    python samples/nucleus/train.py train --dataset=../shared/data/nucleus_dsb2018/stage1_test \\
        --weights=none --layers all --epochs 30 --augment
    python samples/nucleus/train.py evaluate --dataset=../shared/data/nucleus_dsb2018/stage1_test \\
        --weights=last
    python samples/nucleus/train.py detect --weights=last --image some/image.png --out out/

(``python -m samples.nucleus.train ...`` from the repository root works the same.)

See samples/nucleus/README.md (split, configs, the recorded CPU run).
"""
if not __package__:  # run as a file (python samples/nucleus/train.py): find the samples package
    import os
    import sys
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "samples.nucleus"

from mrcnn.cli import Sample, run_sample

from .nucleus import NucleusConfig, NucleusInferenceConfig, load_nucleus

SAMPLE = Sample("nucleus", NucleusConfig, load_nucleus, class_names=["BG", "nucleus"],
                inference_config=NucleusInferenceConfig,
                description="Nucleus segmentation on DSB2018 microscopy images",
                prog="samples/nucleus/train.py")


def main(argv=None):
    return run_sample(SAMPLE, argv)


if __name__ == "__main__":
    main()
