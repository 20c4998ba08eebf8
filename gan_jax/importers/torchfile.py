"""Reads PyTorch files and network pickles without torch and without running any of their code.

Two layouts hold tensors:
- `torch.save` files: a zip archive (`<name>/data.pkl` plus one raw file per storage,
  `<name>/data/<key>`), or the legacy stream (magic number, protocol, system info, the pickle,
  the sorted storage keys, then each storage as an int64 element count and its bytes).
- Plain pickles of modules (NVIDIA's network pickles, R3GAN's): each tensor's storage is pickled
  as `torch.storage._load_from_bytes(<legacy torch.save bytes of that storage>)`.

`load` unpickles with a restricted `pickle.Unpickler`: tensors become numpy arrays (their dtype,
shape, stride and storage offset honoured), plain containers stay containers, and the classes of
the allowed module families (torch.nn modules, NVIDIA's persistent classes, R3GAN's modules) are
taken as data: a `Placeholder` records their module, name, constructor arguments and state.
NVIDIA's persistent objects carry their module's source code (`module_src`); it is dropped,
never executed. Any other global is refused with a one-line `ConfigError`.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, Iterable

import ml_dtypes
import numpy as np

from gan_jax.errors import ConfigError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64, "ComplexDoubleStorage": np.complex128, "UntypedStorage": np.uint8,
}
TORCH_DTYPES = {
    "float64": np.float64, "float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
    "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8,
    "bool": np.bool_, "complex64": np.complex64, "complex128": np.complex128,
}
# Module families whose classes are read as data (Placeholder), never imported.
CLASS_MODULES = ("torch.nn.modules.", "torch_utils.", "training.", "R3GAN.", "dnnlib.", "metrics.")


class Placeholder:
  """An object of a class that is not imported: its module, name, arguments and state, as data.

  Subclasses are made per (module, name) by `placeholder_class`; `Placeholder.find(name)`
  searches the nested state for objects of a class name."""
  module: str = ""
  name: str = ""

  def __new__(cls, *args, **kwargs):
    obj = super().__new__(cls)
    obj.args, obj.kwargs, obj.state, obj.items, obj.list = args, kwargs, None, {}, []
    return obj

  def __init__(self, *args, **kwargs):
    self.args, self.kwargs = args, kwargs

  def __setstate__(self, state):
    self.state = state

  def __setitem__(self, key, value):
    self.items[key] = value

  def append(self, value):
    self.list.append(value)

  def extend(self, values):
    self.list.extend(values)

  @property
  def qualname(self) -> str:
    return f"{self.module}.{self.name}"

  def __repr__(self) -> str:
    return f"<{self.qualname} placeholder>"


_PLACEHOLDER_CLASSES: dict[tuple[str, str], type] = {}


def placeholder_class(module: str, name: str) -> type:
  key = (module, name)
  if key not in _PLACEHOLDER_CLASSES:
    _PLACEHOLDER_CLASSES[key] = type(name, (Placeholder,), {"module": module, "name": name, "__module__": module})
  return _PLACEHOLDER_CLASSES[key]


class PersistentObject(Placeholder):
  """An object of NVIDIA's torch_utils.persistence: class name and state; its source code dropped."""
  module = "torch_utils.persistence"
  name = "persistent_object"

  def __init__(self, meta):
    meta = dict(meta)
    meta.pop("module_src", None)
    self.meta, self.state, self.class_name = meta, meta.get("state"), meta.get("class_name")

  @property
  def qualname(self) -> str:
    return f"persistent:{self.class_name}"


class EasyDict(dict):
  """dnnlib.util.EasyDict read as a plain dict (keys also as attributes)."""

  def __getattr__(self, name):
    try:
      return self[name]
    except KeyError:
      raise AttributeError(name) from None


class _Storage:
  """A storage's dtype (from its class) in a pickle; torch's storage classes stand for this."""

  def __init__(self, name: str):
    self.name, self.dtype = name, np.dtype(STORAGE_DTYPES[name])


class _TorchDtype:
  def __init__(self, name: str):
    self.name, self.dtype = name, np.dtype(TORCH_DTYPES[name])

  def __repr__(self) -> str:
    return f"torch.{self.name}"


def _tensor(storage: np.ndarray, offset: int, size: Iterable[int], stride: Iterable[int], dtype=None) -> np.ndarray:
  """The (read-only) strided view of a storage that a tensor is."""
  if dtype is not None and storage.dtype != dtype:
    storage = storage.view(dtype)
  size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
  if len(size) != len(stride):
    raise ValueError(f"tensor size {size} and stride {stride} differ in length")
  needed = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else 0
  if needed > storage.size:
    raise ValueError(f"tensor of size {size} at offset {offset} overruns its storage of {storage.size} elements")
  base = storage[offset:] if all(size) else storage[:0]
  item = storage.itemsize
  return np.lib.stride_tricks.as_strided(base, shape=size, strides=tuple(s * item for s in stride), writeable=False)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
  return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
  return _tensor(storage, storage_offset, size, stride, dtype.dtype if isinstance(dtype, _TorchDtype) else dtype)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
  return data


