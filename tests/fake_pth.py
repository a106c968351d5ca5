"""Write NumPy arrays as a PyTorch ``.pth`` file (the zip format torch.save writes)
without PyTorch, for the converter's tests.

The pickle names the same globals torch.save's does (``torch._utils._rebuild_tensor_v2``,
``torch.FloatStorage``, ``collections.OrderedDict``); stand-ins for them are put in
``sys.modules`` only while pickling, and only when torch is not installed (the reader
never imports torch).
"""
import io
import pickle
import sys
import types
import zipfile
from collections import OrderedDict

import numpy as np

_STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                  np.dtype(np.int64): "LongStorage", np.dtype(np.float16): "HalfStorage"}


class _Tensor(object):
    def __init__(self, key, array):
        self.key, self.array = key, array

    def __reduce__(self):
        stride = tuple(s // self.array.itemsize for s in self.array.strides)
        return (_rebuild_tensor_v2, (_StorageRef(self.key, self.array), 0, self.array.shape,
                                     stride, False, OrderedDict()))


class _StorageRef(object):
    def __init__(self, key, array):
        self.key, self.array = key, array


def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
    raise RuntimeError("stand-in")


def write_pth(path, state_dict, wrap=None):
    """Write {name: array} as a zip-format .pth (a state_dict, or {wrap: state_dict}).
    Returns path."""
    if "torch" in sys.modules or _torch_installed():
        raise RuntimeError("write_pth is for environments without torch")
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")
    _rebuild_tensor_v2.__module__ = "torch._utils"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch_mod._utils = utils_mod
    storage_types = {}
    for name in _STORAGE_NAMES.values():
        cls = type(name, (object,), {"__module__": "torch"})
        setattr(torch_mod, name, cls)
        storage_types[name] = cls
    storages = OrderedDict()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _StorageRef):
                storages[obj.key] = obj.array
                return ("storage", storage_types[_STORAGE_NAMES[obj.array.dtype]], obj.key,
                        "cpu", obj.array.size)
            return None

    tensors = OrderedDict()
    for i, (name, array) in enumerate(state_dict.items()):
        array = np.ascontiguousarray(array)
        tensors[name] = _Tensor(str(i), array)
    obj = {wrap: tensors, "epoch": 3} if wrap else tensors
    buf = io.BytesIO()
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch_mod, utils_mod
    try:
        Pickler(buf, protocol=2).dump(obj)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, array in storages.items():
            z.writestr("archive/data/" + key, array.astype(array.dtype.newbyteorder("<"))
                       .tobytes())
    return path


def _torch_installed():
    import importlib.util
    return importlib.util.find_spec("torch") is not None
