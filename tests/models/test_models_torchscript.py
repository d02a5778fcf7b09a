"""TorchScript archives are read without running them (models/torchscript.py):
the same state dict as ``torch.jit.load``, and pickled code is refused."""

import builtins
import collections
import io
import os
import pickle
import subprocess
import sys
import types
from unittest import mock
import zipfile

import ml_dtypes
import numpy as np
import pytest
import torch

from rationality_jax import models
from rationality_jax.models import readers
from rationality_jax.models import torchscript
from tests import checkpoint_factories as factories


def assert_same_state_dict(path):
  ours = torchscript.read_state_dict(str(path))
  theirs = torch.jit.load(str(path), map_location="cpu").state_dict()
  assert list(ours) == list(theirs)
  for key, value in theirs.items():
    expected = (
      value.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
      if value.dtype == torch.bfloat16
      else value.numpy()
    )
    assert ours[key].dtype == expected.dtype, key
    np.testing.assert_array_equal(ours[key], expected, err_msg=key)
  return ours


def test_openai_archive_equals_torch_jit_load(tmp_path):
  made = factories.openai_torchscript(tmp_path / "ViT-B-16.pt")
  state = assert_same_state_dict(made.path)
  assert state["visual.transformer.resblocks.0.attn.in_proj_weight"].dtype == (
    np.float16
  )
  assert state["vocab_size"].dtype == np.int64
  assert "transformer.resblocks.0.attn_mask" not in state


class Views(torch.nn.Module):
  """Parameters and buffers that are strided views of shared storage."""

  def __init__(self):
    super().__init__()
    self.weight = torch.nn.Parameter(torch.randn(4, 6).t())  # strides (1, 6)
    base = torch.arange(12, dtype=torch.bfloat16)
    self.register_buffer("head", base[2:5])  # offset 2
    self.register_buffer("tail", base[5:].view(7, 1).expand(7, 3))  # stride 0
    self.register_buffer("flags", torch.tensor([True, False]))
    self.none = None
    self.inner = torch.nn.Linear(3, 2, bias=False)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.inner(x) + self.weight.sum()


@pytest.mark.parametrize("how", ["script", "trace"])
def test_views_dtypes_and_traced_archives_equal_torch_jit_load(tmp_path, how):
  module = Views()
  if how == "script":
    archive = torch.jit.script(module)
  else:
    archive = torch.jit.trace(module, torch.randn(5, 3))
  archive.save(str(tmp_path / "views.pt"))
  state = assert_same_state_dict(tmp_path / "views.pt")
  assert state["tail"].shape == (7, 3) and state["weight"].shape == (6, 4)


def test_loading_an_openai_archive_needs_no_torch(tmp_path):
  made = factories.openai_torchscript(tmp_path / "ViT-B-16.pt", fp16=False)
  code = (
    "import sys; sys.modules['torch'] = None; "
    "from rationality_jax import models; "
    f"module, params = models.load({made.path!r}); "
    "assert module.config.vision.patch_size == 16; print('ok')"
  )
  out = subprocess.run(
    [sys.executable, "-c", code],
    check=True,
    capture_output=True,
    text=True,
    env=dict(os.environ),
  )
  assert out.stdout.strip().endswith("ok")


class Payload:
  """Unpickling calls ``function(argument)``."""

  def __init__(self, function, argument):
    self.function, self.argument = function, argument

  def __reduce__(self):
    return self.function, (self.argument,)


def with_data_pkl(source, target, data: bytes):
  """A copy of the archive ``source`` whose data.pkl is ``data``."""
  with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
    for item in old.infolist():
      content = old.read(item.filename)
      if item.filename.endswith("/data.pkl"):
        content = data
      new.writestr(item, content)
  return str(target)


