"""What machine this is: CPU model, cores, instruction-set flags that matter for speed,
GPUs, memory and library versions. Recorded with every training run (run.json) and
every benchmark, since a speed measured on one CPU is not a property of the library.

No TensorFlow import unless asked for (``describe(tensorflow=True)``).
"""
import os
import platform

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16",
             "amx_int8")


def cpu_info():
    """{"model", "cores" (usable by this process), "flags" (the ISA_FLAGS present)}."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(),
                                                     platform.processor()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {"model": model, "cores": cores, "flags": [f for f in ISA_FLAGS if f in flags]}


def memory_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    return None


def describe(tensorflow=False):
    """A dict describing the machine (and, with tensorflow=True, the TF/Keras versions,
    oneDNN and thread settings and the GPUs TensorFlow sees)."""
    info = {"cpu": cpu_info(), "memory_gib": memory_gib(), "python": platform.python_version(),
            "platform": platform.platform()}
    from . import __version__
    info["mrcnn"] = __version__
    if tensorflow:
        import keras
        import tensorflow as tf
        info["tensorflow"] = tf.__version__
        info["keras"] = keras.__version__
        info["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")
        info["threads"] = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                           "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    return info


def one_line(info):
    """'AMD EPYC (2 cores; avx2 fma avx512f avx512_bf16), 23.4 GiB, TF 2.21.0'."""
    cpu = info["cpu"]
    text = "{} ({} cores; {})".format(cpu["model"], cpu["cores"], " ".join(cpu["flags"]) or
                                      "no AVX2")
    if info.get("gpus"):
        text += ", GPUs: " + ", ".join(info["gpus"])
    if info.get("memory_gib"):
        text += ", {} GiB".format(info["memory_gib"])
    if info.get("tensorflow"):
        text += ", TF {}".format(info["tensorflow"])
    return text
