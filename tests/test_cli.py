"""The installed command line (``mrcnn`` / ``python -m mrcnn``): every dataset layout end
to end, options that mean what they say, --set, the split, the time budget, quiet logs."""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cli_layouts import LAYOUTS, CliTinyConfig, stems, write_layout
from mrcnn.cli import main
from mrcnn.cli.common import COCO_CLASS_NAMES
from mrcnn.config import ConfigError, apply_overrides, load_config_class
from mrcnn.datasets.split import (SplitError, apply_split, read_split, split_dataset,
                                  split_keys)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
TINY = ["--config", "cli_layouts:CliTinyConfig"]


def cli_env():
    """The environment of a subprocess: this worktree's mrcnn and the tests' configs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, TESTS])
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user's shell has: nothing
    env["MPLBACKEND"] = "Agg"
    return env


def run_main(argv, capsys):
    """main(argv) in-process -> (return value, stdout, stderr)."""
    result = main(argv)
    out, err = capsys.readouterr()
    return result, out, err


def error_of(argv, capsys):
    """The one-line error and exit code 2 of a command that must be refused."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


# ---------------------------------------------------------------- one real subprocess run

@pytest.fixture(scope="module")
def coco_run(tmp_path_factory):
    """``python -m mrcnn train`` on the COCO layout (category and annotation ids from 0),
    as a user runs it: a subprocess, from a folder outside the repository, no
    TF_CPP_MIN_LOG_LEVEL in the environment."""
    root = tmp_path_factory.mktemp("cli-coco")
    options, names = write_layout("coco", root / "data")
    logs = root / "logs"
    cmd = [sys.executable, "-m", "mrcnn", "train"] + options + [
        "--weights", "none", "--layers", "heads", "--epochs", "1", "--logs", str(logs),
        "--val-fraction", "0.2", "--test-fraction", "0.2", "--seed", "3",
        "--set", "DETECTION_MAX_INSTANCES=20", "--quiet"] + TINY
    proc = subprocess.run(cmd, cwd=str(root), env=cli_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [logs / d for d in os.listdir(logs)]
    return {"root": root, "options": options, "names": names, "logs": logs,
            "run": run_dir, "stdout": proc.stdout, "stderr": proc.stderr}


def test_train_subprocess_has_no_tensorflow_noise_and_a_short_run_block(coco_run):
    err, out = coco_run["stderr"], coco_run["stdout"]
    for noise in ("cuInit", "oneDNN", "cuda drivers", "PredictCost", "absl::InitializeLog",
                  "cpu_feature_guard"):
        assert noise not in err and noise not in out, noise
    assert "Configurations:" not in out  # the full configuration is in config.json
    block = out.split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in block] == ["run", "data", "classes", "config",
                                                   "weights", "schedule", "steps"]
    assert "coco " in block[1] and "4 train, 1 val images" in block[1] and "1 test" in block[1]
    assert block[2].split(None, 1)[1] == "2: square, disk"
    # --lr not given: the config's LEARNING_RATE, printed as a number
    assert block[5].split(None, 1)[1] == "heads epoch 1 at lr 0.0125"
    assert "LR=0.0125" in out
    assert "Epoch 1/1" in out and "last checkpoint:" in out


