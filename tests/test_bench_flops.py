"""bench/bench_train.py counts a training step's work (the FLOPs behind its 'floor'
line) from the traced graph: convolutions, their two gradients and matrix products."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench_train  # noqa: E402


def test_a_step_counts_each_convolution_its_two_gradients_and_matrix_products():
    import tensorflow as tf
    kernel = tf.Variable(tf.ones([3, 3, 2, 4]))       # 3x3, 2 -> 4 channels
    up = tf.Variable(tf.ones([2, 2, 5, 4]))           # transposed 2x2, 4 -> 5 channels
    dense = tf.Variable(tf.ones([20, 6]))

    @tf.function(autograph=False)
    def step(images, rows):
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(images, kernel, strides=2, padding="SAME")     # [B, 4, 4, 4]
            z = tf.nn.conv2d_transpose(y, up, [tf.shape(y)[0], 8, 8, 5], strides=2)
            loss = tf.reduce_sum(z) + tf.reduce_sum(tf.matmul(rows, dense))
        return tape.gradient(loss, [kernel, up, dense])

    graph = step.get_concrete_function(tf.TensorSpec([None, 8, 8, 2]),
                                       tf.TensorSpec([None, 20])).graph
    total, by_type = bench_train.graph_gflop(graph, lambda name: 3)
    conv = 2 * (3 * 4 * 4 * 4) * (3 * 3 * 2)           # output positions x kernel reads
    transposed = 2 * (3 * 4 * 4 * 4) * (2 * 2 * 5)     # its input positions x kernel
    matmul = 2 * 3 * 20 * 6
    # forward: conv (Conv2D) and the transposed conv (Conv2DBackpropInput); backward:
    # the filter gradients of both, the transposed conv's input gradient (a Conv2D);
    # the conv's input gradient is not asked for (the images are no variable); the
    # matmul's gradient to its weights is one more matmul of the same size
    assert by_type["Conv2D"] * 1e9 == pytest.approx(conv + transposed)
    assert by_type["Conv2DBackpropInput"] * 1e9 == pytest.approx(transposed)
    assert by_type["Conv2DBackpropFilter"] * 1e9 == pytest.approx(conv + transposed)
    assert by_type["MatMul"] * 1e9 == pytest.approx(2 * matmul)
    assert total * 1e9 == pytest.approx(2 * conv + 3 * transposed + 2 * matmul)


def test_the_report_states_the_floor_against_the_peer():
    ours = {"times": [2.0, 2.2, 2.1], "machine": {"matmul_gflops": 200.0},
            "work": {"gflop": 400.0, "positive_rois": 12, "rois": 200}}
    peer = {"times": [3.0], "work": {"gflop": 450.0}}
    lines = bench_train.work_lines(ours, peer)
    assert "mrcnn 400 GFLOP" in lines[0] and "mask head on 12 positive ROIs of 200" in lines[0]
    assert "190 GFLOP/s in the median step, 95% of the float32 matmul peak" in lines[0]
    assert "torchvision 450 GFLOP" in lines[1] and "150 GFLOP/s, 75% of the peak" in lines[1]
    assert lines[2].startswith("floor:               2.00 s (mrcnn's work at the matmul "
                               "peak) = 0.67x torchvision's step; the median step is 1.05x")
    assert bench_train.work_lines(dict(ours, work=None), peer) == []
