"""Experiment tracking with MLflow (optional; TensorBoard logs are always written).

    from mrcnn.tracking import MLflowCallback
    tracker = MLflowCallback(model, tracking_uri="mlruns", experiment="traffic")
    model.train(train, val, 0.001, 20, "heads", custom_callbacks=[tracker])
    model.train(train, val, 0.0001, 40, "all", custom_callbacks=[tracker])  # same run
    report = evaluate.evaluate_model(infer, val, plot_dir="out/eval")
    tracker.log_evaluation(report, json_path="out/eval/evaluation.json")

What is logged: every Config value as a parameter (and each stage's learning rate and
epochs), the starting weights (path and sha256) and the datasets (class, image count,
folder, classes), the losses of every epoch as metrics (step = epoch), and when a
``train()`` call ends the run's losses.csv, history.json, losses.png and run.json. With
the default ``checkpoints="best-and-last"``, two weight files are kept in the run,
``checkpoints/mask_rcnn_<name>_last.h5`` and ``..._best.h5`` (the lowest val_loss),
each upload replacing the previous one; ``"all"`` uploads every epoch's checkpoint
(about 180 MB each for ResNet-50), ``None`` none. With ``log_evaluation``: the COCO and
per-image metrics, the evaluation JSON and the precision-recall PNGs.

``tracking_uri``: a folder (a local file store, no server needed), ``sqlite:///x.db``, or
a server's URL; default ``$MLFLOW_TRACKING_URI``, else ``./mlruns``. MLflow 3 keeps the
folder store in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE``; for a folder, this
callback sets that variable (unless you set it) so that the plain-folder store works.
Install with ``pip install mrcnn[mlflow]`` (mlflow-skinny is enough).
"""
import math
import os

import keras


def _mlflow():
    try:
        import mlflow
    except ImportError:
        raise ImportError("MLflowCallback needs MLflow: pip install mlflow-skinny "
                          "(or mrcnn[mlflow])") from None
    return mlflow


