"""samples/nucleus on the real DSB2018 data: the split and the instance counts."""
import os

import numpy as np
import pandas as pd
import pytest

from samples import common
from samples.nucleus.nucleus import VAL_IDS, load_nucleus

NAMED = ["0114f484a16c152baa2d82fdd43740880a762c93f436c8988ac461c5c9dbe7d5",
         "0999dab07b11bc85fb8464fc36c947fbd8b5d6ec49817361cb780659ca805eac",
         "0a849e0eb15faa8a6d7329c3dd66aabe9a294cccb52ed30a90c8ca99092ae732"]


@pytest.fixture(scope="module")
def nucleus_dir(nucleus_sample):
    return nucleus_sample


def test_fixed_split(nucleus_dir):
    train = load_nucleus(nucleus_dir, "train")
    val = load_nucleus(nucleus_dir, "val")
    ids = sorted(os.listdir(nucleus_dir))
    assert len(ids) == 65
    assert [val.image_reference(i) for i in val.image_ids] == VAL_IDS == ids[::5]
    train_ids = [train.image_reference(i) for i in train.image_ids]
    assert len(train_ids) == 52 and not set(train_ids) & set(VAL_IDS)
    assert train.class_names == ["BG", "nucleus"]


def test_instance_counts_of_three_named_images_match_the_files(nucleus_dir):
    ds = load_nucleus(nucleus_dir, "all")
    solution = pd.read_csv(os.path.join(os.path.dirname(nucleus_dir), "stage1_solution.csv"))
    by_ref = {ds.image_reference(i): i for i in ds.image_ids}
    counts = []
    for name in NAMED:
        masks, class_ids = ds.load_mask_checked(by_ref[name])
        files = os.listdir(os.path.join(nucleus_dir, name, "masks"))
        assert masks.shape[-1] == len(files) == int((solution["ImageId"] == name).sum())
        assert set(class_ids) == {1}
        # every mask is one nucleus: non-empty and disjoint from the others
        assert masks.reshape(-1, masks.shape[-1]).any(axis=0).all()
        assert masks.sum(axis=-1).max() == 1
        counts.append(masks.shape[-1])
    assert counts == [7, 59, 50]


def test_missing_dataset_folder_is_named(tmp_path):
    with pytest.raises(common.SampleError, match="no such folder"):
        load_nucleus(str(tmp_path / "nope"), "train")
    with pytest.raises(common.SampleError, match="no <id>/images/"):
        load_nucleus(str(tmp_path), "train")