@pytest.fixture(scope="module")
def valid_archive(tmp_path_factory):
  path = tmp_path_factory.mktemp("archive") / "ViT-B-16.pt"
  return factories.openai_torchscript(path).path


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("attack", ["os.system", "builtins.eval"])
def test_pickled_code_is_refused_and_never_runs(
  valid_archive, tmp_path, attack, protocol, nested
):
  marker = tmp_path / "marker"
  payload = (
    Payload(os.system, f"touch {marker}")
    if attack == "os.system"
    else Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()")
  )
  obj = {"weight": [1, 2, payload]} if nested else payload
  path = with_data_pkl(
    valid_archive, tmp_path / "evil.pt", pickle.dumps(obj, protocol)
  )
  # Protocol 2 writes Python 2's module name for builtins.
  global_name = (
    "posix.system" if attack == "os.system" else "(builtins|__builtin__).eval"
  )
  with pytest.raises(models.CheckpointError, match=rf"global {global_name}\b"):
    models.load(path)
  assert not marker.exists()


class Storage:
  """Pickled as the persistent id of storage '0'."""


class Tensor:
  """Pickled as torch's tensor record of `size`, `stride`, `offset`."""

  def __init__(self, size, stride, offset=0):
    self.size, self.stride, self.offset = size, stride, offset

  def __reduce__(self):
    return torch._utils._rebuild_tensor_v2, (
      Storage(),
      self.offset,
      self.size,
      self.stride,
      False,
      collections.OrderedDict(),
    )


def tensor_pickle(obj, numel=4, storage=torch.FloatStorage) -> bytes:
  """data.pkl of `obj`, whose Storage() is storage '0' of `numel` elements."""

  class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
      if isinstance(obj, Storage):
        return ("storage", storage, "0", "cpu", numel)
      return None

  buffer = io.BytesIO()
  Pickler(buffer, protocol=2).dump(obj)
  return buffer.getvalue()


class Scripted:
  """A module instance, pickled as TorchScript pickles ``__torch__.M``."""


Scripted.__module__, Scripted.__qualname__ = "__torch__", "M"
MODULE_CODE = b"""class M(Module):
  __parameters__ = ["weight", ]
  __buffers__ = []
  weight : Tensor
"""


def one_tensor_archive(path, size, stride, offset=0, numel=1, other=None):
  """A TorchScript archive (a few hundred bytes) of one module ``M`` whose
  parameter ``weight`` is a float16 tensor record of `size`, `stride`,
  `offset` over storage '0' of `numel` elements; `other`: a non-state
  attribute's tensor record over the same storage."""
  module = Scripted()
  module.__dict__.update(training=True, weight=Tensor(size, stride, offset))
  if other is not None:
    module.__dict__["mask"] = Tensor(*other)
  with mock.patch.dict(sys.modules, {"__torch__": types.ModuleType("t")}):
    sys.modules["__torch__"].M = Scripted
    data = tensor_pickle(module, numel, torch.HalfStorage)
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", data)
    archive.writestr("archive/code/__torch__.py", MODULE_CODE)
    archive.writestr("archive/data/0", np.ones(numel, np.float16).tobytes())
    archive.writestr("archive/version", b"3\n")
  return str(path)


def test_a_tensor_that_fits_its_storage_is_read(tmp_path):
  path = one_tensor_archive(tmp_path / "m.pt", (2, 3), (0, 1), numel=3)
  state = torchscript.read_state_dict(path)
  np.testing.assert_array_equal(state["weight"], np.ones((2, 3), np.float16))


def test_a_zero_stride_gigabyte_tensor_is_refused_before_allocation(tmp_path):
  """1.7 KB once asked for 3.6 GB: (30000, 60000) float16 over 1 element."""
  path = one_tensor_archive(tmp_path / "m.pt", (30000, 60000), (0, 0))
  assert os.path.getsize(path) < 1000
  with pytest.raises(models.CheckpointError) as error:
    torchscript.read_state_dict(path)
  assert str(error.value) == (
    f"{path}: tensor 'weight' (size (30000, 60000), stride (0, 0), storage "
    "offset 0; archive/data/0 has 1 elements) repeats its storage's elements "
    "into 1,800,000,000 elements (3,600,000,000 bytes), more than the "
    "67,108,864 bytes such a view may copy to (torchscript.MAX_EXPANDED_BYTES)"
    "; not allocating it."
  )


