"""Nucleus segmentation (DSB2018): train from scratch, evaluate, detect.

    python -m samples.nucleus.train train --dataset ../shared/data/nucleus_dsb2018/stage1_test \\
        --weights none --layers all --epochs 30 --lr 0.01 --augment
    python -m samples.nucleus.train evaluate --dataset ../shared/data/nucleus_dsb2018/stage1_test \\
        --weights last
    python -m samples.nucleus.train detect --weights last --image some/image.png --out out/

See samples/nucleus/README.md (split, configs, the recorded CPU run).
"""
from .. import common
from .nucleus import NucleusConfig, NucleusInferenceConfig, load_nucleus

SAMPLE = common.Sample("nucleus", NucleusConfig, load_nucleus, class_names=["BG", "nucleus"],
                       inference_config=NucleusInferenceConfig,
                       description="Nucleus segmentation on DSB2018 microscopy images")


def main(argv=None):
    return common.main(SAMPLE, argv)


if __name__ == "__main__":
    main()
