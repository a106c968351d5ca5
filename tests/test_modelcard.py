"""python -m mrcnn.modelcard on a small evaluation JSON."""
import json
import os

import pytest

from mrcnn import modelcard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EVAL = {
    "coco": {"num_images": 13, "num_detections": 420,
             "bbox": {"AP": 0.4321, "AP50": 0.7012, "AP75": 0.45, "APs": 0.3, "APm": 0.5,
                      "APl": -1.0, "AR1": 0.1, "AR10": 0.4, "AR100": 0.55,
                      "per_category": {"1": {"category_id": 1, "name": "nucleus",
                                             "AP": 0.4321, "AP50": 0.7012}}},
             "segm": {"AP": 0.3876, "AP50": 0.6543, "AP75": 0.4, "APs": 0.28, "APm": 0.45,
                      "APl": -1.0, "AR1": 0.1, "AR10": 0.38, "AR100": 0.5,
                      "per_category": {"1": {"category_id": 1, "name": "nucleus",
                                             "AP": 0.3876, "AP50": 0.6543}}}},
    "per_image": {"iou_threshold": 0.5, "mAP": 0.6111, "mAP_range": 0.3333,
                  "mAP@0.75": 0.4444, "num_images": 13, "num_skipped": 0, "per_image": []},
    "dataset": "/data/nucleus",
}


def write_run(tmp_path, names=("BG", "nucleus")):
    run = tmp_path / "nucleus20261122T0700"
    run.mkdir()
    weights = run / "mask_rcnn_nucleus_0002.h5"
    weights.write_bytes(b"\x89HDF\r\n" + b"0" * 1000)
    (run / "class_names.json").write_text(json.dumps(list(names)))
    (run / "history.json").write_text(json.dumps([
        {"epoch": 1, "layers": "heads", "lr": 0.01, "loss": 2.5, "mrcnn_mask_loss": 0.6},
        {"epoch": 2, "layers": "all", "lr": 0.001, "loss": 1.25, "mrcnn_mask_loss": 0.4}]))
    (tmp_path / "eval.json").write_text(json.dumps(EVAL))
    return str(weights)


def test_card_has_every_section_and_the_numbers(tmp_path):
    weights = write_run(tmp_path)
    (tmp_path / "about.json").write_text(json.dumps({
        "description": "Finds nuclei in microscopy images.",
        "intended_use": ["Counting nuclei in fluorescence images", "Teaching"],
        "biases": "Mostly fluorescence images; few histology slides.",
        "license": "MIT"}))
    out = tmp_path / "MODEL_CARD.md"
    modelcard.main(["--weights", weights, "--config",
                    "samples.nucleus.nucleus:NucleusConfig", "--eval",
                    str(tmp_path / "eval.json"), "--about", str(tmp_path / "about.json"),
                    "--out", str(out)])
    text = out.read_text()
    for section in ("# Model card: Mask R-CNN: nucleus", "## Model details", "## Training",
                    "## Metrics", "## Intended use", "## Limitations",
                    "## Known biases of the data", "## License and citation"):
        assert section in text
    assert "| Backbone | resnet50 |" in text and "| Classes (incl. background) | 2 |" in text
    assert "Classes: nucleus." in text
    assert "| AP | 0.432 | 0.388 |" in text and "| AP50 | 0.701 | 0.654 |" in text
    assert "| APl | - | - |" in text
    # per class: keyed by category id in the report, shown as "name (id)"
    assert "| nucleus (1) | 0.432 | 0.701 | 0.388 | 0.654 |" in text
    assert "- mAP @ IoU 0.5: 0.611" in text and "- mAP @ IoU 0.75: 0.444" in text
    assert "- mAP @ IoU 0.50:0.95: 0.333" in text
    assert ("layers `heads` for epochs 1-1 at lr 0.01; layers `all` for epochs 2-2 at lr "
            "0.001") in text
    assert "loss 1.2500" in text and "mrcnn_mask_loss 0.4000" in text
    assert ("Optimiser: SGD, momentum 0.9, gradient norm clipped at 5.0, weight decay "
            "0.0001; 2 image(s) per step; TRAIN_BN = None, TRAIN_BN_AFFINE = True.") in text
    assert "- Counting nuclei in fluorescence images\n- Teaching" in text
    assert "Mostly fluorescence images" in text
    # what was not given and cannot be known says so
    assert "_Not provided. Pass it in `--about` (key `out_of_scope`)._" in text
    # limitations that follow from the config are filled in
    assert ("- Trained on random 256x256 crops of the images; objects much smaller than the "
            "smallest anchor (8 px at that size) are often missed. _(derived)_") in text
    # the getting-started snippet loads these weights with the card's config
    assert "from samples.nucleus.nucleus import NucleusConfig" in text
    assert 'model.load_weights("mask_rcnn_nucleus_0002.h5", by_name=True)' in text


