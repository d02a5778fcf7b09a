"""The state dict of a TorchScript archive, read without running it (no torch).

``torch.jit.load`` executes the archive's embedded code; OpenAI's CLIP
checkpoints (``ViT-B-16.pt``) are such archives. `read_state_dict` instead
unpickles ``<archive>/data.pkl`` with a restricted unpickler that knows only

* ``torch._utils._rebuild_tensor_v2``: a tensor, rebuilt as a numpy array
  from the archive's ``data/<key>`` record with its dtype, shape, strides
  and storage offset, checked to fit its storage before anything is
  allocated (`check_tensor`: one line naming the file and the tensor's key);
* ``torch.<Dtype>Storage`` (float16/32/64, bfloat16, integer and bool
  storages), named by the persistent ids ``('storage', type, key, device,
  numel)``;
* ``collections.OrderedDict`` (the empty backward-hooks dict) and
  ``torch.jit._pickle``'s typed-list builders (``build_intlist``, ...) and
  ``restore_type_tag``, which return their argument;
* ``__torch__.*`` classes: the scripted modules, made inert attribute holders.

Any other global (``os.system``, ``builtins.eval``, ...) raises
`CheckpointError` naming it before anything is called. Which attributes of
a module are its parameters and buffers is read as text from the class
definitions in ``<archive>/code/`` (``__parameters__ = [...]``,
``__buffers__ = [...]``), never executed; so the keys equal
``torch.jit.load(path).state_dict()``'s (module attributes that are tensors
but neither, like CLIP's ``attn_mask``, are left out; None parameters too).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import pickle
import re
import zipfile

import ml_dtypes
import numpy as np

from rationality_jax.models.convert import CheckpointError

_STORAGE_DTYPES = {
  "FloatStorage": np.dtype("<f4"),
  "DoubleStorage": np.dtype("<f8"),
  "HalfStorage": np.dtype("<f2"),
  "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
  "LongStorage": np.dtype("<i8"),
  "IntStorage": np.dtype("<i4"),
  "ShortStorage": np.dtype("<i2"),
  "CharStorage": np.dtype("i1"),
  "ByteStorage": np.dtype("u1"),
  "BoolStorage": np.dtype("?"),
}
# torch.jit._pickle's helpers: each returns its (first) argument unchanged.
_TYPED_CONTAINERS = (
  "build_intlist",
  "build_tensorlist",
  "build_doublelist",
  "build_boollist",
  "restore_type_tag",
)
# A tensor may repeat its storage's elements (a zero stride, as ``expand``
# saves); its copy may then outgrow the storage, by at most this many bytes.
# Without a bound a 1.7 KB archive with a zero stride asks for gigabytes.
MAX_EXPANDED_BYTES = 64 << 20
_MAX_DIMS = 64  # numpy's
_CLASS_LINE = re.compile(r"^class (\w+)\((\w*)\):")
_MEMBERS_LINE = re.compile(r"^\s+(__parameters__|__buffers__) = \[(.*)\]\s*$")


def is_torchscript(path: str) -> bool:
  """Whether ``path`` is a zip archive with TorchScript code (``*/code/``)."""
  if not zipfile.is_zipfile(path):
    return False
  with zipfile.ZipFile(path) as archive:
    return any(
      name.split("/", 1)[-1].startswith("code/") for name in archive.namelist()
    )


def _first_argument(value, *_):
  return value


class _StorageType:
  """What ``torch.HalfStorage`` etc. unpickle to: their element dtype."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = _STORAGE_DTYPES[name]


def check_tensor(
  path: str,
  key: str,
  size,
  stride,
  offset,
  storage_numel: int,
  itemsize: int,
  storage: str = "its storage",
) -> int:
  """The tensor's element count, once it is known to fit its storage.

  Raises CheckpointError, one line naming `path` and `key` with the size,
  stride, storage offset and storage size, unless every size and stride
  and the offset are non-negative integers (one stride per size, at most 64
  dimensions), the last element offset + sum((size - 1) * stride) lies
  inside the `storage_numel` elements of `storage`, and the copy (elements
  x `itemsize` bytes) is no larger than the storage or, for a view that
  repeats elements, than MAX_EXPANDED_BYTES. Python integers throughout:
  nothing overflows, nothing is allocated.
  """
  what = (
    f"{path}: tensor {key!r} (size {size!r}, stride {stride!r}, storage "
    f"offset {offset!r}; {storage} has {storage_numel:,} elements)"
  )
  shape = (size, stride)
  if not (
    all(isinstance(x, (tuple, list)) for x in shape)
    and len(size) == len(stride) <= _MAX_DIMS
    and all(type(n) is int and n >= 0 for n in (offset, *size, *stride))
  ):
    raise CheckpointError(
      f"{what} is malformed: sizes, strides and the offset must be "
      "non-negative integers, one stride per size."
    )
  numel = math.prod(size)
  if numel == 0:
    return 0
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= storage_numel:
    raise CheckpointError(
      f"{what} reaches element {last:,}, outside its storage."
    )
  nbytes = numel * itemsize
  if numel > storage_numel and nbytes > MAX_EXPANDED_BYTES:
    raise CheckpointError(
      f"{what} repeats its storage's elements into {numel:,} elements "
      f"({nbytes:,} bytes), more than the {MAX_EXPANDED_BYTES:,} bytes such "
      "a view may copy to (torchscript.MAX_EXPANDED_BYTES); not allocating it."
    )
  return numel


