"""Flax ports of the CLIP, ALBEF and BLIP encoders (see docs/models.md).

  module, params = models.load("ViT-B-16.pt", image_size=224)  # or a hub id,
                                                 # a directory, random:<arch>
  family = models.family(module.config)          # tokenizer, defaults
  ids, mask = family.tokenizer(module.config)(["a photo of a cat"])
  logits = module.apply({"params": params}, images, ids, mask)  # [B_img, B_txt]

Nothing here imports torch or transformers; reading non-TorchScript
.pt/.pth/.bin files imports torch on demand, tokenizers transformers.
"""

from rationality_jax.models import families
from rationality_jax.models.checkpoint import identity
from rationality_jax.models.checkpoint import load
from rationality_jax.models.checkpoint import save
from rationality_jax.models.convert import CheckpointError
from rationality_jax.models.families import Family
from rationality_jax.models.families import get as family
from rationality_jax.models.families import tokenizer
from rationality_jax.models.positions import resize_position_embedding
from rationality_jax.models.text import BertConfig
from rationality_jax.models.text import CLIPTextConfig
from rationality_jax.models.tokenize import Tokenizer
from rationality_jax.models.vit import VisionTransformer
from rationality_jax.models.vit import ViTConfig
from rationality_jax.models.vlm import VisionLanguageModel
from rationality_jax.models.vlm import VLMConfig
from rationality_jax.models.vlm import normalize
from rationality_jax.models.vlm import with_precision

__all__ = [
  "BertConfig",
  "CLIPTextConfig",
  "CheckpointError",
  "Family",
  "Tokenizer",
  "VLMConfig",
  "ViTConfig",
  "VisionLanguageModel",
  "VisionTransformer",
  "families",
  "family",
  "identity",
  "load",
  "normalize",
  "resize_position_embedding",
  "save",
  "tokenizer",
  "with_precision",
]
