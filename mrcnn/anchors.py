"""Anchor generation (NumPy).

Anchors are ``[N, (y1, x1, y2, x2)]`` in pixels of the molded (resized, padded) image.
Centres sit at cell corners: ``arange(0, feature_size) * feature_stride``. The order is
pyramid level, then row, then column, then ratio.
"""
import math

import numpy as np


def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride, rounding=False):
    """Anchors for one feature map.

    scales: 1-D array of anchor sizes in pixels, e.g. [32, 64, 128].
    ratios: 1-D array of width/height ratios, e.g. [0.5, 1, 2].
    shape: [height, width] of the feature map.
    feature_stride: stride of the feature map relative to the image, in pixels.
    anchor_stride: stride of anchors on the feature map (1: an anchor set per cell).
    rounding: round the half-heights and half-widths to whole pixels (torchvision's
        AnchorGenerator; Config.RPN_ANCHOR_ROUNDING).
    Returns: [height * width * len(scales) * len(ratios) / anchor_stride**2, 4].
    """
    scales, ratios = np.meshgrid(np.array(scales), np.array(ratios))
    scales = scales.flatten()
    ratios = ratios.flatten()
    heights = scales / np.sqrt(ratios)
    widths = scales * np.sqrt(ratios)
    shifts_y = np.arange(0, shape[0], anchor_stride) * feature_stride
    shifts_x = np.arange(0, shape[1], anchor_stride) * feature_stride
    shifts_x, shifts_y = np.meshgrid(shifts_x, shifts_y)
    box_widths, box_centers_x = np.meshgrid(widths, shifts_x)
    box_heights, box_centers_y = np.meshgrid(heights, shifts_y)
    box_centers = np.stack([box_centers_y, box_centers_x], axis=2).reshape([-1, 2])
    box_sizes = np.stack([box_heights, box_widths], axis=2).reshape([-1, 2])
    half = 0.5 * box_sizes
    if rounding:
        half = np.round(half)
    return np.concatenate([box_centers - half, box_centers + half], axis=1)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride,
                             rounding=False):
    """Anchors for every level of a feature pyramid, concatenated (P2 first).

    scales: one anchor size per level; feature_shapes: [levels, (height, width)];
    feature_strides: one stride per level; rounding: see ``generate_anchors``.
    Returns: [N, (y1, x1, y2, x2)].
    """
    anchors = []
    for i in range(len(scales)):
        anchors.append(generate_anchors(scales[i], ratios, feature_shapes[i],
                                        feature_strides[i], anchor_stride, rounding))
    return np.concatenate(anchors, axis=0)


def compute_backbone_shapes(config, image_shape):
    """[levels, (height, width)] of the backbone's feature maps for an image shape.

    With a callable config.BACKBONE, config.COMPUTE_BACKBONE_SHAPE answers. Otherwise
    ResNet: ceil(size / stride) per level.
    """
    if callable(config.BACKBONE):
        return config.COMPUTE_BACKBONE_SHAPE(config, image_shape)
    return np.array([[int(math.ceil(image_shape[0] / stride)),
                      int(math.ceil(image_shape[1] / stride))]
                     for stride in config.BACKBONE_STRIDES])