@dataclasses.dataclass(frozen=True)
class _Storage:
  """A storage record read from the archive: its elements and its name."""

  array: np.ndarray
  record: str


@dataclasses.dataclass(frozen=True)
class _TensorRecord:
  """A tensor as data.pkl describes it, allocated only once it is a state
  dict entry (`array`, which knows its key) and checked to fit."""

  storage: _Storage
  offset: object
  size: object
  stride: object

  def array(self, path: str, key: str) -> np.ndarray:
    storage = self.storage.array
    numel = check_tensor(
      path,
      key,
      self.size,
      self.stride,
      self.offset,
      storage.size,
      storage.itemsize,
      self.storage.record,
    )
    if numel == 0:
      return np.zeros(self.size, storage.dtype)
    view = np.lib.stride_tricks.as_strided(
      storage[self.offset :],
      shape=self.size,
      strides=[s * storage.itemsize for s in self.stride],
      writeable=False,
    )
    return np.array(view)


class _ScriptObject:
  """An inert stand-in for an instance of a scripted class (``__torch__.*``)."""

  torch_class = ""

  def __setstate__(self, state):
    self.__dict__["attributes"] = state


class _Unpickler(pickle.Unpickler):
  """Unpickles ``data.pkl`` of ``archive`` allowing only tensor rebuilding."""

  def __init__(self, file, archive: zipfile.ZipFile, root: str, path: str):
    super().__init__(file)
    self._archive = archive
    self._root = root
    self._path = path
    self._storages: dict[str, _Storage] = {}
    self._classes: dict[str, type] = {}
    self._byteorder = "little"
    if f"{root}/byteorder" in archive.namelist():
      self._byteorder = archive.read(f"{root}/byteorder").decode().strip()
    if self._byteorder not in ("little", "big"):
      raise CheckpointError(
        f"{path}: unknown byteorder {self._byteorder!r} in the archive."
      )

  def find_class(self, module: str, name: str):
    if module == "torch._utils" and name == "_rebuild_tensor_v2":
      return self._rebuild_tensor
    if module == "collections" and name == "OrderedDict":
      return collections.OrderedDict
    if module == "torch.jit._pickle" and name in _TYPED_CONTAINERS:
      return _first_argument
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if module == "__torch__" or module.startswith("__torch__."):
      qualified = f"{module}.{name}"
      if qualified not in self._classes:
        self._classes[qualified] = type(
          name, (_ScriptObject,), {"torch_class": qualified}
        )
      return self._classes[qualified]
    raise CheckpointError(
      f"{self._path}: the TorchScript archive's data.pkl refers to the global "
      f"{module}.{name}, which is not a tensor, storage or module class; "
      "refusing to unpickle it (it could run code). Only load archives from "
      "sources you trust, or export the weights as safetensors."
    )

  def persistent_load(self, pid):
    if not (
      isinstance(pid, tuple)
      and len(pid) == 5
      and pid[0] == "storage"
      and isinstance(pid[1], _StorageType)
      and isinstance(pid[2], str)
      and type(pid[4]) is int
      and pid[4] >= 0
    ):
      raise CheckpointError(
        f"{self._path}: unexpected persistent id {pid!r} in data.pkl."
      )
    _, storage_type, key, _, numel = pid
    if key not in self._storages:
      dtype = storage_type.dtype
      if self._byteorder == "big":
        dtype = dtype.newbyteorder(">")
      record = f"{self._root}/data/{key}"
      try:
        info = self._archive.getinfo(record)
      except KeyError as error:
        raise CheckpointError(
          f"{self._path}: storage record {record} is missing."
        ) from error
      need = numel * dtype.itemsize
      if info.file_size < need:
        raise CheckpointError(
          f"{self._path}: storage record {record} holds {info.file_size} "
          f"bytes, fewer than its {numel} {storage_type.name} elements need."
        )
      with self._archive.open(info) as f:  # only the bytes it declares
        raw = f.read(need)
      array = np.frombuffer(raw, dtype, count=numel)
      array = array.astype(dtype.newbyteorder("="), copy=False)
      self._storages[key] = _Storage(array, record)
    return self._storages[key]

  def _rebuild_tensor(
    self, storage, offset, size, stride, requires_grad, hooks, *metadata
  ) -> _TensorRecord:
    """The tensor's description; checked and allocated by `_state_dict`,
    which knows its key (tensors that are not state, such as CLIP's
    ``attn_mask``, are never allocated)."""
    del requires_grad, hooks, metadata
    if not isinstance(storage, _Storage):
      raise CheckpointError(
        f"{self._path}: a tensor record in data.pkl has no storage record "
        f"({type(storage).__name__})."
      )
    return _TensorRecord(storage, offset, size, stride)


