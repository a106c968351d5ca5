"""Quiet logs for the command line: TensorFlow's start-up and run-time noise hidden
unless ``--verbose``.

What TensorFlow 2.21 prints on a CPU machine, and what hides it:

- ``oneDNN custom operations are on``, ``Could not find cuda drivers``, ``This TensorFlow
  binary is optimized to use ...``: C++ INFO lines written while the shared libraries
  load, before absl logging is initialised, so no log level reaches them. They are
  filtered out of the process's stderr (file descriptor 2) while TensorFlow is imported;
  every other line written then is passed through.
- ``failed call to cuInit: ... CUDA error`` and grappler's ``Error in PredictCost()``:
  C++ ERROR lines after start-up; ``TF_CPP_MIN_LOG_LEVEL=3`` hides them (it must be set
  before TensorFlow is imported).
- Python-side warnings of the ``tensorflow`` and ``absl`` loggers: set to ERROR.

oneDNN itself stays on (``TF_ENABLE_ONEDNN_OPTS`` is left alone): only its message goes.
"""
import contextlib
import logging
import os
import re
import sys
import tempfile

# Lines TensorFlow writes to stderr while it loads, none of them an error of the user's.
NOISE = re.compile(
    r"oneDNN custom operations are on|TF_ENABLE_ONEDNN_OPTS|cudart_stub|"
    r"Could not find cuda drivers|cuda_platform|cuInit|cpu_feature_guard|"
    r"This TensorFlow binary is optimized|To enable the following instructions|"
    r"rebuild TensorFlow with the appropriate compiler flags|"
    r"All log messages before absl::InitializeLog|Unable to register cu(DNN|FFT|BLAS)|"
    r"computation_placer|TF-TRT Warning|PredictCost|cuda_executor|cuda_diagnostics")

_state = {"verbose": None}


def setup(verbose=False):
    """Set the environment for quiet (or, with ``verbose``, full) logs. Call it before
    TensorFlow is imported; later calls only change the Python loggers."""
    _state["verbose"] = bool(verbose)
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    level = logging.INFO if verbose else logging.ERROR
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(level)
    # "Re-starting from epoch N" on every load: the run block says it when it matters
    logging.getLogger("mrcnn.model").setLevel(logging.INFO if verbose else logging.WARNING)


def is_verbose():
    return bool(_state["verbose"])


@contextlib.contextmanager
def filtered_stderr(pattern=NOISE):
    """Capture what is written to file descriptor 2 (C++ included) inside the block, then
    write back the lines that do not match ``pattern``."""
    fd = 2  # the C++ libraries write here, whatever sys.stderr is
    try:
        saved = os.dup(fd)
    except OSError:  # no file descriptor 2 at all
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(True)
                    if not pattern.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow():
    """Import TensorFlow and Keras with the start-up noise filtered, after ``setup()``
    (unless verbose; without ``setup()`` a plain import)."""
    if "tensorflow" in sys.modules or _state["verbose"] is not False:
        import keras  # noqa: F401
        import tensorflow as tf
    else:
        with filtered_stderr():
            import keras  # noqa: F401
            import tensorflow as tf
    if _state["verbose"] is False:
        try:
            from absl import logging as absl_logging
            absl_logging.set_verbosity(absl_logging.ERROR)
        except ImportError:
            pass
        tf.get_logger().setLevel(logging.ERROR)
        try:
            tf.autograph.set_verbosity(0)
        except AttributeError:
            pass
    return tf
