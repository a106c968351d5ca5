import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.abspath(os.path.join(ROOT, "..", "shared", "data"))


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