def test_train_writes_config_split_and_class_names_beside_the_checkpoint(coco_run):
    run = coco_run["run"]
    assert sorted(f for f in os.listdir(run) if f.endswith(".h5")) == [
        "mask_rcnn_clitiny_0001.h5", "mask_rcnn_clitiny_best.h5"]
    # train() wrote the per-step and per-epoch records and the curves
    for name in ("losses.csv", "history.json", "losses.png"):
        assert (run / name).is_file(), name
    with open(run / "config.json") as f:
        config = json.load(f)
    assert config["LEARNING_RATE"] == 0.0125            # --lr unset: left alone
    assert config["STEPS_PER_EPOCH"] == 1               # --steps unset: left alone
    assert config["DETECTION_MAX_INSTANCES"] == 20      # --set
    assert config["NUM_CLASSES"] == 3 and config["_class"] == "cli_layouts:CliTinyConfig"
    with open(run / "class_names.json") as f:
        assert json.load(f) == ["BG", "square", "disk"]
    with open(run / "split.json") as f:
        split = json.load(f)
    keys = ["coco.{}".format(i) for i in range(6)]
    assert {k: v["keys"] for k, v in split["subsets"].items()} == split_keys(keys, 0.2, 0.2, 3)
    assert [v["count"] for v in (split["subsets"][s] for s in ("train", "val", "test"))] == \
        [4, 1, 1]
    assert split["seed"] == 3 and split["format"] == "coco"
    assert all(r.endswith(".png") for r in split["subsets"]["test"]["references"])
    with open(run / "run.json") as f:
        record = json.load(f)
    assert record["command_lines"][0]["set"] == ["DETECTION_MAX_INSTANCES=20"]
    # train() recorded the machine and each stage that ran
    assert record["machine"]["cpu"]["cores"] >= 1
    assert [s["layers"] for s in record["stages"]] == ["heads"]
    assert record["stages"][0]["train_dataset"]["images"] == 4
    # the saved configuration rebuilds the class, values and callable backbone included
    cls = load_config_class(str(run / "config.json"))
    assert cls().to_dict() == {k: v for k, v in config.items() if k != "_class"}


def test_evaluate_test_subset_uses_the_recorded_split_and_reports_the_loss(coco_run, tmp_path,
                                                                           capsys):
    out_dir = tmp_path / "eval"
    # no --seed / fractions given: the split comes from split.json beside the weights
    report, out, _ = run_main(["evaluate"] + coco_run["options"] + [
        "--weights", "last", "--logs", str(coco_run["logs"]), "--subset", "test",
        "--out", str(out_dir)], capsys)
    with open(coco_run["run"] / "split.json") as f:
        (test_key,) = json.load(f)["subsets"]["test"]["keys"]
    assert report["images"] == 1 and report["subset"] == "test"
    assert [r["reference"] for r in report["per_image"]["per_image"]] == [
        os.path.join(str(coco_run["root"]), "data", "images",
                     "img{:02d}.png".format(int(test_key.split(".")[1])))]
    loss = report["loss"]
    assert set(loss) >= {"loss", "rpn_class_loss", "mrcnn_mask_loss"}
    assert np.isfinite(loss["loss"])
    assert "test loss {:.4f}".format(loss["loss"]) in out
    with open(out_dir / "evaluation.json") as f:
        assert json.load(f)["loss"]["loss"] == pytest.approx(loss["loss"])


def test_detect_reads_class_names_and_config_beside_the_weights(coco_run, tmp_path, capsys):
    out_dir = tmp_path / "det"
    images = coco_run["root"] / "data" / "images"
    written, out, _ = run_main(["detect", "--weights", "last", "--logs", str(coco_run["logs"]),
                                "--image", str(images), "--out", str(out_dir),
                                "--min-confidence", "0",
                                # a candidate per class per ROI: a one-epoch model whose ROIs
                                # all argmax to BG would otherwise detect nothing
                                "--set", "DETECTION_PER_CLASS=True"], capsys)
    assert [os.path.basename(p) for p in written] == [s + "_detections.png" for s in stems()]
    with open(out_dir / "detections.json") as f:
        records = json.load(f)
    assert [r["image"] for r in records] == [s + ".png" for s in stems()]
    names = {d["class_name"] for r in records for d in r["detections"]}
    assert names and names <= {"square", "disk"}
    # DETECTION_MAX_INSTANCES=20 from the run's config.json
    assert max(len(r["detections"]) for r in records) <= 20


def test_modelcard_command_uses_the_run_config(coco_run, tmp_path, capsys):
    weights = str(coco_run["run"] / "mask_rcnn_clitiny_0001.h5")
    target = tmp_path / "MODEL_CARD.md"
    run_main(["modelcard", "--weights", weights, "--out", str(target)], capsys)
    text = target.read_text()
    assert "clitiny" in text and "square" in text


