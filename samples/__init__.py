"""The sample scripts (shapes, traffic, nucleus, coco): a Config and a loader each, on top
of the installed command line (``mrcnn.cli``; ``common.py`` re-exports it for old scripts).

TensorFlow's C++ warnings (grappler cost-model notes, CUDA probing on CPU machines) are
hidden for the scripts unless TF_CPP_MIN_LOG_LEVEL is set already.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
