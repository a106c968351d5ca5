"""Read PyTorch ``.pth`` files into NumPy without PyTorch.

``load_pth(path)`` returns what ``torch.load`` would (a state_dict, or a checkpoint dict
holding one), with every tensor as a NumPy array. Both formats ``torch.save`` writes are
read: the zip archive (PyTorch >= 1.6: ``<name>/data.pkl`` plus one member
``<name>/data/<key>`` per storage) and the legacy stream (before 1.6, e.g. torchvision's
published ``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth``: a few pickles, then the raw
storages).

The pickle is read by a restricted unpickler: it rebuilds tensors and ordered dicts and
turns any other class it meets (an optimizer's state, an ``argparse.Namespace`` of a
training script) into an inert placeholder. No code from the file runs.
"""
import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np

# storage class name -> NumPy dtype (bfloat16 is widened to float32 by hand)
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "UntypedStorage": np.uint8,
}
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


class PthError(ValueError):
    """A file that is not a PyTorch checkpoint this reader understands."""


class _StorageType(object):
    def __init__(self, name):
        self.name = name


class _Placeholder(object):
    """Stands for an object of a class this reader does not rebuild."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):
        return _Placeholder(*args)


def _placeholder_class(module, name):
    return type(name, (_Placeholder,), {"__module__": "mrcnn.torch_pickle.<{}>".format(module)})


class _Storage(object):
    """A storage whose bytes are read on demand: (dtype, reader of the raw bytes)."""

    def __init__(self, dtype, read):
        self.dtype = dtype
        self._read = read
        self._array = None

    def array(self):
        if self._array is None:
            raw = self._read()
            if self.dtype == "bfloat16":
                words = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                self._array = words.view(np.float32)
            else:
                self._array = np.frombuffer(raw, dtype=np.dtype(self.dtype).newbyteorder("<"))
        return self._array


class _LazyTensor(object):
    """A tensor whose storage bytes come later (legacy files store them after the
    pickle); ``_materialise`` turns it into an array."""

    def __init__(self, storage, storage_offset, size, stride):
        self.args = (storage, int(storage_offset), size, stride)

    def array(self):
        return _tensor_array(*self.args)


class _StorageView(object):
    """Part of a root storage (legacy files: a storage that views another)."""

    def __init__(self, root, offset, size):
        self.root, self.offset, self.size = root, int(offset), int(size)

    def array(self):
        return self.root.array()[self.offset:self.offset + self.size]


def _rebuild_tensor(storage, storage_offset, size, stride, *args):
    return _LazyTensor(storage, storage_offset, size, stride)


def _tensor_array(storage, storage_offset, size, stride):
    data = storage.array() if isinstance(storage, (_Storage, _StorageView)) \
        else np.asarray(storage)
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return np.array(data[storage_offset]).copy()
    if 0 in size:
        return np.zeros(size, dtype=data.dtype)
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[storage_offset:], shape=size, strides=tuple(s * itemsize for s in stride))
    return np.array(view)  # a copy in C order, native byte order


def _rebuild_parameter(data, *args):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice, ("builtins", "complex"): complex,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, load_storage):
        super().__init__(f, encoding="utf-8")
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name in ("float32", "float64", "float16", "bfloat16", "int64",
                                          "int32", "uint8", "bool"):
            return name
        return _placeholder_class(module, name)

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise PthError("unknown persistent id {!r}".format(pid))
        storage_type, key = pid[1], str(pid[2])
        name = storage_type.name if isinstance(storage_type, _StorageType) else str(storage_type)
        if name not in STORAGE_DTYPES:
            raise PthError("unsupported storage type {}".format(name))
        return self._load_storage(key, STORAGE_DTYPES[name], pid)


def _load_zip(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise PthError("a zip file without data.pkl")
        prefix = pkl[0][:-len("data.pkl")]
        order = z.read(prefix + "byteorder").decode() if prefix + "byteorder" in names \
            else "little"
        if order.strip() != "little":
            raise PthError("saved on a big-endian machine, which this reader does not read")

        def load_storage(key, dtype, pid):
            member = "{}data/{}".format(prefix, key)
            return _Storage(dtype, lambda: z.read(member))

        obj = _Unpickler(io.BytesIO(z.read(pkl[0])), load_storage).load()
        return _materialise(obj)


def _load_legacy(path):
    with open(path, "rb") as f:
        magic = pickle.load(f)
        if magic != LEGACY_MAGIC:
            raise PthError("not a PyTorch file (wrong magic number)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        storages = {}

        def load_storage(key, dtype, pid):
            if key not in storages:
                storages[key] = _Storage(dtype, None)
            view = pid[5] if len(pid) > 5 else None
            if view is not None:
                view_key, offset, size = view
                return _StorageView(storages[key], offset, size)
            return storages[key]

        obj = _Unpickler(f, load_storage).load()
        keys = pickle.load(f)
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            storage = storages.get(str(key))
            itemsize = 2 if storage is not None and storage.dtype == "bfloat16" else \
                np.dtype(storage.dtype if storage is not None else np.uint8).itemsize
            raw = f.read(numel * itemsize)
            if len(raw) != numel * itemsize:
                raise PthError("the file ends inside storage {} (truncated)".format(key))
            if storage is not None:
                storage._read = (lambda data: (lambda: data))(raw)
        return _materialise(obj)


def _materialise(obj):
    """Storages still lazy inside containers are read now (the file closes after)."""
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    if isinstance(obj, _LazyTensor):
        return obj.array()
    return obj


def load_pth(path):
    """The object a ``.pth`` / ``.pt`` file holds, tensors as NumPy arrays.

    Raises FileNotFoundError, or PthError naming the file and what is wrong with it.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError("no such file: {}".format(path))
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if head[:2] == b"PK":
            return _load_zip(path)
        if head[:1] == b"\x80":
            return _load_legacy(path)
    except PthError as e:
        raise PthError("{}: {}".format(path, e)) from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, KeyError,
            ValueError) as e:
        raise PthError("{}: cannot read it as a PyTorch checkpoint ({}: {}); the file is "
                       "truncated or not a .pth file. Download it again.".format(
                           path, type(e).__name__, e)) from None
    raise PthError("{} is not a PyTorch .pth file (it starts with {!r}; a .pth file is a zip "
                   "archive or a pickle stream)".format(path, head))