# ---------------------------------------------------------------- every layout

def test_later_stages_and_resumed_runs_get_their_own_seed(tmp_path, capsys, monkeypatch):
    """Each train() call starts its image stream anew from its seed: with one --seed for
    every stage, the 'all' stage replayed the images, crops and augmentations the
    'heads' stage began with."""
    from mrcnn import model as modellib
    from mrcnn.cli.train import stage_seed
    calls = []

    def fake_train(self, train, val, learning_rate, epochs, layers, seed=None, **kwargs):
        calls.append((layers, self.epoch, seed))
        self.epoch = epochs
    monkeypatch.setattr(modellib.MaskRCNN, "train", fake_train)
    options, _ = write_layout("npy", tmp_path / "data")
    logs = str(tmp_path / "logs")
    run_main(["train"] + options + ["--weights", "none", "--logs", logs, "--seed", "5",
                                    "--quiet", "--val-fraction", "0",
                                    "--schedule", "heads:2,4+:3,all:5"] + TINY, capsys)
    assert calls == [("heads", 0, 5), ("4+", 2, stage_seed(5, 2)), ("all", 3, stage_seed(5, 3))]
    assert stage_seed(None, 4) is None and stage_seed(7, 0) == 7
    # a multi-worker run without --seed: the workers share 0, mixed for later stages
    assert stage_seed(None, 0, workers=2) == 0 and stage_seed(None, 3, workers=2) == \
        stage_seed(0, 3)
    # no later stage replays any image order the first stage drew: the loader shuffles
    # pass p with RandomState(seed + 7919 p) (mrcnn.pipeline.BatchLoader._stream)
    ids = np.arange(30)

    def orders(seed, passes):
        return {tuple(np.random.RandomState((seed + 7919 * p) % 2 ** 32).permutation(ids))
                for p in range(passes)}
    first = orders(5, 50)
    for k in range(1, 20):
        seed = stage_seed(5, k)
        assert 0 <= seed < 2 ** 31
        assert not orders(seed, 10) & first, k


@pytest.mark.parametrize("layout", [l for l in LAYOUTS if l != "coco"])
def test_train_evaluate_detect_in_each_layout(layout, tmp_path, capsys):
    options, names = write_layout(layout, tmp_path / "data")
    logs = str(tmp_path / "logs")
    extra = ["--epochs", "3", "--minutes", "0.01"] if layout == "npy" else ["--epochs", "1"]
    # no validation split and the heads only (the coco run has both): less to trace
    last, out, _ = run_main(["train"] + options + ["--weights", "none", "--layers", "heads",
                                                   "--logs", logs, "--seed", "0", "--quiet",
                                                   "--val-fraction", "0"] + extra + TINY,
                            capsys)
    run = os.path.dirname(last)
    with open(os.path.join(run, "class_names.json")) as f:
        assert json.load(f) == ["BG"] + names
    with open(os.path.join(run, "split.json")) as f:
        counts = {k: v["count"] for k, v in json.load(f)["subsets"].items()}
    assert counts == {"train": 6, "val": 0, "test": 0}
    assert "6 train, 0 val images" in out
    if layout == "npy":
        # --minutes: the first epoch outlasts the budget; it stops cleanly after it
        assert os.path.basename(last) == "mask_rcnn_clitiny_0001.h5"
        assert "stopped: " in out and "Epoch 1/3 (" in out and "Epoch 2/3" not in out
        with open(os.path.join(run, "history.json")) as f:
            assert [h["epoch"] for h in json.load(f)] == [1]
    else:
        assert os.path.basename(last) == "mask_rcnn_clitiny_0001.h5"
    report, out, _ = run_main(["evaluate"] + options + [
        "--weights", last, "--out", str(tmp_path / "eval"), "--subset", "all", "--limit",
        "1"], capsys)
    assert report["images"] == 1 and report["per_image"]["num_images"] == 1
    assert report["per_image"]["per_image"][0]["num_gt"] == 2
    assert os.path.isfile(tmp_path / "eval" / "per_image_ap.csv")
    image = report["per_image"]["per_image"][0]["reference"]
    if not os.path.isfile(str(image)):  # mask-folders: the reference is the folder name
        image = os.path.join(options[options.index("--dataset") + 1], image, "images",
                             image + ".png")
    written, out, _ = run_main(["detect", "--weights", last, "--image", image, "--out",
                                str(tmp_path / "det"), "--min-confidence", "0"], capsys)
    with open(tmp_path / "det" / "detections.json") as f:
        (record,) = json.load(f)
    assert {d["class_name"] for d in record["detections"]} <= set(names)


