"""Flax ports of the CLIP, ALBEF and BLIP encoders (see docs/models.md).

  module, params = models.load(path, image_size=224)
  ids, mask = models.tokenizer("clip")(["a photo of a cat"])
  logits = module.apply({"params": params}, images, ids, mask)  # [B_img, B_txt]

Nothing here imports torch; reading .pt/.pth files imports it on demand.
"""

from rationality_jax.models.checkpoint import load, save
from rationality_jax.models.convert import CheckpointError
from rationality_jax.models.text import BertConfig, CLIPTextConfig
from rationality_jax.models.tokenize import Tokenizer, tokenizer
from rationality_jax.models.vit import (
  ViTConfig,
  VisionTransformer,
  resize_position_embedding,
)
from rationality_jax.models.vlm import VisionLanguageModel, VLMConfig, normalize

__all__ = [
  "BertConfig",
  "CLIPTextConfig",
  "CheckpointError",
  "Tokenizer",
  "VLMConfig",
  "ViTConfig",
  "VisionLanguageModel",
  "VisionTransformer",
  "load",
  "normalize",
  "resize_position_embedding",
  "save",
  "tokenizer",
]
