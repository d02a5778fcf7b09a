"""Flax ports of the CLIP, ALBEF and BLIP encoders (see docs/models.md).

  module, params = models.load(path, image_size=224)
  ids, mask = models.tokenizer("clip")(["a photo of a cat"])
  logits = module.apply({"params": params}, images, ids, mask)  # [B_img, B_txt]

Nothing here imports torch; reading .pt/.pth files imports it on demand.
"""

from rationality_jax.models.checkpoint import load
from rationality_jax.models.checkpoint import save
from rationality_jax.models.convert import CheckpointError
from rationality_jax.models.text import BertConfig
from rationality_jax.models.text import CLIPTextConfig
from rationality_jax.models.tokenize import Tokenizer
from rationality_jax.models.tokenize import tokenizer
from rationality_jax.models.vit import VisionTransformer
from rationality_jax.models.vit import ViTConfig
from rationality_jax.models.vit import resize_position_embedding
from rationality_jax.models.vlm import VisionLanguageModel
from rationality_jax.models.vlm import VLMConfig
from rationality_jax.models.vlm import normalize

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