def test_every_layout_loads_with_the_options_it_needs(tmp_path, capsys):
    from mrcnn.cli.main import mrcnn_sample, build_parser
    for layout in LAYOUTS + ("openimages",):
        options, names = write_layout(layout, tmp_path / layout)
        sample = mrcnn_sample()
        parser, _ = build_parser(sample)
        args = parser.parse_args(["inspect"] + options)
        whole = sample.load_dataset(args.dataset, "all", args)
        assert whole.class_names == ["BG"] + names, layout
        assert len(whole.image_ids) == 6
        total = 0
        for image_id in whole.image_ids:
            masks, class_ids = whole.load_mask_checked(image_id)
            assert masks.shape == (64, 64, 2), layout
            total += len(class_ids)
            if [n.lower() for n in names] == ["square", "disk"]:
                # the square is class 1 and the disk class 2 in every layout
                by_class = {int(c): masks[:, :, k].sum() for k, c in enumerate(class_ids)}
                assert by_class[1] == 18 * 18, layout
        assert total == 12
        path, out, _ = run_main(["inspect"] + options + ["--out", str(tmp_path / "ins"),
                                                         "--count", "2"], capsys)
        if layout == "openimages":  # train/ and validation/ downloads: no split needed
            assert "train subset: 6 images" in out
            args = parser.parse_args(["inspect"] + options)
            val = sample.load_dataset(args.dataset, "val", args)
            assert [val.image_reference(i) for i in val.image_ids][0] == "{:016x}".format(100)
        else:
            assert "train subset: 5 images" in out
        assert os.path.isfile(path)


# ---------------------------------------------------------------- --set and errors

def test_set_overrides_are_checked_like_the_config(tmp_path, capsys):
    options, _ = write_layout("npy", tmp_path / "data")
    base = ["train"] + options + ["--weights", "none", "--logs", str(tmp_path / "logs")] + TINY
    err = error_of(base + ["--set", "IMAGES_PER_GUP=4"], capsys)
    assert "IMAGES_PER_GUP" in err and "did you mean IMAGES_PER_GPU" in err
    err = error_of(base + ["--set", "IMAGES_PER_GPU=0"], capsys)
    assert "IMAGES_PER_GPU = 0" in err and "integer >= 1" in err
    err = error_of(base + ["--set", "LEARNING_RATE=fast"], capsys)
    assert "LEARNING_RATE='fast'" in err and "a number" in err
    err = error_of(base + ["--set", "MASK_HEAD_BN=2"], capsys)
    assert "MASK_HEAD_BN" in err and "True or False" in err
    err = error_of(base + ["--set", "IMAGE_MAX_DIM"], capsys)
    assert "KEY=VALUE" in err
    err = error_of(base + ["--set", "BATCH_SIZE=8"], capsys)
    assert "computed" in err and "IMAGES_PER_GPU" in err
    assert not os.path.exists(tmp_path / "logs")  # nothing written before the error


