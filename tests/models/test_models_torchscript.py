"""TorchScript archives are read without running them (models/torchscript.py):
the same state dict as ``torch.jit.load``, and pickled code is refused."""

import builtins
import collections
import io
import os
import pickle
import subprocess
import sys
import zipfile

import ml_dtypes
import numpy as np
import pytest
import torch

from rationality_jax import models
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


def evil_tensor_pickle(size, stride) -> bytes:
  """data.pkl with one tensor record over storage '0' of 4 floats."""

  class Storage:
    pass

  class Tensor:
    def __reduce__(self):
      return torch._utils._rebuild_tensor_v2, (
        Storage(),
        0,
        size,
        stride,
        False,
        collections.OrderedDict(),
      )

  class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
      if isinstance(obj, Storage):
        return ("storage", torch.FloatStorage, "0", "cpu", 4)
      return None

  buffer = io.BytesIO()
  Pickler(buffer, protocol=2).dump(Tensor())
  return buffer.getvalue()


def test_out_of_bounds_tensor_records_are_refused(valid_archive, tmp_path):
  path = with_data_pkl(
    valid_archive, tmp_path / "oob.pt", evil_tensor_pickle((100,), (1,))
  )
  with pytest.raises(models.CheckpointError, match="reaches element 99"):
    torchscript.read_state_dict(path)
  path = with_data_pkl(
    valid_archive, tmp_path / "neg.pt", evil_tensor_pickle((2,), (-1,))
  )
  with pytest.raises(models.CheckpointError, match="malformed tensor record"):
    torchscript.read_state_dict(path)


def test_the_payloads_run_under_plain_pickle(tmp_path):
  """Control: the attacks above are live (plain unpickling runs them)."""
  marker = tmp_path / "marker"
  pickle.loads(pickle.dumps(Payload(os.system, f"touch {marker}"), 2))
  assert marker.exists()
