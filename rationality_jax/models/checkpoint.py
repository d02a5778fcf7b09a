"""Reading checkpoints from disk, and saving converted params with orbax.

`load(path, **overrides)` detects the format from what is at ``path``:

* a directory written by `save` (``rationality_jax_model.json`` + orbax params);
* a Hugging Face directory: ``config.json`` + ``model.safetensors`` (or a
  sharded ``model.safetensors.index.json``, or ``pytorch_model.bin``) of
  ``CLIPModel``, ``BlipForImageTextRetrieval`` or ``BlipModel``;
* an OpenAI CLIP ``.pt`` (TorchScript archive or plain state dict);
* an ALBEF or original BLIP ``.pth`` (weights under ``'model'``);
* a bare ``.safetensors`` state dict in one of the layouts above.

``.pt``/``.pth``/``.bin`` need PyTorch, imported only then.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import json
import os
import types
from typing import Any
import zipfile

import jax.numpy as jnp
import numpy as np

from rationality_jax.models import convert
from rationality_jax.models.convert import CheckpointError
from rationality_jax.models.text import BertConfig
from rationality_jax.models.text import CLIPTextConfig
from rationality_jax.models.vit import ViTConfig
from rationality_jax.models.vlm import VisionLanguageModel
from rationality_jax.models.vlm import VLMConfig

OWN_CONFIG = "rationality_jax_model.json"
OVERRIDES = ("image_size", "dtype", "temp")
TORCH_EXTRA_HINT = (
  "reading PyTorch checkpoints (.pt/.pth/.bin) needs torch: "
  "pip install 'rationality-jax[torch]'"
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
    value = value.detach().cpu()
    if value.is_floating_point():
      value = value.to(torch.float32)
    arrays[key] = value.numpy()
  return arrays


def _read_torch(path: str) -> dict[str, np.ndarray]:
  """A .pt/.pth/.bin file: TorchScript archive, state dict, or {'model': sd}."""
  torch = _import_torch()
  if zipfile.is_zipfile(path) and any(
    name.split("/", 1)[-1].startswith("code/")
    for name in zipfile.ZipFile(path).namelist()
  ):
    try:
      return _tensors_to_numpy(
        torch.jit.load(path, map_location="cpu").state_dict(), path
      )
    except RuntimeError as error:
      raise CheckpointError(
        f"cannot read TorchScript archive {path}: {error}"
      ) from error
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


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  from safetensors import SafetensorError
  from safetensors.numpy import load_file

  try:
    return load_file(path)
  except (SafetensorError, OSError) as error:
    raise CheckpointError(
      f"cannot read safetensors file {path}: {error}"
    ) from error


def _read_hf_weights(directory: str) -> dict[str, np.ndarray]:
  for name in (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
  ):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
      continue
    if name.endswith(".index.json"):
      with open(path) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
      state = {}
      for shard in shards:
        state.update(_read_safetensors(os.path.join(directory, shard)))
      return state
    return (
      _read_safetensors(path)
      if name.endswith(".safetensors")
      else _read_torch(path)
    )
  raise CheckpointError(
    f"{directory} has a config.json but no model.safetensors, "
    "model.safetensors.index.json or pytorch_model.bin."
  )


# config.json fields `convert.hf_config` reads, per sub-config and layout.
_HF_VISION_FIELDS = (
  "image_size",
  "patch_size",
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "intermediate_size",
  "hidden_act",
  "layer_norm_eps",
)
_HF_TEXT_FIELDS = (
  "vocab_size",
  "max_position_embeddings",
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "intermediate_size",
  "hidden_act",
  "layer_norm_eps",
)


def _read_hf_config(directory: str, layout: str):
  """The HF config as attribute namespaces, straight from config.json.

  ``save_pretrained`` writes every field of the vision/text sub-configs, so
  this avoids importing transformers (and with it torch: seconds). If a field
  is absent (a hand-written or older config relying on defaults), the
  transformers config class fills the defaults.
  """
  with open(os.path.join(directory, "config.json")) as f:
    raw = json.load(f)
  top = (
    ("image_text_hidden_size",)
    if layout == "hf_blip_retrieval"
    else ("projection_dim",)
  )
  text_fields = _HF_TEXT_FIELDS + (
    ("eos_token_id",) if layout == "hf_clip" else ()
  )
  vision, text = raw.get("vision_config", {}), raw.get("text_config", {})
  if (
    all(k in raw for k in top)
    and all(k in vision for k in _HF_VISION_FIELDS)
    and all(k in text for k in text_fields)
  ):
    return types.SimpleNamespace(
      **{k: raw[k] for k in top},
      vision_config=types.SimpleNamespace(
        **{k: vision[k] for k in _HF_VISION_FIELDS}
      ),
      text_config=types.SimpleNamespace(**{k: text[k] for k in text_fields}),
    )
  import transformers

  return transformers.AutoConfig.from_pretrained(directory)


def _with_image_size(config: VLMConfig, image_size: int | None) -> VLMConfig:
  if image_size is None:
    return config
  return dataclasses.replace(
    config, vision=dataclasses.replace(config.vision, image_size=image_size)
  )


def load(
  path: str | os.PathLike, **overrides
) -> tuple[VisionLanguageModel, dict]:
  """Load a CLIP / ALBEF / BLIP checkpoint as a Flax module and its params.

  Args:
    path: see the module docstring for the formats.
    **overrides:
      image_size: evaluate at this size; the position embeddings are resized
        with PyTorch's bicubic (as ALBEF/BLIP's ``interpolate_pos_embed``).
      dtype: compute dtype of the module (default float32; params stay float32).
      temp: temperature of an HF ``BlipForImageTextRetrieval`` (not stored
        there; default `convert.BLIP_TEMP_INIT` = 0.07).

  Returns:
    (module, params): call ``module.apply({'params': params}, images, ids)``.

  Raises:
    CheckpointError: unknown format, unreadable file, or a strict-conversion
      failure (the message names the key and both shapes).
    ImportError: a PyTorch file without torch installed.
  """
  unknown = sorted(set(overrides) - set(OVERRIDES))
  if unknown:
    raise TypeError(
      f"unknown override(s) {unknown}; allowed: {list(OVERRIDES)}."
    )
  path = os.fspath(path)
  dtype = overrides.get("dtype", jnp.float32)
  image_size = overrides.get("image_size")
  if os.path.isdir(path) and os.path.exists(os.path.join(path, OWN_CONFIG)):
    return _restore(path, dtype, image_size)
  if os.path.isdir(path) and os.path.exists(os.path.join(path, "config.json")):
    state = _read_hf_weights(path)
    layout = convert.detect_layout(state)
    config = convert.hf_config(_read_hf_config(path, layout), layout)
  elif os.path.isfile(path) and path.endswith(
    (".pt", ".pth", ".bin", ".safetensors")
  ):
    state = (
      _read_safetensors(path)
      if path.endswith(".safetensors")
      else _read_torch(path)
    )
    layout = convert.detect_layout(state)
    if layout.startswith("hf_"):
      raise CheckpointError(
        f"{path} is in a Hugging Face layout ({layout}); load the "
        "directory with its config.json instead."
      )
    config = (
      convert.openai_clip_config(state)
      if layout == "openai_clip"
      else convert.albef_or_blip_config(state, layout)
    )
  else:
    raise CheckpointError(
      f"unknown checkpoint format at {path!r}: expected a directory with "
      f"config.json (Hugging Face) or {OWN_CONFIG} (saved by rationality_jax), "
      "or a .pt/.pth/.bin/.safetensors file."
    )
  config = _with_image_size(config, image_size)
  params = convert.convert_state_dict(
    state, layout, config, temp=overrides.get("temp")
  )
  return VisionLanguageModel(config, dtype=dtype), params


def config_to_dict(config: VLMConfig) -> dict:
  """JSON-able dict of a VLMConfig (inverse: `config_from_dict`)."""
  out = dataclasses.asdict(config)
  out["text_kind"] = (
    "clip" if isinstance(config.text, CLIPTextConfig) else "bert"
  )
  return out


def config_from_dict(data: Mapping) -> VLMConfig:
  data = dict(data)
  text_type = CLIPTextConfig if data.pop("text_kind") == "clip" else BertConfig
  data["vision"] = ViTConfig(**data["vision"])
  data["text"] = text_type(**data["text"])
  if data.get("temp_range") is not None:
    data["temp_range"] = tuple(data["temp_range"])
  return VLMConfig(**data)


def save(
  directory: str | os.PathLike, module: VisionLanguageModel, params: dict
) -> None:
  """Write ``params`` with orbax and the module config as JSON into ``directory``.

  ``load(directory)`` gives them back. The directory must not exist yet.
  """
  import orbax.checkpoint as ocp

  directory = os.path.abspath(os.fspath(directory))
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(directory, "params"), params)
  with open(os.path.join(directory, OWN_CONFIG), "w") as f:
    json.dump(config_to_dict(module.config), f, indent=1)


def _restore(directory: str, dtype, image_size: int | None):
  import orbax.checkpoint as ocp

  directory = os.path.abspath(directory)
  with open(os.path.join(directory, OWN_CONFIG)) as f:
    config = config_from_dict(json.load(f))
  if image_size is not None and image_size != config.vision.image_size:
    raise CheckpointError(
      f"{directory} was saved at image_size "
      f"{config.vision.image_size}; resizing a saved model is "
      "not supported, convert the original checkpoint again."
    )
  abstract = convert.expected_params(config)
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore(os.path.join(directory, "params"), abstract)
  return VisionLanguageModel(config, dtype=dtype), params