@functools.cache
def _class_members(code: str) -> dict[str, tuple[str, ...] | None]:
  """Class name -> its parameters + buffers (None: not a Module) in ``code``."""
  members: dict[str, list[str] | None] = {}
  current = None
  for line in code.splitlines():
    if match := _CLASS_LINE.match(line):
      current = match.group(1)
      members[current] = [] if match.group(2) == "Module" else None
    elif (
      current is not None
      and members[current] is not None
      and (match := _MEMBERS_LINE.match(line))
    ):
      members[current] += re.findall(r'"([^"]*)"', match.group(2))
  return {
    name: None if found is None else tuple(found)
    for name, found in members.items()
  }


def _state_dict(
  obj: _ScriptObject, archive: zipfile.ZipFile, root: str, path: str
) -> dict[str, np.ndarray]:
  """Parameters and buffers of ``obj`` and its submodules, torch's order."""
  out: dict[str, np.ndarray] = {}

  def members(torch_class: str):
    module, name = torch_class.rsplit(".", 1)
    record = f"{root}/code/{module.replace('.', '/')}.py"
    try:
      code = archive.read(record).decode("utf-8")
    except KeyError as error:
      raise CheckpointError(
        f"{path}: no code record {record} for class {torch_class}."
      ) from error
    classes = _class_members(code)
    if name not in classes:
      raise CheckpointError(f"{path}: {record} defines no class {name}.")
    return classes[name]

  def visit(node: _ScriptObject, prefix: str):
    if members(node.torch_class) is None:
      raise CheckpointError(
        f"{path}: {node.torch_class} at {prefix or '<root>'} is not a module."
      )
    attributes = node.__dict__.get("attributes")
    if not isinstance(attributes, dict):
      raise CheckpointError(
        f"{path}: module {prefix or '<root>'} ({node.torch_class}) has no "
        "attribute dict."
      )
    for name in members(node.torch_class):
      value = attributes.get(name)
      if value is None:
        continue
      if not isinstance(value, _TensorRecord):
        raise CheckpointError(
          f"{path}: {prefix}{name} is a {type(value).__name__}, not a tensor."
        )
      out[prefix + name] = value.array(path, prefix + name)
    for name, value in attributes.items():
      if (
        isinstance(value, _ScriptObject)
        and members(value.torch_class) is not None
      ):
        visit(value, f"{prefix}{name}.")

  visit(obj, "")
  return out


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """``torch.jit.load(path).state_dict()`` as numpy arrays, without torch.

  Args:
    path: a TorchScript archive (`is_torchscript`).

  Returns:
    key -> array in the stored dtype (float16 stays float16).

  Raises:
    CheckpointError: a global other than the tensor-rebuild ones (named), a
      malformed or truncated archive, a tensor that does not fit its storage
      (`check_tensor`, naming its key).
  """
  try:
    archive = zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError) as error:
    raise CheckpointError(
      f"cannot read TorchScript archive {path}: {error}"
    ) from error
  with archive:
    roots = [
      name[: -len("/data.pkl")]
      for name in archive.namelist()
      if name.endswith("/data.pkl") and name.count("/") == 1
    ]
    if len(roots) != 1:
      raise CheckpointError(
        f"{path}: expected one <archive>/data.pkl in the zip, found "
        f"{len(roots)}."
      )
    root = roots[0]
    with archive.open(f"{root}/data.pkl") as data:
      try:
        obj = _Unpickler(data, archive, root, path).load()
      except CheckpointError:
        raise
      except Exception as error:  # pickle, zip or type errors: all malformed
        raise CheckpointError(
          f"cannot read TorchScript archive {path} "
          f"({type(error).__name__}: {error})."
        ) from error
    if not isinstance(obj, _ScriptObject):
      raise CheckpointError(
        f"{path}: data.pkl holds a {type(obj).__name__}, not a scripted module."
      )
    return _state_dict(obj, archive, root, path)
