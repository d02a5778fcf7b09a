"""Strict loading: bad checkpoints fail clearly (missing, extra, misshapen,
non-finite); orbax round trip; lazy torch; identity fingerprints."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save_file
import torch

from rationality_jax import models
from rationality_jax.models import checkpoint
from tests import checkpoint_factories as factories


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
  with pytest.raises(TypeError, match="unexpected keyword argument"):
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
  # At another size the saved positions are resized as the original's are.
  resized_module, resized = models.load(tmp_path / "saved", image_size=64)
  _, converted = models.load(directory, temp=0.05, image_size=64)
  assert resized_module.config.vision.image_size == 64
  np.testing.assert_array_equal(
    resized["vision"]["pos_embedding"], converted["vision"]["pos_embedding"]
  )
  assert resized["vision"]["pos_embedding"].shape == (65, 128)


def test_config_json_round_trip_keeps_types(tiny_clip):
  _, directory = tiny_clip
  module, _ = models.load(directory)
  data = checkpoint.config_to_dict(module.config)
  assert checkpoint.config_from_dict(data) == module.config


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_refused_naming_key_and_file(
  tiny_clip, tmp_path, bad
):
  _, directory = tiny_clip
  key = "text_model.encoder.layers.1.self_attn.k_proj.weight"

  def poison(state):
    state[key] = state[key].copy()
    state[key][3, 1] = bad

  path = copy_hf_dir(directory, tmp_path, poison)
  with pytest.raises(models.CheckpointError) as error:
    models.load(path)
  message = str(error.value)
  assert repr(key) in message and path in message
  assert "1 non-finite value(s)" in message


def test_non_finite_weights_in_pth_and_saved_models_are_refused(tmp_path):
  made = factories.blip_pth(tmp_path / "model_base.pth")
  checkpoint = torch.load(made.path, weights_only=True)
  checkpoint["model"]["temp"] = torch.tensor(float("inf"))
  torch.save(checkpoint, str(tmp_path / "bad.pth"))
  with pytest.raises(models.CheckpointError, match=r"'temp' in .*bad\.pth"):
    models.load(str(tmp_path / "bad.pth"))
  # An infinite momentum copy is ignored, as the whole momentum encoder is.
  checkpoint["model"]["temp"] = torch.tensor(0.05)
  checkpoint["model"]["visual_encoder_m.cls_token"].fill_(float("nan"))
  torch.save(checkpoint, str(tmp_path / "ok.pth"))
  module, params = models.load(str(tmp_path / "ok.pth"))
  params = {**params, "temp": jnp.float32(np.nan)}
  models.save(tmp_path / "saved", module, params)
  with pytest.raises(models.CheckpointError, match=r"\['temp'\] in .*saved"):
    models.load(tmp_path / "saved")


def test_temp_is_refused_where_the_checkpoint_stores_one(tiny_clip):
  _, directory = tiny_clip
  with pytest.raises(models.CheckpointError, match="stores its own"):
    models.load(directory, temp=0.05)


def test_identity_of_files_and_directories(tiny_clip, tmp_path):
  _, directory = tiny_clip
  identity = models.identity(directory)
  assert identity["kind"] == "directory"
  assert identity["path"] == os.path.abspath(directory)
  assert sorted(identity["files"]) == ["config.json", "model.safetensors"]
  weights = identity["files"]["model.safetensors"]
  assert weights["size"] == os.path.getsize(
    os.path.join(directory, "model.safetensors")
  )
  assert json.loads(json.dumps(identity)) == identity
  big = tmp_path / "big.safetensors"
  content = bytearray(np.random.RandomState(0).bytes(3 << 20))
  big.write_bytes(bytes(content))
  first = models.identity(big)
  assert first["kind"] == "file" and first["hashed"] == "first_and_last_mib"
  assert first["size"] == 3 << 20
  content[(3 << 20) // 2] ^= 1  # the middle MiB is not hashed (documented)
  big.write_bytes(bytes(content))
  assert models.identity(big)["sha256"] == first["sha256"]
  content[-1] ^= 1
  big.write_bytes(bytes(content))
  assert models.identity(big)["sha256"] != first["sha256"]
  small = tmp_path / "small.pt"
  small.write_bytes(b"abc")
  assert models.identity(small)["sha256"] == hashlib.sha256(b"abc").hexdigest()
  assert models.identity(small)["hashed"] == "whole"
