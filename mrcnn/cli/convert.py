"""``mrcnn convert torchvision IN.pth OUT.h5``: torchvision weights -> mrcnn weights.

The work is ``mrcnn.convert_torchvision.convert_torchvision``; this module is its
command line, and the cache behind ``--weights torchvision-coco``.
"""
import os

from .common import CliError

SOURCES = ("torchvision",)


def add_convert_arguments(q):
    q.add_argument("source", choices=SOURCES,
                   help="where the weights come from: torchvision (a maskrcnn_resnet50_fpn "
                        "v1 state_dict or checkpoint, or a torchvision ResNet-50/101 for the "
                        "backbone alone)")
    q.add_argument("input", metavar="IN.pth", help="the PyTorch file (.pth / .pt)")
    q.add_argument("output", metavar="OUT.h5",
                   help="the weight file to write; OUT.json (the config) is written beside it")
    q.add_argument("--num-classes", type=int, default=None, metavar="N",
                   help="check that the file's box predictor has N classes, background "
                        "included (default: take the file's)")
    q.add_argument("--verbose", action="store_true", help="show all log lines")


def cmd_convert(args):
    """Convert torchvision weights to mrcnn's classic HDF5 layout."""
    from ..convert_torchvision import ConversionError, convert_torchvision
    try:
        info = convert_torchvision(args.input, args.output, num_classes=args.num_classes)
    except (ConversionError, FileNotFoundError) as e:
        raise CliError(str(e))
    what = "Mask R-CNN, NUM_CLASSES = {}".format(info["num_classes"]) \
        if info["kind"] == "maskrcnn" else "backbone only ({})".format(info["backbone"])
    print("wrote {} ({} layers; {})".format(info["weights"], info["layers"], what))
    print("wrote {} (the config: --config {})".format(info["config"], info["config"]))
    return info


def torchvision_coco_weights(folder=None):
    """The converted torchvision COCO Mask R-CNN (``--weights torchvision-coco``):
    weights/maskrcnn_resnet50_fpn_coco.h5, converted once from torchvision's
    maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth (looked for in the same folder, or at
    $MRCNN_TORCHVISION_COCO_PTH; downloaded there when online). Returns the .h5 path;
    CliError saying where the .pth goes when it cannot be had."""
    from .. import utils
    from ..convert_torchvision import (TORCHVISION_COCO_NAME, TORCHVISION_COCO_URL,
                                       ConversionError, convert_torchvision)
    folder = folder or os.environ.get("MRCNN_WEIGHTS_DIR") or "weights"
    target = os.path.join(folder, "maskrcnn_resnet50_fpn_coco.h5")
    if os.path.isfile(target):
        return target
    pth = os.environ.get("MRCNN_TORCHVISION_COCO_PTH") or os.path.join(
        folder, TORCHVISION_COCO_NAME)
    if not os.path.isfile(pth):
        try:
            utils.download_trained_weights(pth, verbose=0, url=TORCHVISION_COCO_URL)
        except RuntimeError as e:
            raise CliError("--weights torchvision-coco: {} is not here and the download "
                           "failed ({}). Download {} elsewhere and put it at {} (or set "
                           "MRCNN_TORCHVISION_COCO_PTH to it); it is converted to {} on first "
                           "use.".format(pth, e, TORCHVISION_COCO_URL, pth, target))
    try:
        convert_torchvision(pth, target)
    except (ConversionError, FileNotFoundError) as e:
        raise CliError("--weights torchvision-coco: {}".format(e))
    print("converted {} -> {} (once; later runs use it)".format(pth, target))
    return target
