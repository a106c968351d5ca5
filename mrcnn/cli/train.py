"""``train``: load and check the data and the configuration first, then print one short
run block, write the full configuration to ``<run>/config.json`` and train.

Files written in the run folder (``<logs>/<name><YYYYMMDDTHHMM>/``, beside the
checkpoints): ``config.json`` (every Config value; ``--config`` accepts it), ``run.json``
(the command lines and the choices made), ``split.json`` (the images of each subset) and
``class_names.json``; ``train()`` itself writes ``history.json`` and ``losses.csv``
after each epoch, ``losses.png`` (at most once a minute, and when it ends) and adds each
stage to ``run.json``.
"""
import json
import os
import sys

from ..config import save_config
from .common import (CliError, check_layers, configs, load_initial_weights, parse_schedule,
                     weights_file, write_json)

# "--epochs" not given: train up to this epoch (or, with --minutes, until time runs out)
DEFAULT_EPOCHS = 10
OPEN_ENDED = 10 ** 6


def record_command(path, command):
    """Add the command line to run.json's "command_lines" (train() adds the machine,
    the starting weights and each stage that ran)."""
    run = {}
    if os.path.isfile(path):
        with open(path) as f:
            try:
                run = json.load(f)
            except ValueError:
                run = {}
    run.setdefault("command_lines", []).append(command)
    write_json(path, run)


def default_augmentation():
    """The --augment pipeline: flips, small scale/rotation, brightness (imgaug)."""
    import imgaug.augmenters as iaa
    return iaa.Sequential([
        iaa.Fliplr(0.5),
        iaa.Sometimes(0.5, iaa.Affine(scale=(0.8, 1.2), rotate=(-10, 10))),
        iaa.Sometimes(0.5, iaa.Multiply((0.8, 1.2))),
    ])


def budget_stop(budget, epoch, last_epoch):
    """Why the time budget stopped the run, or None: only when it left some of the
    schedule undone (epoch < last_epoch) or cut an epoch short. A run that did all its
    epochs, with too little time left for one more, was not stopped."""
    if budget is None or not budget.spent:
        return None
    return budget.reason if epoch < last_epoch or budget.cut_epoch else None


def stage_seed(seed, start_epoch, workers=1):
    """The seed of the train() call that starts after ``start_epoch`` epochs: --seed itself
    for a run's first stage; for a later stage of --schedule or a resumed run (--weights
    last), one mixed from both (numpy's SeedSequence), so that the call does not replay
    the image orders, crops and augmentations the first stage drew (each train() call
    starts its image stream anew from its seed; a sum such as seed + c * epoch would
    land on the first stage's later pass orders, which step by a constant too). The same
    command still repeats exactly. workers > 1 (a multi-worker run) without --seed: the
    workers must share the seed, so it is 0 (as train() makes it) before the mixing."""
    if seed is None:
        if workers <= 1:
            return None
        seed = 0
    if start_epoch == 0:
        return int(seed)
    import numpy as np
    mixed = np.random.SeedSequence([int(seed) % (2 ** 63), int(start_epoch)])
    return int(mixed.generate_state(1)[0]) % (2 ** 31)


def plan_stages(args, config):
    """[(layers, epoch, lr), ...] from --schedule or --layers/--epochs/--lr; --lr unset
    keeps the config's LEARNING_RATE."""
    lr = config.LEARNING_RATE if args.lr is None else args.lr
    if args.lr is not None and not args.lr > 0:
        raise CliError("--lr {}: a learning rate must be > 0".format(args.lr))
    if args.minutes is not None and not args.minutes > 0:
        raise CliError("--minutes {}: give a time budget > 0 (minutes, e.g. 30 or 0.5)"
                       .format(args.minutes))
    if args.schedule:
        return parse_schedule(args.schedule, lr)
    epochs = args.epochs
    if epochs is None:
        epochs = OPEN_ENDED if args.minutes else DEFAULT_EPOCHS
    if epochs < 1:
        raise CliError("--epochs {}: give the epoch to train up to (>= 1)".format(epochs))
    return [(check_layers(args.layers), epochs, lr)]


