"""bench/bench_train.py counts a training step's work (the FLOPs behind its 'floor'
line) from the traced graph: convolutions, their two gradients and matrix products, of
the ops the step runs."""
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
    dense = tf.Variable(tf.ones([6, 20]))             # used transposed: [20] -> [6]
    table = tf.Variable(tf.ones([7, 3]))

    @tf.function(autograph=False)
    def step(images, rows, series):
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(images, kernel, strides=2, padding="SAME")     # [B, 4, 4, 4]
            z = tf.nn.conv2d_transpose(y, up, [tf.shape(y)[0], 8, 8, 5], strides=2)
            loss = tf.reduce_sum(z) + tf.reduce_sum(tf.matmul(rows, dense, transpose_b=True))
        # the gradients reach the outputs only through the updates (as in a train step)
        for v, g in zip([kernel, up, dense], tape.gradient(loss, [kernel, up, dense])):
            v.assign_sub(0.1 * g)
        # a product of a batch of matrices [2, 11, 7] by one [7, 3]: this one is never used
        tf.reduce_sum(tf.matmul(series, table))
        return tf.reduce_sum(tf.matmul(series, table)) + loss

    graph = step.get_concrete_function(tf.TensorSpec([None, 8, 8, 2]),
                                       tf.TensorSpec([5, 20]),
                                       tf.TensorSpec([2, 11, 7])).graph
    asked = []

    def unknown_rows(name):     # only the images' count is unknown at trace time
        asked.append(graph.get_operation_by_name(name).type)
        return 3

    total, by_type = bench_train.graph_gflop(graph, unknown_rows)
    conv = 2 * (3 * 4 * 4 * 4) * (3 * 3 * 2)           # output positions x kernel reads
    transposed = 2 * (3 * 4 * 4 * 4) * (2 * 2 * 5)     # its input positions x kernel
    dense_flops = 2 * 5 * 20 * 6
    series = 2 * 2 * 11 * 7 * 3
    # forward: the conv (Conv2D) and the transposed conv (Conv2DBackpropInput); backward:
    # the filter gradients of both, the transposed conv's input gradient (a Conv2D); the
    # conv's input gradient is not asked for (the images are no variable); the matmul's
    # gradient to its weights is one more product of the same size; of the two batched
    # products only the returned one runs
    assert by_type["Conv2D"] * 1e9 == pytest.approx(conv + transposed)
    assert by_type["Conv2DBackpropInput"] * 1e9 == pytest.approx(transposed)
    assert by_type["Conv2DBackpropFilter"] * 1e9 == pytest.approx(conv + transposed)
    assert by_type["MatMul"] * 1e9 == pytest.approx(2 * dense_flops)
    assert by_type["BatchMatMulV2"] * 1e9 == pytest.approx(series)
    assert total * 1e9 == pytest.approx(2 * conv + 3 * transposed + 2 * dense_flops + series)
    # the unknown size is asked for by the ops that have it, each named
    assert asked and set(asked) <= {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"}


def test_a_size_nobody_can_tell_is_an_error_not_a_guess():
    import tensorflow as tf
    kernel = tf.Variable(tf.ones([1, 1, 2, 2]))

    @tf.function(autograph=False)
    def f(x):
        return tf.nn.conv2d(x, kernel, 1, "SAME")

    graph = f.get_concrete_function(tf.TensorSpec([None, 4, 4, 2])).graph

    def rows(name):
        raise ValueError(name + ": unknown")
    with pytest.raises(ValueError, match="unknown"):
        bench_train.graph_gflop(graph, rows)
    assert bench_train.graph_gflop(graph, lambda name: 1)[0] * 1e9 == 2 * 16 * 2 * 2


def test_the_report_states_the_work_and_the_floor_against_the_peer():
    ours = {"times": [2.0, 2.2, 2.1], "machine": {"matmul_gflops": 200.0},
            "work": {"gflop": [400.0, 440.0], "positive_rois": [4, 17], "rois": 200}}
    peer = {"times": [3.0], "work": {"gflop": 450.0}}
    lines = bench_train.work_lines(ours, peer)
    assert "mrcnn 400-440 GFLOP" in lines[0]
    assert "4 per image before the timed steps and 17 after, of 200" in lines[0]
    assert "at 420 GFLOP, 200 GFLOP/s in the median step, 100% of the float32" in lines[0]
    assert "torchvision 450 GFLOP" in lines[1] and "150 GFLOP/s, 75% of the peak" in lines[1]
    assert lines[2].startswith("floor:               2.00 s (the least of mrcnn's work at "
                               "the matmul peak) = 0.67x torchvision's step; the median "
                               "step is 1.05x")
    # not float32 on the CPU: no floor; no count: no lines
    assert [line[:6] for line in bench_train.work_lines(ours, peer, floor=False)] == \
        ["work p", "      "]
    assert bench_train.work_lines(dict(ours, work=None), peer) == []
