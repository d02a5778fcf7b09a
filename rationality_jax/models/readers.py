"""Reading source state dicts and HF configs from disk, as numpy arrays.

* TorchScript archives (OpenAI's CLIP ``.pt``): `torchscript.read_state_dict`,
  which runs nothing from the archive and needs no torch.
* Other ``.pt``/``.pth``/``.bin``: ``torch.load(weights_only=True)`` (torch is
  imported only then); ``{'model': sd}`` and ``{'state_dict': sd}`` unwrapped;
  each tensor checked to fit its storage before it is copied
  (`torchscript.check_tensor`).
* ``.safetensors`` (one file, or the shards of a ``*.index.json``).
* HF ``config.json``: the fields a layout names, without transformers.
"""

from __future__ import annotations

from collections.abc import Mapping
import json
import os
import types
from typing import Any

import numpy as np

from rationality_jax.models import torchscript
from rationality_jax.models.convert import CheckpointError

TORCH_EXTRA_HINT = (
  "reading PyTorch checkpoints (.pt/.pth/.bin) needs torch: "
  "pip install 'rationality-jax[torch]'"
)
# The weights of a HF directory, in the order they are looked for.
HF_WEIGHTS = (
  "model.safetensors",
  "model.safetensors.index.json",
  "pytorch_model.bin",
)


def _import_torch():
  try:
    import torch
  except ImportError as error:
    raise ImportError(TORCH_EXTRA_HINT) from error
  return torch


def _tensors_to_numpy(
  state: Mapping[str, Any], path: str
) -> dict[str, np.ndarray]:
  torch = _import_torch()
  arrays = {}
  for key, value in state.items():
    if not isinstance(value, torch.Tensor):
      raise CheckpointError(
        f"{path}: entry {key!r} is a {type(value).__name__}, "
        "not a tensor; is this a state dict?"
      )
    if value.layout != torch.strided:
      raise CheckpointError(
        f"{path}: tensor {key!r} is {value.layout}, not a dense tensor."
      )
    # torch.load makes a tensor a view of its storage without copying; its
    # conversion below copies it: check it fits first (zero strides).
    torchscript.check_tensor(
      path,
      key,
      tuple(value.shape),
      tuple(value.stride()),
      value.storage_offset(),
      value.untyped_storage().nbytes() // value.element_size(),
      value.element_size(),
    )
    value = value.detach().cpu()
    if value.is_floating_point():
      value = value.to(torch.float32)
    arrays[key] = value.numpy()
  return arrays


def read_torch(path: str) -> dict[str, np.ndarray]:
  """A .pt/.pth/.bin file: TorchScript archive, state dict, or {'model': sd}."""
  if torchscript.is_torchscript(path):
    return torchscript.read_state_dict(path)
  torch = _import_torch()
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except (
    Exception
  ) as error:  # truncated zip, pickle error, ...: all say the same.
    raise CheckpointError(
      f"cannot read PyTorch checkpoint {path} "
      f"({type(error).__name__}: {error})."
    ) from error
  if (
    isinstance(obj, Mapping)
    and "model" in obj
    and isinstance(obj["model"], Mapping)
  ):
    obj = obj["model"]
  elif isinstance(obj, Mapping) and "state_dict" in obj:
    obj = obj["state_dict"]
  if not isinstance(obj, Mapping):
    raise CheckpointError(
      f"{path} holds a {type(obj).__name__}, not a state dict."
    )
  return _tensors_to_numpy(obj, path)


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  from safetensors import SafetensorError
  from safetensors.numpy import load_file

  try:
    return load_file(path)
  except (SafetensorError, OSError) as error:
    raise CheckpointError(
      f"cannot read safetensors file {path}: {error}"
    ) from error


def read_file(path: str) -> dict[str, np.ndarray]:
  """A single checkpoint file (``.safetensors`` or a PyTorch file)."""
  if path.endswith(".safetensors"):
    return read_safetensors(path)
  return read_torch(path)


def hf_weights_file(directory: str) -> str:
  """The weights file of a HF directory (see `HF_WEIGHTS`)."""
  for name in HF_WEIGHTS:
    path = os.path.join(directory, name)
    if os.path.exists(path):
      return path
  raise CheckpointError(
    f"{directory} has a config.json but none of {', '.join(HF_WEIGHTS)}."
  )


def read_hf_weights(directory: str) -> dict[str, np.ndarray]:
  path = hf_weights_file(directory)
  if not path.endswith(".index.json"):
    return read_file(path)
  with open(path) as f:
    shards = sorted(set(json.load(f)["weight_map"].values()))
  state = {}
  for shard in shards:
    state.update(read_safetensors(os.path.join(directory, shard)))
  return state


def read_hf_config(directory: str, fields: tuple[str, ...]):
  """The ``config.json`` fields ``('vision_config.image_size', ...)`` as
  attribute namespaces, straight from the JSON.

  ``save_pretrained`` writes every field of the sub-configs, so this avoids
  importing transformers (and with it torch: seconds). If a field is absent (a
  hand-written or older config relying on defaults), the transformers config
  class fills the defaults.
  """
  with open(os.path.join(directory, "config.json")) as f:
    raw = json.load(f)
  tree: dict = {}
  for field in fields:
    *parents, leaf = field.split(".")
    source, target = raw, tree
    for parent in parents:
      source = source.get(parent, {})
      target = target.setdefault(parent, {})
    if leaf not in source:
      import transformers

      return transformers.AutoConfig.from_pretrained(directory)
    target[leaf] = source[leaf]
  return json.loads(
    json.dumps(tree), object_hook=lambda d: types.SimpleNamespace(**d)
  )