def describe_stages(stages, start=0):
    from ..callbacks import describe_learning_rate
    parts, first = [], start + 1
    for layers, epoch, lr in stages:
        span = "until the time budget is spent" if epoch >= OPEN_ENDED else \
            "epochs {}-{}".format(first, epoch) if epoch > first else "epoch {}".format(epoch)
        parts.append("{} {} at lr {}".format(layers, span, describe_learning_rate(lr)))
        first = epoch + 1
    return "; ".join(parts)


def _names(names, shown=6):
    return "{}: {}{}".format(len(names), ", ".join(names[:shown]),
                             " ..." if len(names) > shown else "")


def run_block(rows):
    """The short "run" block: one aligned line per row."""
    width = max(len(k) for k, _ in rows)
    return "\n".join("{:<{}}  {}".format(k, width, v) for k, v in rows)


def data_line(args, train, val, loader_record):
    where = args.dataset
    fmt = getattr(args, "format", None)
    text = "{}{}: {} train, {} val images".format("{} ".format(fmt) if fmt else "", where,
                                                  len(train.image_ids),
                                                  len(val.image_ids) if val is not None else 0)
    if getattr(args, "val", None):
        text += " (val from {})".format(args.val)
    elif loader_record and "recorded" in loader_record:
        text += " (split from {})".format(loader_record["recorded"])
    elif loader_record:
        text += " (val-fraction {:g}, test-fraction {:g}, seed {}: {} test)".format(
            loader_record["val_fraction"], loader_record["test_fraction"],
            loader_record["seed"], loader_record["subsets"]["test"]["count"])
    return text


def config_source(sample, args):
    if args.config:
        return args.config
    return "the defaults" if sample.name == "mrcnn" else "the {} sample's".format(sample.name)


