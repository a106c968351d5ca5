"""A tiny training run for the fault-injection tests: resumes from the last checkpoint
when there is one, trains up to --epochs (the heads: what is killed is the loop, its
records and its checkpoints, the same for any layers, and the heads' step traces in
4.6 s where all layers' took 7.1), and prints what it does on stdout, one line at a
time (flushed), so that the test can kill it at a chosen moment:

    START <epoch>            the epoch it starts from (0, or the checkpoint's)
    PHASE step <k>           a training step begins (k counts steps of this process)
    PHASE validation         a validation batch begins
    PHASE checkpoint         a checkpoint file begins to be written
    PHASE between            an epoch ended (its checkpoint written), the next not begun
    DONE <epoch>

    python tests/faults/train_child.py MODEL_DIR --epochs 4 [--slow-write SECONDS]

--slow-write sleeps that long after writing each weight of a checkpoint, so that a
kill during the write is likely (a tiny model's checkpoint is written in ~50 ms).
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--slow-write", type=float, default=0.0)
    p.add_argument("--lr", type=float, default=0.01)
    args = p.parse_args()

    import h5py
    import keras
    from mrcnn import model as modellib
    from samples.shapes.shapes import ShapesDataset
    from tiny_configs import TinyShapesConfig

    class FaultConfig(TinyShapesConfig):
        NAME = "fault"
        IMAGES_PER_GPU = 1
        STEPS_PER_EPOCH = 3
        VALIDATION_STEPS = 2

    if args.slow_write:
        create = h5py.Group.create_dataset

        def slow_create(self, *a, **k):
            result = create(self, *a, **k)
            time.sleep(args.slow_write)
            return result
        h5py.Group.create_dataset = slow_create

    from mrcnn import training
    save = training.save_weights_classic

    def announced_save(model, path):
        say("PHASE checkpoint")
        return save(model, path)
    training.save_weights_classic = announced_save

    class Phases(keras.callbacks.Callback):
        steps = 0

        def on_train_batch_begin(self, batch, logs=None):
            Phases.steps += 1
            say("PHASE step {}".format(Phases.steps))

        def on_test_batch_begin(self, batch, logs=None):
            say("PHASE validation")

        def on_epoch_end(self, epoch, logs=None):   # runs after the checkpoint
            say("PHASE between")

    keras.utils.set_random_seed(0)
    train, val = ShapesDataset(), ShapesDataset()
    train.load_shapes(8, 64, 64, seed=1)
    val.load_shapes(2, 64, 64, seed=2)
    train.prepare()
    val.prepare()
    model = modellib.MaskRCNN("training", FaultConfig(), args.model_dir)
    try:
        model.load_weights(model.find_last(), by_name=True)
    except FileNotFoundError:
        pass
    say("START {}".format(model.epoch))
    if model.epoch < args.epochs:
        model.train(train, val, args.lr, args.epochs, "heads", seed=model.epoch, verbose=0,
                    custom_callbacks=[Phases()])
    say("DONE {}".format(model.epoch))


if __name__ == "__main__":
    main()