def test_apply_overrides_parses_literals_and_keeps_kinds():
    cls = apply_overrides(CliTinyConfig, ["IMAGES_PER_GPU=3", "MEAN_PIXEL=[1, 2, 3]",
                                          "LOSS_WEIGHTS={\"mrcnn_mask_loss\": 2}",
                                          "TRAIN_BN=null", "IMAGE_RESIZE_MODE=pad64",
                                          "RPN_ANCHOR_RATIOS=[1]", "DETECTION_PER_CLASS=true"])
    c = cls()
    assert c.IMAGES_PER_GPU == 3 and c.BATCH_SIZE == 3
    assert isinstance(c.MEAN_PIXEL, np.ndarray) and c.MEAN_PIXEL.tolist() == [1, 2, 3]
    assert c.LOSS_WEIGHTS["mrcnn_mask_loss"] == 2 and c.LOSS_WEIGHTS["rpn_class_loss"] == 1
    assert c.TRAIN_BN is None and c.IMAGE_RESIZE_MODE == "pad64"
    assert c.DETECTION_PER_CLASS is True and c.RPN_ANCHOR_RATIOS == [1]
    assert CliTinyConfig.IMAGES_PER_GPU == 1  # the original class is untouched
    with pytest.raises(ConfigError, match="IMAGE_RESIZE_MODE = 'squares'"):
        apply_overrides(CliTinyConfig, ["IMAGE_RESIZE_MODE=squares"])


def test_missing_data_is_reported_before_tensorflow_or_any_file(tmp_path, capsys):
    err = error_of(["train", "--format", "coco", "--dataset", str(tmp_path / "nothing"),
                    "--weights", "none", "--logs", str(tmp_path / "logs")], capsys)
    assert "nothing: no such file or folder" in err
    err = error_of(["train", "--dataset", str(tmp_path), "--weights", "none"], capsys)
    assert "--format is needed" in err
    options, _ = write_layout("npy", tmp_path / "data")
    err = error_of(["train"] + options[:-2] + ["--weights", "none"], capsys)
    assert "--format npy needs --classes" in err
    err = error_of(["train"] + options + ["--weights", "last", "--logs",
                                          str(tmp_path / "nologs")] + TINY, capsys)
    assert "--weights last: no checkpoint of a clitiny* run" in err
    err = error_of(["train"] + options + ["--weights", "none", "--val-fraction", "0.6",
                                          "--test-fraction", "0.5"] + TINY, capsys)
    assert "nothing is left for training" in err
    assert not os.path.exists(tmp_path / "logs")


# ---------------------------------------------------------------- the split helper

def test_split_is_seeded_stable_and_independent_of_listing_order():
    keys = ["npy.img{:02d}".format(k) for k in range(20)]
    a = split_keys(keys, 0.2, 0.1, seed=5)
    assert split_keys(list(reversed(keys)), 0.2, 0.1, seed=5) == a
    assert [len(a[s]) for s in ("train", "val", "test")] == [14, 4, 2]
    assert sorted(a["train"] + a["val"] + a["test"]) == keys
    assert split_keys(keys, 0.2, 0.1, seed=6) != a
    assert split_keys(keys[:3], 0.01, 0.0, seed=0)["val"] != []  # a fraction > 0: >= 1 image
    with pytest.raises(SplitError, match="keep one for training"):
        split_keys(keys[:2], 0.4, 0.4)


def test_split_dataset_works_on_any_loader_and_applies_recorded_keys(tmp_path):
    from mrcnn.datasets import MaskFolderDataset
    from mrcnn.datasets.split import write_split
    write_layout("mask-folders", tmp_path / "data")
    ds = MaskFolderDataset()
    ds.load_folder(str(tmp_path / "data"), class_name="blob")
    ds.prepare()
    parts, record = split_dataset(ds, val_fraction=0.2, test_fraction=0.2, seed=1)
    refs = {s: [p.image_reference(i) for i in p.image_ids] for s, p in parts.items()}
    assert sorted(refs["train"] + refs["val"] + refs["test"]) == stems()
    assert record["subsets"]["val"]["references"] == refs["val"]
    masks, _ = parts["test"].load_mask(0)  # the parts load like the whole
    assert masks.shape == (64, 64, 2)
    path = write_split(str(tmp_path / "split.json"), record)
    again = apply_split(ds, read_split(path))
    assert {s: [p.image_reference(i) for i in p.image_ids] for s, p in again.items()} == refs
    (tmp_path / "ids.json").write_text(json.dumps({"train": ["mask_folders.img00"],
                                                   "test": ["mask_folders.nope"]}))
    with pytest.raises(SplitError, match="mask_folders.nope"):
        apply_split(ds, read_split(str(tmp_path / "ids.json")))