def cmd_train(sample, args):
    from . import logs
    train = sample.load_dataset(args.dataset, "train", args)
    val = sample.load_dataset(args.dataset, "val", args)
    loader_record = getattr(sample.load_dataset, "record", None)
    train_cls, _ = configs(sample, args, train.class_names)
    if args.weights == "last" and weights_file("last", train_cls.NAME, args.logs) is None:
        raise CliError("--weights last: no checkpoint of a {}* run under {} to resume "
                       "from. Train first, or pass --logs where the checkpoints are."
                       .format((train_cls.NAME or "").lower(), args.logs))
    config = train_cls()
    if args.steps is not None:
        config.STEPS_PER_EPOCH = args.steps
    if args.val_steps is not None:
        config.VALIDATION_STEPS = args.val_steps
    try:
        config.validate()
    except ValueError as e:
        raise CliError(str(e))
    stages = plan_stages(args, config)
    if args.save_every < 1:
        raise CliError("--save-every {}: save every N epochs, N >= 1".format(args.save_every))

    logs.import_tensorflow()  # quietly, before mrcnn.model imports it
    from .. import model as modellib
    from ..callbacks import EpochProgress, TimeBudget
    from ..training import TrainingDiverged
    model = modellib.MaskRCNN("training", config, args.logs)
    path = load_initial_weights(model, args.weights, args.logs, train_cls.NAME)
    start = model.epoch
    if start >= stages[-1][1]:
        raise CliError("--weights {} is at epoch {} already; --epochs (or the schedule's last "
                       "epoch) is the epoch to train up to, so give more than {}".format(
                           path, start, start))
    os.makedirs(model.log_dir, exist_ok=True)
    budget = TimeBudget(args.minutes) if args.minutes else None

    index, count, chief = model.worker
    rows = [("run", model.log_dir if chief else
             "{} (worker {} of {}: the chief writes the run under {})".format(
                 model.log_dir, index, count, args.logs)),
            ("data", data_line(args, train, val, loader_record)),
            ("classes", _names(list(train.class_names[1:]))),
            ("config", "{} ({}){}".format(type(config).__name__, config_source(sample, args),
                                          ", --set " + " ".join(args.set) if args.set else "")),
            ("weights", "{}{}".format(args.weights, " ({})".format(path) if path and
                                      path != args.weights else "") +
             (", resuming after epoch {}".format(start) if start else "") +
             ("; " + train_cls._backbone_note if train_cls._backbone_note else "")),
            ("schedule", describe_stages(stages, start)),
            ("steps", "{} per epoch, {} validation, batch {} ({} x {} GPU), images {}x{}".format(
                config.STEPS_PER_EPOCH, config.VALIDATION_STEPS if val is not None else 0,
                config.BATCH_SIZE, config.IMAGES_PER_GPU, config.GPU_COUNT,
                config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1]) +
             (", time budget {:g} min".format(args.minutes) if args.minutes else ""))]
    if count > 1:
        rows.append(("workers", "{} (TF_CONFIG; this is {}{}), global batch {}".format(
            count, "worker {}".format(index), ", the chief" if chief else "",
            config.BATCH_SIZE * count)))
    print(run_block(rows), flush=True)

    save_config(config, os.path.join(model.log_dir, "config.json"))
    write_json(os.path.join(model.log_dir, "class_names.json"), list(train.class_names))
    from ..datasets.split import make_record, write_split
    split = dict(loader_record) if loader_record and "subsets" in loader_record else \
        make_record({"train": train, "val": val}, dataset=os.path.abspath(args.dataset)
                    if args.dataset else None)
    write_split(os.path.join(model.log_dir, "split.json"), split)
    # the command line, beside what the library records of each stage (run.json)
    record_command(os.path.join(model.log_dir, "run.json"), {
        "argv": list(getattr(args, "_argv", sys.argv[1:])),
        "command": "train", "sample": sample.name, "weights": args.weights,
        "weights_path": path, "config": args.config, "set": list(args.set or []),
        "schedule": [{"layers": l, "epochs": e, "lr": str(r)} for l, e, r in stages],
        "minutes": args.minutes, "seed": args.seed, "start_epoch": start})

    augmentation = default_augmentation() if args.augment else None
    callbacks = []
    if budget is not None:
        callbacks.append(budget)
    tracker = None
    if args.mlflow:
        from ..tracking import MLflowCallback
        tracker = MLflowCallback(model, tracking_uri=args.mlflow, experiment=sample.name)
        callbacks.append(tracker)
    for k, (layers, epochs, lr) in enumerate(stages):
        if epochs <= model.epoch:
            continue
        note = "stage {}/{}: {}".format(k + 1, len(stages), layers) if len(stages) > 1 \
            else None
        progress = EpochProgress(budget=budget, open_ended=epochs >= OPEN_ENDED, stage=note)
        try:
            model.train(train, val, learning_rate=lr, epochs=epochs, layers=layers,
                        augmentation=augmentation,
                        seed=stage_seed(args.seed, model.epoch, model.worker[1]),
                        save_every=args.save_every, custom_callbacks=callbacks + [progress],
                        verbose=2 if args.quiet else 1)
        except TrainingDiverged as e:
            raise CliError("{} The checkpoints before it are in {}.".format(e, model.log_dir))
        if budget is not None and budget.spent:
            break
    # history.json, losses.csv and losses.png were written by train();
    # the last checkpoint is this run's, whatever other runs the logs folder holds
    from ..weights import CHECKPOINT_NAME
    mine = sorted(f for f in os.listdir(model.log_dir) if CHECKPOINT_NAME.fullmatch(f))
    last = os.path.join(model.log_dir, mine[-1]) if mine else None
    if tracker is not None:
        write_json(os.path.join(model.log_dir, "mlflow.json"),
                   {"tracking_uri": tracker.tracking_uri, "run_id": tracker.run_id})
        print("MLflow run", tracker.run_id, "in", tracker.tracking_uri)
    stopped = budget_stop(budget, model.epoch, stages[-1][1])
    if stopped:
        print("stopped: {}".format(stopped))
    print("last checkpoint:", last)
    return last
