"""Strict loading: bad checkpoints fail clearly; orbax round trip; lazy torch."""

import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save_file
import torch

from rationality_jax import models
from rationality_jax.models import checkpoint


def copy_hf_dir(directory, tmp_path, edit):
  """A copy of an HF directory whose safetensors state went through ``edit``."""
  target = tmp_path / "edited"
  shutil.copytree(directory, target)
  state = load_file(str(target / "model.safetensors"))
  edit(state)
  save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
  return str(target)


def test_missing_key_is_named(tiny_clip, tmp_path):
  _, directory = tiny_clip
  key = "vision_model.encoder.layers.1.mlp.fc2.bias"
  path = copy_hf_dir(directory, tmp_path, lambda state: state.pop(key))
  with pytest.raises(models.CheckpointError, match=f"missing key '{key}'"):
    models.load(path)


def test_extra_key_is_named_with_its_shape(tiny_clip, tmp_path):
  _, directory = tiny_clip
  path = copy_hf_dir(
    directory,
    tmp_path,
    lambda state: state.update(
      {"vision_model.extra_head.weight": np.zeros((3, 5), np.float32)}
    ),
  )
  with pytest.raises(
    models.CheckpointError,
    match=r"1 unexpected key.*'vision_model.extra_head.weight' \(3, 5\)",
  ):
    models.load(path)


def test_wrong_shape_names_key_and_both_shapes(tiny_clip, tmp_path):
  _, directory = tiny_clip
  key = (
    "text_model.encoder.layers.0.mlp.fc1.weight"  # [37, 32] in the tiny model
  )
  path = copy_hf_dir(
    directory,
    tmp_path,
    lambda state: state.update({key: np.zeros((36, 32), np.float32)}),
  )
  with pytest.raises(models.CheckpointError) as error:
    models.load(path)
  message = str(error.value)
  assert key in message and "(36, 32)" in message and "(32, 37)" in message
  assert "text/block_0/mlp/fc1/kernel" in message


def test_truncated_files_are_reported(tiny_clip, tmp_path):
  model, directory = tiny_clip
  truncated = tmp_path / "truncated"
  shutil.copytree(directory, truncated)
  weights = truncated / "model.safetensors"
  weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
  with pytest.raises(
    models.CheckpointError, match="cannot read safetensors file"
  ):
    models.load(str(truncated))
  pth = tmp_path / "model.pth"
  torch.save({"model": model.state_dict()}, str(pth))
  pth.write_bytes(pth.read_bytes()[:1000])
  with pytest.raises(
    models.CheckpointError, match="cannot read PyTorch checkpoint"
  ):
    models.load(str(pth))


def test_unknown_formats_are_reported(tmp_path):
  text_file = tmp_path / "weights.npz"
  text_file.write_text("not a checkpoint")
  with pytest.raises(models.CheckpointError, match="unknown checkpoint format"):
    models.load(str(text_file))
  with pytest.raises(models.CheckpointError, match="unknown checkpoint format"):
    models.load(str(tmp_path))  # a directory without config.json
  unrelated = tmp_path / "resnet.pth"
  torch.save({"conv1.weight": torch.zeros(2, 3)}, str(unrelated))
  with pytest.raises(models.CheckpointError, match="unknown checkpoint layout"):
    models.load(str(unrelated))
  with pytest.raises(TypeError, match="unknown override"):
    models.load(str(unrelated), image_sise=224)


def test_pytorch_files_without_torch_say_which_extra(tmp_path, monkeypatch):
  path = tmp_path / "model.pth"
  path.write_bytes(b"anything")
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
  with pytest.raises(
    ImportError, match=r"pip install 'rationality-jax\[torch\]'"
  ):
    models.load(str(path))


def test_importing_models_does_not_import_torch():
  code = (
    "import sys, rationality_jax.models; "
    "assert 'torch' not in sys.modules, 'torch imported'; "
    "assert 'transformers' not in sys.modules, 'transformers imported'"
  )
  subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


def test_orbax_round_trip(tiny_blip, tmp_path, ref):
  _, directory = tiny_blip
  module, params = models.load(directory, temp=0.05)
  models.save(tmp_path / "saved", module, params)
  restored_module, restored = models.load(tmp_path / "saved")
  assert restored_module.config == module.config
  flat, restored_flat = (
    jax.tree.leaves_with_path(params),
    jax.tree.leaves_with_path(restored),
  )
  assert [p for p, _ in flat] == [p for p, _ in restored_flat]
  for (path, a), (_, b) in zip(flat, restored_flat):
    np.testing.assert_array_equal(
      np.asarray(a), np.asarray(b), err_msg=str(path)
    )
  _, images = ref.random_images(
    np.random.RandomState(0), 1, module.config.vision.image_size
  )
  ids = np.array([[3, 5, 98]])
  np.testing.assert_array_equal(
    module.apply({"params": params}, images, ids),
    restored_module.apply({"params": restored}, images, ids),
  )
  with pytest.raises(models.CheckpointError, match="resizing a saved model"):
    models.load(tmp_path / "saved", image_size=64)


def test_config_json_round_trip_keeps_types(tiny_clip):
  _, directory = tiny_clip
  module, _ = models.load(directory)
  data = checkpoint.config_to_dict(module.config)
  assert checkpoint.config_from_dict(data) == module.config