def test_card_reads_run_json_for_start_hardware_time_and_data(tmp_path):
    weights = write_run(tmp_path)
    run = {"machine": {"cpu": {"model": "AMD EPYC", "cores": 2, "flags": ["avx2", "avx512f"]},
                       "memory_gib": 23.5, "tensorflow": "2.21.0"},
           "initial_weights": {"path": "/w/mask_rcnn_coco.h5", "sha256": "ab" * 32,
                               "layers_loaded": 229, "excluded": ["mrcnn_bbox", "mrcnn_mask"]},
           "stages": [{"layers": "heads", "seconds": 600.0, "epochs": [1, 1],
                       "train_dataset": {"class": "NucleusDataset", "images": 50,
                                         "folder": "/data/nucleus/stage1_train",
                                         "class_names": ["BG", "nucleus"], "sources": []},
                       "val_dataset": None},
                      {"layers": "all", "seconds": 300.0, "epochs": [2, 2]}]}
    (tmp_path / "nucleus20261122T0700" / "run.json").write_text(json.dumps(run))
    text = modelcard.build_card(weights, modelcard.load_config(
        "samples.nucleus.nucleus:NucleusConfig"))
    assert ("**Fine-tuned from:** `mask_rcnn_coco.h5` (sha256 `abababababababab`, 229 layers "
            "loaded, excluding mrcnn_bbox, mrcnn_mask).") in text
    assert ("**Hardware and time.** AMD EPYC (2 cores; avx2 avx512f), 23.5 GiB, TF 2.21.0; "
            "15.0 minutes of training over 2 stages.") in text
    assert ("**Data.** Trained on 50 images (NucleusDataset, `/data/nucleus/stage1_train`) "
            "(from run.json).") in text
    assert "- Trained on only 50 images" in text
    assert "- Instance segmentation (boxes and masks) of: nucleus." in text


def test_card_errors_name_the_problem(tmp_path, capsys):
    weights = write_run(tmp_path, names=("BG", "a", "b"))
    with pytest.raises(SystemExit):
        modelcard.main(["--weights", weights, "--config",
                        "samples.nucleus.nucleus:NucleusConfig", "--out",
                        str(tmp_path / "c.md")])
    assert "has 3 names but NucleusConfig.NUM_CLASSES is 2" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown keys"):
        modelcard.build_card(weights, modelcard.load_config(
            "samples.traffic.traffic:TrafficConfig"), about={"purpose": "x"})


def test_card_schedule_shows_a_decaying_rate_as_a_range_and_file_configs_load(tmp_path):
    weights = write_run(tmp_path)
    run = tmp_path / "nucleus20261122T0700"
    (run / "history.json").write_text(json.dumps([
        {"epoch": 1, "layers": "all", "lr": 0.019999999552965164, "loss": 2.0},
        {"epoch": 2, "layers": "all", "lr": 0.004999999422580004, "loss": 1.5},
        {"epoch": 3, "layers": "all", "lr": 0.0, "loss": 1.4}]))
    spec = os.path.join(ROOT, "samples", "nucleus", "nucleus.py") + ":NucleusConfig"
    text = modelcard.build_card(weights, modelcard.load_config(spec), config_spec=spec)
    assert "layers `all` for epochs 1-3 at lr 0.02 -> 0." in text
    assert 'NucleusConfig = load_config_class("{}")'.format(spec) in text