@pytest.mark.parametrize(
  "size, stride, offset, problem",
  [
    ((100,), (1,), 0, "reaches element 99, outside its storage"),
    ((2,), (1,), 3, "reaches element 4, outside its storage"),
    ((2,), (2**70,), 0, f"reaches element {2**70:,}, outside its storage"),
    ((2,), (-1,), 0, "is malformed"),
    ((-2,), (1,), 0, "is malformed"),
    ((2,), (1,), -1, "is malformed"),
    ((2, 2), (1,), 0, "is malformed"),
    ((2**40, 2**40), (0, 0), 0, f"into {2**80:,} elements"),
  ],
  ids=[
    "past_end",
    "offset_past_end",
    "huge_stride",
    "negative_stride",
    "negative_size",
    "negative_offset",
    "fewer_strides",
    "overflowing_product",
  ],
)
def test_tensor_records_outside_their_storage_are_refused(
  tmp_path, size, stride, offset, problem
):
  path = one_tensor_archive(tmp_path / "m.pt", size, stride, offset, numel=4)
  with pytest.raises(models.CheckpointError) as error:
    torchscript.read_state_dict(path)
  message = str(error.value)
  assert message.startswith(
    f"{path}: tensor 'weight' (size {size}, stride {stride}, storage offset "
    f"{offset}; archive/data/0 has 4 elements) "
  )
  assert problem in message and "\n" not in message


def test_a_tensor_that_is_not_state_is_never_allocated(tmp_path):
  """CLIP's attn_mask is a module attribute but no parameter or buffer."""
  path = one_tensor_archive(
    tmp_path / "m.pt", (1,), (1,), other=((30000, 60000), (0, 0), 0)
  )
  assert list(torchscript.read_state_dict(path)) == ["weight"]


def test_a_pickled_state_dict_tensor_is_checked_before_it_is_copied(tmp_path):
  """torch.load keeps an expanded tensor a view; its float32 copy is not."""
  path = str(tmp_path / "model.pth")
  huge = torch.zeros(1, dtype=torch.float16).expand(30000, 60000)
  torch.save({"model": {"small": torch.ones(3).expand(2, 3), "w": huge}}, path)
  assert os.path.getsize(path) < 2000
  with pytest.raises(models.CheckpointError) as error:
    readers.read_torch(path)
  assert str(error.value) == (
    f"{path}: tensor 'w' (size (30000, 60000), stride (0, 0), storage "
    "offset 0; its storage has 1 elements) repeats its storage's elements "
    "into 1,800,000,000 elements (3,600,000,000 bytes), more than the "
    "67,108,864 bytes such a view may copy to (torchscript.MAX_EXPANDED_BYTES)"
    "; not allocating it."
  )
  torch.save({"model": {"small": torch.ones(3).expand(2, 3)}}, path)
  np.testing.assert_array_equal(
    readers.read_torch(path)["small"], np.ones((2, 3))
  )


def test_storage_records_shorter_than_declared_are_refused(tmp_path):
  path = one_tensor_archive(tmp_path / "m.pt", (2,), (1,), numel=2)
  with zipfile.ZipFile(path, "a") as archive:
    archive.writestr("archive/data/1", b"")
  data = tensor_pickle(Tensor((2,), (1,)), numel=10**12)
  with pytest.raises(models.CheckpointError, match="fewer than its"):
    torchscript.read_state_dict(with_data_pkl(path, tmp_path / "s.pt", data))


def test_the_payloads_run_under_plain_pickle(tmp_path):
  """Control: the attacks above are live (plain unpickling runs them)."""
  marker = tmp_path / "marker"
  pickle.loads(pickle.dumps(Payload(os.system, f"touch {marker}"), 2))
  assert marker.exists()
