"""Reads PyTorch ``pytorch_model.bin`` state dicts into numpy, without torch.

The file is torch.save's zip format: ``<prefix>/data.pkl`` pickles the dict, and each tensor's
storage is the entry ``<prefix>/data/<key>``. Unpickling allows only the globals a state dict
needs, so a malicious pickle cannot run code.
"""

from __future__ import annotations

import collections
import pickle
import zipfile

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_DTYPES = {"float32": np.float32, "float": np.float32, "float64": np.float64,
           "double": np.float64, "float16": np.float16, "half": np.float16,
           "bfloat16": ml_dtypes.bfloat16, "int64": np.int64, "long": np.int64, "int32": np.int32,
           "int": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}


def _rebuild_tensor(storage, offset, size, stride, *_):
  """torch._utils._rebuild_tensor_v2: a strided view of ``storage``, copied to be contiguous."""
  item = storage.itemsize
  if not size:
    return np.array(storage[offset])
  view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                         strides=tuple(s * item for s in stride), writeable=False)
  return np.ascontiguousarray(view)


def _rebuild_parameter(data, *_):
  return data


class _Unpickler(pickle.Unpickler):

  def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
    super().__init__(file)
    self.archive, self.prefix, self.storages = archive, prefix, {}

  def find_class(self, module, name):
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    if module == "torch._utils" and name == "_rebuild_tensor_v2":
      return _rebuild_tensor
    if module == "torch._utils" and name == "_rebuild_parameter":
      return _rebuild_parameter
    if module == "torch" and name in _STORAGE_DTYPES:
      return _STORAGE_DTYPES[name]
    if module == "torch" and name in _DTYPES:
      return _DTYPES[name]
    raise ValueError(f"refusing to unpickle {module}.{name}: not part of a PyTorch state dict")

  def persistent_load(self, pid):
    kind, storage_type, key, _location, numel = pid
    if kind != "storage":
      raise ValueError(f"unsupported persistent id {kind!r} in a PyTorch checkpoint")
    if key not in self.storages:
      dtype = np.dtype(storage_type)
      raw = self.archive.read(f"{self.prefix}/data/{key}")
      self.storages[key] = np.frombuffer(raw, dtype=dtype, count=numel)
    return self.storages[key]


def load_torch_state_dict(path) -> dict[str, np.ndarray]:
  """The tensors of a ``torch.save``d state dict, by name, as numpy arrays."""
  if not zipfile.is_zipfile(path):
    raise ValueError(f"{path} is in PyTorch's legacy (pre-1.6) format: re-save it with a recent "
                     "torch (torch.save) or convert it to model.safetensors")
  with zipfile.ZipFile(path) as archive:
    pkl = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
    if pkl is None:
      raise ValueError(f"{path} is a zip file without data.pkl: not a torch.save checkpoint")
    prefix = pkl.rsplit("/", 1)[0] if "/" in pkl else ""
    with archive.open(pkl) as f:
      state = _Unpickler(f, archive, prefix).load()
  if not isinstance(state, dict):
    raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
  return {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
