import gc
import os
import resource
import sys
import time

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.abspath(os.path.join(ROOT, "..", "shared", "data"))
_STARTED = time.monotonic()


@pytest.fixture(autouse=True, scope="module")
def _free_models_after_each_file():
    """Models built by one test file (module fixtures included) are freed before the
    next file builds its own: Keras keeps every layer name in its global state."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
    gc.collect()


def pytest_terminal_summary(terminalreporter):
    """The suite's wall time and peak memory (this process and, separately, the largest
    child process), printed at the end of every run."""
    def peak_gib(who):
        return resource.getrusage(who).ru_maxrss / 2 ** 20    # Linux: KiB
    terminalreporter.write_line(
        "suite: {:.0f} s wall, peak RSS {:.2f} GiB (largest child process {:.2f} GiB)".format(
            time.monotonic() - _STARTED, peak_gib(resource.RUSAGE_SELF),
            peak_gib(resource.RUSAGE_CHILDREN)))


def shared_path(*parts):
    """Path under ../shared/data, or skip the test with a clear message."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip("needs the real data at {} (../shared/data is missing on this machine)"
                    .format(path))
    return path


@pytest.fixture(scope="session")
def coco_sample():
    return shared_path("coco_val2017_sample")


@pytest.fixture
def rng():
    return np.random.RandomState(0)


@pytest.fixture(scope="session")
def openimages_sample():
    return shared_path("openimages_sample")


@pytest.fixture(scope="session")
def nucleus_sample():
    return shared_path("nucleus_dsb2018", "stage1_test")


@pytest.fixture(scope="session")
def tiny_shapes_weights(tmp_path_factory):
    """A TinyShapesConfig checkpoint trained for one short epoch (about half a minute),
    with class_names.json beside it: the model the export and demo tests serve."""
    from tiny_configs import train_tiny_shapes
    return train_tiny_shapes(str(tmp_path_factory.mktemp("tinyshapes")))