def _rebuild_from_type_v2(func, new_type, args, state):
  return func(*args)


def _encode(text, encoding="latin1"):
  """`_codecs.encode` as protocol-2 pickles use it for bytes (latin-1 only)."""
  if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
    raise pickle.UnpicklingError("_codecs.encode other than latin-1 of a string")
  return text.encode("latin1")


def _reconstructor(cls, base, state):
  if not (isinstance(cls, type) and issubclass(cls, Placeholder)):
    raise pickle.UnpicklingError(f"copyreg._reconstructor of {cls!r}")
  obj = cls.__new__(cls)
  if state is not None:
    obj.state = state
  return obj


def _tensor_type(*args):
  raise pickle.UnpicklingError("a tensor class called directly")


def _numpy_globals() -> dict[tuple[str, str], Any]:
  try:
    from numpy._core import multiarray
  except ImportError:  # numpy < 2
    from numpy.core import multiarray
  out = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
  for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
    out[(core, "_reconstruct")] = multiarray._reconstruct
    out[(core, "scalar")] = multiarray.scalar
  return out


def _allowed_globals(load_bytes) -> dict[tuple[str, str], Any]:
  g = {
      ("collections", "OrderedDict"): collections.OrderedDict,
      ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
      ("builtins", "complex"): complex, ("builtins", "bytearray"): bytearray,
      ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset,
      ("_codecs", "encode"): _encode,
      ("copyreg", "_reconstructor"): _reconstructor,
      ("torch", "Size"): tuple,
      ("torch", "Tensor"): _tensor_type, ("torch.nn.parameter", "Parameter"): _tensor_type,
      ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
      ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
      ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
      ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
      ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
      ("torch.storage", "_load_from_bytes"): load_bytes,
      ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentObject,
      ("dnnlib.util", "EasyDict"): EasyDict,
      ("dnnlib", "EasyDict"): EasyDict,
  }
  g.update(_numpy_globals())
  for name in STORAGE_DTYPES:
    g[("torch", name)] = _Storage(name)
  for name in TORCH_DTYPES:
    g[("torch", name)] = _TorchDtype(name)
  return g


class _Unpickler(pickle.Unpickler):
  """Resolves only the allowed globals; storages come from `storages(pid)`."""

  def __init__(self, file, reader: "_Reader", storages=None):
    super().__init__(file)
    self._reader, self._storages = reader, storages

  def find_class(self, module: str, name: str):
    allowed = self._reader.allowed.get((module, name))
    if allowed is not None:
      return allowed
    if module.startswith(CLASS_MODULES) and name.isidentifier() and not name.startswith("_"):
      return placeholder_class(module, name)
    raise _Refused(f"{module}.{name}")

  def persistent_load(self, pid):
    if self._storages is None or not isinstance(pid, tuple) or not pid or pid[0] != "storage":
      raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
    return self._storages(pid)


class _Refused(Exception):
  pass