# ---------------------------------------------------------------- callbacks and logs

class _Model(object):
    stop_training = False


def test_time_budget_stops_at_the_epoch_that_would_overrun_or_the_step_that_does():
    from mrcnn.callbacks import TimeBudget
    now = [0.0]
    budget = TimeBudget(1.0, clock=lambda: now[0])  # 60 s
    budget.set_model(_Model())
    budget.on_train_begin()
    budget.on_epoch_begin(0)
    now[0] = 25.0
    budget.on_train_batch_end(0)
    budget.on_epoch_end(0)       # 25 s per epoch, 35 s left: go on
    assert not budget.model.stop_training
    budget.on_epoch_begin(1)
    now[0] = 50.0
    budget.on_epoch_end(1)       # 10 s left < 25 s: stop at this epoch's end
    assert budget.model.stop_training and budget.spent and "would not fit" in budget.reason
    step = TimeBudget(0.5, clock=lambda: now[0])  # made at 50 s, 30 s budget
    step.set_model(_Model())
    step.on_epoch_begin(0)
    now[0] = 79.0
    step.on_train_batch_end(3)
    assert not step.model.stop_training
    now[0] = 81.0
    step.on_train_batch_end(4)   # spent inside an epoch: stop after this step
    assert step.model.stop_training and "step 5" in step.reason


def test_time_budget_times_the_next_epoch_without_the_first_epochs_tracing():
    """A train() call's first epoch also traces the graph. Timing the next epoch by it
    stopped a nucleus run with 228 s left and 200-s epochs."""
    from mrcnn.callbacks import TimeBudget
    now = [0.0]
    budget = TimeBudget(4.0, clock=lambda: now[0])  # 240 s
    budget.set_model(_Model())

    def epoch(index, seconds):
        budget.on_epoch_begin(index)
        now[0] += seconds
        budget.on_epoch_end(index)
    budget.on_train_begin()
    epoch(0, 100.0)              # 60 s of steps + 40 s of tracing; 140 s left
    assert not budget.model.stop_training and budget.next_epoch_seconds() == 100.0
    epoch(1, 60.0)               # 80 s left: a 60-s epoch fits (by the first: it did not)
    assert not budget.model.stop_training and budget.next_epoch_seconds() == 60.0
    epoch(2, 55.0)               # 25 s left
    assert budget.model.stop_training and budget.reason.startswith("the next epoch (60 s)")
    # a new train() call (a schedule's next stage) traces anew: its first epoch counts
    # alone again, not the earlier stage's faster epochs
    stage = TimeBudget(10.0, clock=lambda: now[0])
    stage.set_model(_Model())
    stage.on_train_begin()
    stage.on_epoch_begin(0)
    now[0] += 30.0
    stage.on_epoch_end(0)
    stage.on_epoch_begin(1)
    now[0] += 20.0
    stage.on_epoch_end(1)
    stage.on_train_begin()
    assert stage.next_epoch_seconds() == 0.0
    stage.on_epoch_begin(2)
    now[0] += 90.0
    stage.on_epoch_end(2)
    assert stage.next_epoch_seconds() == 90.0


def test_time_budget_keeps_room_for_the_next_stages_first_epoch():
    """At a train() call's last epoch the next epoch is the next stage's first, which
    traces again: timed by the slowest epoch (with its tracing), not the steady ones."""
    from mrcnn.callbacks import TimeBudget
    now = [0.0]
    budget = TimeBudget(5.0, clock=lambda: now[0])  # 300 s
    budget.set_model(_Model())
    budget.set_params({"epochs": 3})
    budget.on_train_begin()
    for epoch, seconds in enumerate((100.0, 60.0)):
        budget.on_epoch_begin(epoch)
        now[0] += seconds
        budget.on_epoch_end(epoch)
    assert not budget.model.stop_training        # 140 s left; the next epoch is 60 s
    budget.on_epoch_begin(2)
    now[0] += 60.0
    budget.on_epoch_end(2)                      # the call's last epoch; 80 s left
    assert budget.model.stop_training and budget.reason.startswith("the next epoch (100 s)")