def _resolve_uri(uri):
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "mlruns"
    if "://" not in uri and not uri.startswith("sqlite:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = "file://" + os.path.abspath(uri)
    elif uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


class MLflowCallback(keras.callbacks.Callback):
    """Log a MaskRCNN's training to one MLflow run (across several ``train()`` calls).

    mask_rcnn: the MaskRCNN in training mode (for its config, log_dir and checkpoints).
    checkpoints: "best-and-last" (default), "last", "all" or None.
    """

    CHOICES = ("best-and-last", "last", "all", None)

    def __init__(self, mask_rcnn, tracking_uri=None, experiment="mrcnn", run_name=None,
                 checkpoints="best-and-last", tags=None):
        super().__init__()
        if checkpoints not in self.CHOICES:
            raise ValueError("checkpoints={!r}: use 'best-and-last', 'last', 'all' or None"
                             .format(checkpoints))
        self.mlflow = _mlflow()
        self.mask_rcnn = mask_rcnn
        self.tracking_uri = _resolve_uri(tracking_uri)
        self.experiment = experiment
        self.run_name = run_name or (mask_rcnn.config.NAME or "mask_rcnn")
        self.checkpoints = checkpoints
        self.tags = dict(tags or {})
        self.run_id = None
        self.stage = 0
        self._first_epoch = None
        self._last_epoch = None
        self._mlflow_client = None

    # ------------------------------------------------------------------ run handling
    def _client(self):
        if self._mlflow_client is None:
            self._mlflow_client = self.mlflow.tracking.MlflowClient(
                tracking_uri=self.tracking_uri)
        return self._mlflow_client

    def _ensure_run(self):
        if self.run_id is None:
            client = self._client()
            exp = client.get_experiment_by_name(self.experiment)
            exp_id = exp.experiment_id if exp else client.create_experiment(self.experiment)
            run = client.create_run(exp_id, run_name=self.run_name,
                                    tags={"mrcnn.backbone": str(self.mask_rcnn.config.BACKBONE),
                                          **self.tags})
            self.run_id = run.info.run_id
            params = {k: _param(v) for k, v in self.mask_rcnn.config.to_dict().items()}
            self._log_params(params)
        return self.run_id

    def _log_params(self, params):
        from mlflow.entities import Param
        items = [Param(k, v) for k, v in sorted(params.items())]
        for i in range(0, len(items), 90):  # MLflow takes at most 100 per batch
            self._client().log_batch(self.run_id, params=items[i:i + 90])

    # ------------------------------------------------------------------ Keras hooks
    def on_train_begin(self, logs=None):
        self._ensure_run()
        self.stage += 1
        self._first_epoch = None
        lr = self.model.optimizer.learning_rate
        try:
            lr = float(keras.ops.convert_to_numpy(lr))
        except Exception:  # a schedule
            lr = type(lr).__name__
        params = {"stage{}_learning_rate".format(self.stage):
                  "{:.6g}".format(lr) if isinstance(lr, float) else lr,
                  "stage{}_log_dir".format(self.stage): self.mask_rcnn.log_dir}
        if self.stage == 1:
            start = getattr(self.mask_rcnn, "initial_weights", None) or {}
            params["initial_weights"] = start.get("path") or "none (random)"
            params["initial_weights_sha256"] = start.get("sha256") or "-"
        datasets = getattr(self.mask_rcnn, "training_datasets", None) or {}
        for part, summary in datasets.items():
            if summary:
                key = "stage{}_{}_dataset".format(self.stage, part)
                params[key] = "{} images, {} ({})".format(
                    summary["images"], summary["class"], summary.get("folder") or "in memory")
                params["classes"] = ", ".join(summary["class_names"][1:])
        self._log_params(params)

    def on_epoch_end(self, epoch, logs=None):
        from mlflow.entities import Metric
        import time
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, epoch + 1) for k, v in (logs or {}).items()
                   if _finite(v)]
        if metrics:
            self._client().log_batch(self.run_id, metrics=metrics)
        if self._first_epoch is None:
            self._first_epoch = epoch + 1
        self._last_epoch = epoch + 1
        if self.checkpoints == "all":
            self._log_checkpoint(epoch + 1)

    def on_train_end(self, logs=None):
        if self._last_epoch is not None:
            self._log_params({"stage{}_epochs".format(self.stage):
                              "{}-{}".format(self._first_epoch, self._last_epoch)})
            if self.checkpoints == "last":
                self._log_checkpoint(self._last_epoch)
            elif self.checkpoints == "best-and-last":
                self._log_checkpoint(self._last_epoch, as_name="last")
                self._log_checkpoint("best", as_name="best")
        for name in ("losses.csv", "history.json", "losses.png", "run.json"):
            path = os.path.join(self.mask_rcnn.log_dir, name)
            if os.path.isfile(path):
                self._client().log_artifact(self.run_id, path, artifact_path="logs")

    def _log_checkpoint(self, epoch, as_name=None):
        """Upload the checkpoint of ``epoch`` (a number or "best"); with ``as_name``,
        under the fixed name mask_rcnn_<name>_<as_name>.h5, so that a later upload
        replaces it instead of adding a file."""
        pattern = self.mask_rcnn.checkpoint_path
        path = pattern.replace("{epoch:04d}", "best") if epoch == "best" else \
            pattern.format(epoch=epoch)
        if not os.path.isfile(path):
            return
        if as_name is None:
            self._client().log_artifact(self.run_id, path, artifact_path="checkpoints")
            return
        import shutil
        import tempfile
        target_name = os.path.basename(pattern.replace("{epoch:04d}", as_name))
        with tempfile.TemporaryDirectory() as tmp:
            target = os.path.join(tmp, target_name)
            try:
                os.link(path, target)      # no copy of 180 MB when the disk allows it
            except OSError:
                shutil.copyfile(path, target)
            self._client().log_artifact(self.run_id, target, artifact_path="checkpoints")

    # ------------------------------------------------------------------ evaluation
    def log_evaluation(self, report, json_path=None, prefix="eval"):
        """Log an evaluation (``mrcnn.evaluate.evaluate_model`` or the samples' evaluate
        report) to the run: metrics ``eval/segm_AP``, ``eval/bbox_AP50``, ...,
        ``eval/mAP`` (per-image), and the JSON and PR-curve PNGs as artifacts."""
        from mlflow.entities import Metric
        import time
        self._ensure_run()
        now = int(time.time() * 1000)
        values = {}
        coco = report.get("coco", {})
        for t in ("bbox", "segm"):
            for k, v in coco.get(t, {}).items():
                if k != "per_category" and _finite(v) and v >= 0:
                    values["{}/{}_{}".format(prefix, t, k)] = float(v)
        for k, v in report.get("per_image", {}).items():
            if k.startswith("mAP") and _finite(v):
                values["{}/{}".format(prefix, k)] = float(v)
        step = self.mask_rcnn.epoch if hasattr(self.mask_rcnn, "epoch") else 0
        self._client().log_batch(self.run_id, metrics=[Metric(k.replace("@", "_at_"), v, now,
                                                              step)
                                                       for k, v in sorted(values.items())])
        for path in coco.get("pr_curves", {}).values():
            if os.path.isfile(path):
                self._client().log_artifact(self.run_id, path, artifact_path=prefix)
        if json_path and os.path.isfile(json_path):
            self._client().log_artifact(self.run_id, json_path, artifact_path=prefix)
        return values


def _finite(v):
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _param(v):
    text = str(v)
    return text if len(text) <= 500 else text[:497] + "..."