class _Reader:
  """One file's reading: the allowed globals and the nested torch.save streams inside it."""

  def __init__(self, name: str):
    self.name = name
    self.allowed = _allowed_globals(self.load_bytes)

  def load_bytes(self, data: bytes):
    if not isinstance(data, (bytes, bytearray)):
      raise pickle.UnpicklingError("_load_from_bytes of a non-bytes object")
    return self.load_stream(io.BytesIO(bytes(data)))

  def load_stream(self, f: io.BufferedIOBase):
    head = f.read(4)
    f.seek(0)
    if head == b"PK\x03\x04":
      return self.load_zip(f)
    return self.load_pickle_or_legacy(f)

  def load_zip(self, f) -> Any:
    with zipfile.ZipFile(f) as z:
      names = z.namelist()
      pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
      if not pkl:
        raise pickle.UnpicklingError("a zip file without <name>/data.pkl: not a torch.save file")
      prefix = pkl[0][: -len("data.pkl")]
      order = z.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
      cache: dict[str, np.ndarray] = {}

      def storage(pid):
        _, kind, key, _location, numel = pid[:5]
        dtype = kind.dtype if isinstance(kind, (_Storage, _TorchDtype)) else np.dtype(np.uint8)
        if key not in cache:
          raw = z.read(f"{prefix}data/{key}")
          if len(raw) < int(numel) * dtype.itemsize:
            raise EOFError(f"storage {key} has {len(raw)} bytes, {int(numel) * dtype.itemsize} expected")
          arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<" if order == "little" else ">"), count=int(numel))
          cache[key] = arr.astype(dtype) if order != "little" else arr
        return cache[key] if cache[key].dtype == dtype else cache[key].view(dtype)

      return _Unpickler(io.BytesIO(z.read(pkl[0])), self, storage).load()

  def load_pickle_or_legacy(self, f) -> Any:
    """A legacy torch.save stream, or a plain pickle (its tensors hold their own storages)."""
    first = _Unpickler(f, self).load()
    if not (isinstance(first, int) and first == LEGACY_MAGIC):
      return first
    protocol = _Unpickler(f, self).load()
    if protocol != 1001:
      raise pickle.UnpicklingError(f"legacy torch.save protocol {protocol!r}, 1001 expected")
    _Unpickler(f, self).load()  # system info: byte order and type sizes
    storages: dict[str, np.ndarray] = {}

    def storage(pid):
      _, kind, key, _location, numel = pid[:5]
      if len(pid) > 5 and pid[5] is not None:
        raise pickle.UnpicklingError("legacy storage views are not supported")
      if key not in storages:
        storages[key] = np.empty(int(numel), dtype=kind.dtype)
      return storages[key]

    obj = _Unpickler(f, self, storage).load()
    keys = _Unpickler(f, self).load()
    for key in keys:
      arr = storages[key]
      head = f.read(8)
      if len(head) < 8:
        raise EOFError(f"storage {key} missing")
      (numel,) = struct.unpack("<q", head)
      if numel != arr.size:
        raise pickle.UnpicklingError(f"storage {key} has {numel} elements, {arr.size} expected")
      raw = f.read(arr.nbytes)
      if len(raw) < arr.nbytes:
        raise EOFError(f"storage {key} truncated")
      arr[...] = np.frombuffer(raw, dtype=arr.dtype)
    return obj


def load(source: str | os.PathLike | bytes, name: str | None = None) -> Any:
  """A torch.save file or network pickle (path or bytes) -> nested containers of np.ndarray and Placeholders.

  Raises ConfigError with one line for a truncated or unreadable file and for a reference to
  any global that is not a tensor or a known container (nothing in the file is ever run)."""
  if isinstance(source, (bytes, bytearray)):
    name, data = name or "<bytes>", bytes(source)
  else:
    name = name or os.fspath(source)
    try:
      with open(source, "rb") as fh:
        data = fh.read()
    except OSError as e:
      raise ConfigError(f"cannot read {name}: {e.strerror}") from None
  reader = _Reader(name)
  try:
    return reader.load_stream(io.BytesIO(data))
  except _Refused as e:
    raise ConfigError(f"refusing to load {name}: it references {e}, which is not a tensor or a known "
                      "container") from None
  except (EOFError, zipfile.BadZipFile, struct.error) as e:
    raise ConfigError(f"cannot read {name}: the file is truncated or damaged ({type(e).__name__}: {e})") from None
  except (pickle.UnpicklingError, ValueError, TypeError, KeyError, AttributeError, IndexError, MemoryError) as e:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "truncated" in msg or "ran out of input" in msg.lower():
      raise ConfigError(f"cannot read {name}: the file is truncated or damaged ({msg})") from None
    raise ConfigError(f"cannot read {name}: not a PyTorch file or network pickle ({type(e).__name__}: {msg})") from None


def walk(tree: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
  """(dotted path, leaf) for every leaf of nested dicts/lists/tuples (Placeholders are leaves)."""
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from walk(v, f"{prefix}{k}." if prefix or k != "" else "")
  elif isinstance(tree, (list, tuple)):
    for i, v in enumerate(tree):
      yield from walk(v, f"{prefix}{i}.")
  else:
    yield prefix[:-1], tree


def module_state_dict(module: Any, prefix: str = "") -> dict[str, np.ndarray]:
  """A torch.nn.Module read as a Placeholder -> its state_dict: parameters and persistent buffers by dotted name."""
  state = module.state if isinstance(module, Placeholder) else module
  if not isinstance(state, dict):
    raise ConfigError(f"{module!r} has no module state")
  out: dict[str, np.ndarray] = {}
  non_persistent = set(state.get("_non_persistent_buffers_set") or ())
  for key in ("_parameters", "_buffers"):
    for name, value in (state.get(key) or {}).items():
      if value is not None and not (key == "_buffers" and name in non_persistent):
        out[prefix + name] = value
  for name, child in (state.get("_modules") or {}).items():
    if child is not None:
      out.update(module_state_dict(child, f"{prefix}{name}."))
  return out
