"""The MLflow callback: one tiny training run into a temporary folder store, read back."""
import os

import pytest

from mrcnn import evaluate
from mrcnn import model as modellib
from mrcnn.tracking import MLflowCallback
from samples.shapes.shapes import ShapesDataset
from samples.shapes.train import ShapesTrainConfig
from tiny_configs import tiny_config_class

mlflow = pytest.importorskip("mlflow")

# the shapes sample's own sizes, with 32-channel heads and two images per step
TinyShapes = tiny_config_class("tinyshapes", base=ShapesTrainConfig, sizes="base",
                               IMAGES_PER_GPU=2, TOP_DOWN_PYRAMID_SIZE=32,
                               FPN_CLASSIF_FC_LAYERS_SIZE=32, MASK_HEAD_CHANNELS=32)


def shapes(n, seed):
    d = ShapesDataset()
    d.load_shapes(n, 64, 64, seed=seed)
    d.prepare()
    return d


def test_params_metrics_and_artifacts_are_logged_to_a_folder_store(tmp_path):
    store = tmp_path / "mlruns"
    model = modellib.MaskRCNN("training", TinyShapes(), str(tmp_path / "logs"))
    tracker = MLflowCallback(model, tracking_uri=str(store), experiment="shapes-test")
    every = MLflowCallback(model, tracking_uri=str(tmp_path / "all"), experiment="shapes-test",
                           checkpoints="all")
    h1 = model.train(shapes(6, 1), shapes(2, 2), 0.01, 1, "heads",
                     custom_callbacks=[tracker, every], verbose=0, seed=0)
    # (the same layers: the second stage keeps the traced steps of the first)
    model.train(shapes(6, 1), shapes(2, 2), 0.001, 2, "heads",
                custom_callbacks=[tracker, every], verbose=0, seed=0)
    client = mlflow.tracking.MlflowClient(tracking_uri="file://" + str(store))
    run = client.get_run(tracker.run_id)
    params = run.data.params
    assert params["NAME"] == "tinyshapes" and params["NUM_CLASSES"] == "4"
    assert params["MASK_HEAD_CHANNELS"] == "32" and params["BATCH_SIZE"] == "2"
    assert params["stage1_learning_rate"] == "0.01" and params["stage2_epochs"] == "2-2"
    assert float(params["stage2_learning_rate"]) == pytest.approx(0.001)
    history = client.get_metric_history(tracker.run_id, "loss")
    assert [m.step for m in history] == [1, 2]
    assert history[0].value == pytest.approx(h1.history["loss"][0], rel=1e-6)
    assert {"mrcnn_mask_loss", "val_loss", "rpn_class_loss"} <= set(run.data.metrics)
    # what training started from, and on what
    assert params["initial_weights"] == "none (random)"
    assert params["stage1_train_dataset"] == "6 images, ShapesDataset (in memory)"
    assert params["stage2_val_dataset"] == "2 images, ShapesDataset (in memory)"
    assert params["classes"] == "square, circle, triangle"
    # by default two weight files, each replaced by later uploads: the last and the best
    ckpts = {os.path.basename(a.path): a.file_size
             for a in client.list_artifacts(tracker.run_id, "checkpoints")}
    assert sorted(ckpts) == ["mask_rcnn_tinyshapes_best.h5", "mask_rcnn_tinyshapes_last.h5"]
    local = client.download_artifacts(tracker.run_id, "checkpoints/mask_rcnn_tinyshapes_last.h5",
                                      str(tmp_path / "dl"))
    with open(local, "rb") as a, open(model.checkpoint_path.format(epoch=2), "rb") as b:
        assert a.read() == b.read()
    assert sorted(a.path for a in client.list_artifacts(tracker.run_id, "logs")) == \
        ["logs/history.json", "logs/losses.csv", "logs/losses.png", "logs/run.json"]
    # checkpoints="all": every epoch's file
    all_client = mlflow.tracking.MlflowClient(tracking_uri="file://" + str(tmp_path / "all"))
    assert [os.path.basename(a.path) for a in all_client.list_artifacts(every.run_id,
                                                                        "checkpoints")] == \
        ["mask_rcnn_tinyshapes_0001.h5", "mask_rcnn_tinyshapes_0002.h5"]

    # an evaluation: metrics and the PR-curve PNGs and JSON as artifacts
    out = tmp_path / "eval"
    os.makedirs(out)
    png = out / "pr_curve_segm.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    report = {"coco": {"segm": {"AP": 0.25, "AP50": 0.5, "APl": -1.0, "per_category": {}},
                       "pr_curves": {"segm": str(png)}},
              "per_image": {"mAP": 0.75, "mAP_range": 0.4, "mAP@0.75": 0.5}}
    json_path = evaluate.save_report(report, str(out / "evaluation.json"))
    logged = tracker.log_evaluation(report, json_path=json_path)
    assert logged == {"eval/segm_AP": 0.25, "eval/segm_AP50": 0.5, "eval/mAP": 0.75,
                      "eval/mAP_range": 0.4, "eval/mAP@0.75": 0.5}
    metrics = client.get_run(tracker.run_id).data.metrics
    assert metrics["eval/segm_AP"] == 0.25 and metrics["eval/mAP_at_0.75"] == 0.5
    assert "eval/segm_APl" not in metrics  # -1: nothing to average, not logged
    assert sorted(a.path for a in client.list_artifacts(tracker.run_id, "eval")) == \
        ["eval/evaluation.json", "eval/pr_curve_segm.png"]


def test_bad_checkpoints_option():
    class M:
        config = TinyShapes()
    with pytest.raises(ValueError, match="checkpoints="):
        MLflowCallback(M(), checkpoints="some")