def test_stopped_is_said_only_when_the_budget_left_work_undone():
    """A run that did all its epochs with too little time left for one more was not
    stopped: no "stopped:" line. One the budget cut short (an epoch, or the schedule's
    later epochs) is."""
    from mrcnn.callbacks import TimeBudget
    from mrcnn.cli.train import budget_stop
    now = [0.0]

    def run(epochs, seconds, steps=2, minutes=1.0):
        budget = TimeBudget(minutes, clock=lambda: now[0])
        budget.set_model(_Model())
        budget.set_params({"epochs": epochs, "steps": steps})
        budget.on_train_begin()
        for epoch in range(epochs):
            budget.on_epoch_begin(epoch)
            for step in range(steps):
                now[0] += seconds / steps
                budget.on_train_batch_end(step)
                if budget.model.stop_training:
                    break
            budget.on_epoch_end(epoch)
            if budget.model.stop_training:
                return budget, epoch + 1
        return budget, epochs
    # 2 epochs of 25 s in a 60-s budget: both done, a third would not fit
    budget, done = run(2, 25.0)
    assert budget.spent and not budget.cut_epoch and done == 2
    assert budget_stop(budget, done, 2) is None
    # ... but in a 3-epoch schedule the third is left undone
    budget, done = run(3, 25.0)
    assert done == 2 and budget_stop(budget, done, 3).startswith("the next epoch (25 s)")
    # the budget runs out at the first step of the only epoch: that epoch was cut short
    budget, done = run(1, 200.0)
    assert budget.cut_epoch and budget_stop(budget, done, 1).endswith("at step 1 of an epoch")
    # ... at its last step, the epoch was whole
    budget, done = run(1, 70.0)
    assert budget.spent and not budget.cut_epoch and budget_stop(budget, done, 1) is None
    assert budget_stop(None, 1, 1) is None


def test_every_epoch_has_a_header_saying_where_a_resumed_run_starts(capsys):
    from mrcnn.callbacks import EpochProgress
    bar = EpochProgress()
    bar.set_params({"verbose": 2, "epochs": 3, "steps": 1})
    bar.on_train_begin()
    bar.on_epoch_begin(1)
    bar.on_epoch_begin(2)
    single = EpochProgress()
    single.set_params({"verbose": 1, "epochs": 1, "steps": 1})  # Keras: no header at all
    single.on_train_begin()
    single.on_epoch_begin(0)
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 2/3 (resumed after epoch 1)", "Epoch 3/3", "Epoch 1/1"]


def test_an_epoch_cut_short_ends_its_line_on_the_steps_it_ran(capsys):
    from mrcnn.callbacks import EpochProgress
    for steps_run, shown in ((16, " 16/100 - "), (100, "100/100 - ")):
        bar = EpochProgress()
        bar.set_params({"verbose": 2, "epochs": 3, "steps": 100})
        bar.on_train_begin()
        bar.on_epoch_begin(0)
        for step in range(steps_run):
            bar.on_train_batch_end(step, {"loss": 1.0})
        bar.on_epoch_end(0, {"loss": 1.0})
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == "Epoch 1/3" and lines[1].startswith(shown), lines
        assert lines[1].endswith("loss: 1.0000")


def test_learning_rate_schedules_are_described_as_numbers():
    import keras
    from mrcnn.callbacks import describe_learning_rate
    assert describe_learning_rate(0.001) == "0.001"
    cosine = keras.optimizers.schedules.CosineDecay(0.01, decay_steps=500, alpha=0.0)
    assert describe_learning_rate(cosine) == "cosine 0.01 -> 0 over 500 steps"
    steps = keras.optimizers.schedules.PiecewiseConstantDecay([100], [0.01, 0.001])
    assert describe_learning_rate(steps) == "piecewise [0.01, 0.001] at steps [100]"


