"""mrcnn: Mask R-CNN for Keras 3 / TensorFlow 2, in the Matterport style.

Importing the package does not import TensorFlow; ``mrcnn.model`` does.
"""
__version__ = "0.1.0"
