"""The sample scripts (shapes, traffic, nucleus, coco) and what they share (common.py).

TensorFlow's C++ warnings (grappler cost-model notes, CUDA probing on CPU machines) are
hidden for the scripts unless TF_CPP_MIN_LOG_LEVEL is set already.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
