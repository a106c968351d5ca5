"""The demo and the shapes sample script."""
import json
import os

import pytest
from PIL import Image


def test_demo_draws_datasets_without_training(tmp_path):
    from samples import demo
    demo.main(["--out", str(tmp_path), "--train-minutes", "0"])
    with Image.open(tmp_path / "shapes_dataset.png") as im:
        assert im.size[0] > 300
    if os.path.isdir(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")):
        assert (tmp_path / "coco_sample.png").exists()


@pytest.mark.slow
def test_shapes_train_script_end_to_end(tmp_path):
    pytest.importorskip("tensorflow")
    from samples.shapes import train
    summary = train.main(["--epochs", "1", "--train-images", "40", "--val-images", "4",
                          "--out", str(tmp_path)])
    assert summary["epochs"] == 1
    assert os.path.exists(summary["weights"]) and os.path.exists(summary["picture"])
    assert json.load(open(tmp_path / "summary.json"))["heldout_images"] == 4