def test_filtered_stderr_drops_tensorflow_start_up_lines_only(capfd):
    from mrcnn.cli.logs import filtered_stderr
    with filtered_stderr():
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. ...\n")
        os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR\n")
        os.write(2, b"a real problem\n")
    assert capfd.readouterr().err == "a real problem\n"


@pytest.mark.parametrize("verbose", [False, True])
def test_tensorflow_start_up_is_quiet_unless_verbose(verbose, tmp_path):
    code = ("from mrcnn.cli import logs; logs.setup({}); tf = logs.import_tensorflow(); "
            "tf.config.list_physical_devices()".format(verbose))
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert ("oneDNN" in proc.stderr) is verbose
    assert "cuInit" not in proc.stderr or verbose


# ---------------------------------------------------------------- the command itself

def test_console_script_and_module_and_delegates_answer_help(tmp_path):
    env = cli_env()
    proc = subprocess.run([sys.executable, "-m", "mrcnn", "--help"], cwd=str(tmp_path),
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for command in ("train", "evaluate", "detect", "inspect", "calculate-ap", "export",
                    "demo", "modelcard"):
        assert "\n    {}".format(command) in proc.stdout, command
    proc = subprocess.run([sys.executable, "-m", "mrcnn", "export", "--help"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "--format" in proc.stdout and "--opset" in proc.stdout
    with open(os.path.join(ROOT, "setup.py")) as f:
        assert '"mrcnn=mrcnn.cli:main"' in f.read()


def test_every_option_has_help_that_says_its_default():
    from mrcnn.cli.main import build_parser, mrcnn_sample
    parser, _ = build_parser(mrcnn_sample())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name in ("train", "evaluate", "detect", "inspect", "calculate-ap"):
        q = sub.choices[name]
        for action in q._actions:
            if not action.option_strings or action.dest == "help":
                continue
            text = q.formatter_class("mrcnn")._get_help_string(action)
            flag = action.nargs == 0
            if not text or not (flag or action.required or "default" in text):
                missing.append("{} {}".format(name, action.option_strings[0]))
    assert missing == []


def test_coco_class_names_match_the_coco_file(coco_sample):
    with open(os.path.join(coco_sample, "instances.json")) as f:
        cats = sorted(json.load(f)["categories"], key=lambda c: c["id"])
    assert ["BG"] + [c["name"] for c in cats] == COCO_CLASS_NAMES


def test_samples_pick_the_backbone_of_the_weights_they_name(tmp_path):
    # issue 16 item 9: the published COCO file is ResNet-101; the traffic sample's config
    # says ResNet-50, so --weights coco builds a ResNet-101 (a file is looked at)
    import argparse
    from samples.traffic.train import SAMPLE
    from test_weights import resnet_layout, write_classic_h5
    from mrcnn.cli.common import configs

    def args(weights, *sets):
        return argparse.Namespace(weights=weights, logs=str(tmp_path), config=None,
                                  set=list(sets))
    assert SAMPLE.config.BACKBONE == "resnet50"
    train, infer = configs(SAMPLE, args("coco"))
    assert train.BACKBONE == infer.BACKBONE == "resnet101"
    assert train._backbone_note == "BACKBONE = resnet101 to match the weights (the config " \
                                  "says resnet50)"
    r50 = write_classic_h5(str(tmp_path / "r50.h5"), resnet_layout(50))
    assert configs(SAMPLE, args(r50))[0].BACKBONE == "resnet50"
    assert configs(SAMPLE, args(r50))[0]._backbone_note is None
    assert configs(SAMPLE, args("imagenet"))[0].BACKBONE == "resnet50"
    # an explicit --set wins (and a mismatch is then refused at load, with the fix)
    assert configs(SAMPLE, args("coco", "BACKBONE=resnet50"))[0].BACKBONE == "resnet50"
