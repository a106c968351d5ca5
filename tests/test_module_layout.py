"""The package layout: the NumPy side (data, boxes, masks, RPN targets, the input
pipeline's Python part) and the Open Images downloader import without TensorFlow; the
classic import paths keep their names; mrcnn.model says what it exports."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TF_FREE = [
    "mrcnn", "mrcnn.pipeline", "mrcnn.utils", "mrcnn.config", "mrcnn.dataset",
    "mrcnn.datasets", "mrcnn.datasets.coco", "mrcnn.datasets.via",
    "mrcnn.datasets.instance_png", "mrcnn.datasets.mask_folders", "mrcnn.datasets.npy",
    "mrcnn.datasets.split", "mrcnn.masks", "mrcnn.boxes", "mrcnn.molding",
    "mrcnn.rpn_targets", "mrcnn.anchors", "mrcnn.imageops", "mrcnn.metrics",
    "mrcnn.augment", "mrcnn.evaluate", "mrcnn.visualize", "mrcnn.inference_model",
    "mrcnn.launch",
    "openimages", "openimages.__main__", "openimages.classes", "openimages.coco_export",
    "openimages.dataset", "openimages.download", "openimages.metadata", "openimages.names",
    "openimages.net", "openimages.partfiles", "openimages.rangezip",
]


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_importing_the_pipeline_does_not_import_tensorflow():
    res = run_python("import mrcnn.pipeline, sys; assert 'tensorflow' not in sys.modules")
    assert res.returncode == 0, res.stderr[-2000:]


def test_numpy_side_modules_and_the_downloader_do_not_import_tensorflow():
    # imported one after another: the first one that brings TensorFlow in is named
    code = ("import importlib, sys\n"
            "for name in {!r}:\n"
            "    importlib.import_module(name)\n"
            "    heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
            "    if heavy:\n"
            "        sys.exit('importing {{}} imported {{}}'.format(name, heavy))\n"
            .format(TF_FREE))
    res = run_python(code)
    assert res.returncode == 0, res.stderr[-2000:]


def test_classic_import_paths_keep_their_names():
    from mrcnn import config, model, utils, visualize
    for name in ["MaskRCNN", "log", "compose_image_meta", "parse_image_meta", "mold_image",
                 "mold_inputs", "unmold_image", "parse_image_meta_graph", "norm_boxes_graph",
                 "denorm_boxes_graph", "apply_box_deltas_graph", "clip_boxes_graph",
                 "overlaps_graph", "trim_zeros_graph", "resnet_graph", "BatchNorm",
                 "ProposalLayer", "PyramidROIAlign", "DetectionLayer", "DetectionTargetLayer",
                 "detection_targets_graph", "build_rpn_targets", "generate_random_rois",
                 "load_image_gt", "data_generator", "rpn_class_loss_graph",
                 "mrcnn_mask_loss_graph", "fpn_classifier_graph", "build_fpn_mask_graph"]:
        assert name in model.__all__ and callable(getattr(model, name)), name
    for name in ["Dataset", "extract_bboxes", "compute_iou", "compute_overlaps",
                 "non_max_suppression", "apply_box_deltas", "box_refinement", "trim_zeros",
                 "norm_boxes", "denorm_boxes", "resize_image", "resize_mask", "minimize_mask",
                 "expand_mask", "unmold_mask", "generate_pyramid_anchors", "compute_ap",
                 "compute_matches", "compute_recall", "batch_slice",
                 "download_trained_weights"]:
        assert callable(getattr(utils, name)), name
    assert callable(config.Config) and callable(visualize.display_instances)
    # the samples' small backbone lives in the library, and the shapes sample still has it
    from mrcnn.backbone import small_backbone
    from samples.shapes import train
    assert train.small_backbone is small_backbone


def test_model_exports_only_public_names_that_exist():
    from mrcnn import model
    assert len(model.__all__) == len(set(model.__all__))
    assert [n for n in model.__all__ if n.startswith("_")] == []
    assert [n for n in model.__all__ if not hasattr(model, n)] == []
    private = [n for n in vars(model) if n.startswith("_") and not n.startswith("__")]
    assert private == [], "private names in mrcnn.model: {}".format(private)
    namespace = {}
    exec("from mrcnn.model import *", namespace)
    assert {"MaskRCNN", "mold_inputs", "parse_image_meta"} <= set(namespace)


def test_image_meta_is_read_through_its_parser():
    """The meta layout is molding.IMAGE_META_LAYOUT; the library reads fields through
    parse_image_meta / parse_image_meta_graph, never by position (meta[:, 12:])."""
    by_position = re.compile(r"meta\w*\[\s*:\s*,\s*\d")
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "mrcnn")):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    for number, line in enumerate(f, 1):
                        if by_position.search(line):
                            found.append("{}:{}: {}".format(os.path.relpath(path, ROOT),
                                                            number, line.strip()))
    assert found == []
