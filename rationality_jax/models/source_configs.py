"""The configs a checkpoint implies: from its tensors' shapes or HF fields.

OpenAI's, ALBEF's and BLIP's files carry no config: `timm_vit_config` and
`bert_config` read the towers' sizes from the shapes (`count_layers`,
`grid_side` help the families' own readers). Hugging Face directories carry
``config.json``: `hf_vit_config` reads its ``vision_config`` fields
(`HF_VISION_FIELDS`; the text towers' fields are `HF_TEXT_FIELDS`).
`itc_config` is ALBEF's and BLIP's image-text contrastive model with its
learnable temperature clipped to `TEMP_RANGE`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import re

import numpy as np

from rationality_jax.models.convert import CheckpointError
from rationality_jax.models.text import BertConfig
from rationality_jax.models.vit import ViTConfig
from rationality_jax.models.vlm import VLMConfig

# BLIP and ALBEF clamp their learnable temperature to this range (and it is
# the default of FLCP's ``config.flcp.temp_range``).
TEMP_RANGE = (0.001, 0.5)


def count_layers(keys: Iterable[str], pattern: str) -> int:
  """1 + the largest integer group 1 of ``pattern`` over ``keys`` (0 if none)."""
  indices = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
  return max(indices) + 1 if indices else 0


def grid_side(num_positions: int) -> int:
  """Patch grid side of a position table with a CLS row (197 -> 14)."""
  return round((num_positions - 1) ** 0.5)


def timm_vit_config(
  state: Mapping[str, np.ndarray], prefix: str = "visual_encoder."
) -> ViTConfig:
  """ViTConfig of a timm ViT state dict (ALBEF, BLIP): sizes from the shapes,
  heads = width // 64 (ViT-B, ViT-L), image size from the position table."""
  width = state[prefix + "cls_token"].shape[-1]
  patch = state[prefix + "patch_embed.proj.weight"].shape[-1]
  return ViTConfig(
    image_size=patch * grid_side(state[prefix + "pos_embed"].shape[-2]),
    patch_size=patch,
    width=width,
    depth=count_layers(state, re.escape(prefix) + r"blocks\.(\d+)\."),
    num_heads=width // 64,
    mlp_dim=state[prefix + "blocks.0.mlp.fc1.weight"].shape[0],
    activation="gelu",
    layer_norm_eps=1e-6,
    patch_bias=True,
    pre_norm=False,
  )


def bert_config(
  state: Mapping[str, np.ndarray], prefix: str, depth: int
) -> BertConfig:
  """BertConfig of the first ``depth`` layers of a BERT state dict at ``prefix``
  (heads = width // 64, BERT-base); token types if the embeddings have them."""
  vocab, width = state[prefix + "embeddings.word_embeddings.weight"].shape
  token_types = state.get(prefix + "embeddings.token_type_embeddings.weight")
  return BertConfig(
    vocab_size=vocab,
    width=width,
    depth=depth,
    num_heads=width // 64,
    mlp_dim=state[prefix + "encoder.layer.0.intermediate.dense.weight"].shape[
      0
    ],
    max_positions=state[prefix + "embeddings.position_embeddings.weight"].shape[
      0
    ],
    type_vocab_size=0 if token_types is None else token_types.shape[0],
  )


# config.json fields that `hf_vit_config` and the HF text configs read.
HF_VISION_FIELDS = tuple(
  "vision_config." + f
  for f in (
    "image_size",
    "patch_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
  )
)
HF_TEXT_FIELDS = tuple(
  "text_config." + f
  for f in (
    "vocab_size",
    "max_position_embeddings",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
  )
)


def hf_activation(name: str) -> str:
  if name not in ("quick_gelu", "gelu"):
    raise CheckpointError(
      f"activation {name!r} is not supported; expected "
      "'quick_gelu' (CLIP) or 'gelu' (exact erf GELU)."
    )
  return name


def hf_vit_config(v, patch_bias: bool, pre_norm: bool) -> ViTConfig:
  """ViTConfig of an HF ``vision_config`` (CLIP: no patch bias, ``pre_layrnorm``;
  BLIP: patch bias, none)."""
  return ViTConfig(
    image_size=v.image_size,
    patch_size=v.patch_size,
    width=v.hidden_size,
    depth=v.num_hidden_layers,
    num_heads=v.num_attention_heads,
    mlp_dim=v.intermediate_size,
    activation=hf_activation(v.hidden_act),
    layer_norm_eps=v.layer_norm_eps,
    patch_bias=patch_bias,
    pre_norm=pre_norm,
  )


def itc_config(family: str, vision, text, embed_dim: int) -> VLMConfig:
  """ALBEF/BLIP's image-text contrastive model: projections with biases and a
  learnable temperature, clipped to `TEMP_RANGE` (BLIP's clamp)."""
  return VLMConfig(
    family=family,
    vision=vision,
    text=text,
    embed_dim=embed_dim,
    projection_bias=True,
    logit="temp",
    temp_range=TEMP_RANGE,
  )
