"""Fixtures for the explain tests: HF models with random weights saved with
``save_pretrained`` and loaded back through `rationality_jax.models.load`, so the
JAX and the PyTorch side run the very same weights."""

import numpy as np
import pytest

TINY_VISION = dict(
  image_size=48,
  patch_size=8,
  hidden_size=32,
  intermediate_size=37,
  num_hidden_layers=3,
  num_attention_heads=4,
)
TINY_TEXT = dict(
  vocab_size=99,
  hidden_size=32,
  intermediate_size=37,
  num_hidden_layers=1,
  num_attention_heads=2,
  max_position_embeddings=16,
)
B16_VISION = dict(
  image_size=224,
  patch_size=16,
  hidden_size=768,
  intermediate_size=3072,
  num_hidden_layers=12,
  num_attention_heads=12,
)


def build_clip(directory, vision, projection_dim=16, seed=0):
  """(torch CLIPModel in eval mode with eager attention, our (module, params))."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  from rationality_jax import models

  torch.manual_seed(seed)
  config = transformers.CLIPConfig(
    text_config=dict(TINY_TEXT, bos_token_id=0, eos_token_id=1, pad_token_id=1),
    vision_config=vision,
    projection_dim=projection_dim,
  )
  config._attn_implementation = "eager"
  model = transformers.CLIPModel(config).eval()
  model.save_pretrained(directory)
  module, params = models.load(directory)
  return model, module, params


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
  """(torch model, module, params) of a 3-block, 6x6-patch CLIP."""
  return build_clip(tmp_path_factory.mktemp("tiny_clip"), TINY_VISION)


@pytest.fixture(scope="session")
def b16_clip(tmp_path_factory):
  """(torch model, module, params) with the ViT-B/16 image tower (tiny text tower)."""
  return build_clip(
    tmp_path_factory.mktemp("b16_clip"), B16_VISION, projection_dim=512
  )


@pytest.fixture(scope="session")
def make_batch():
  return _random_batch


def _random_batch(batch, size, classes, embed_dim, seed=0):
  """NCHW float32 images, [C, E] class embeddings, [B] labels, [B, S, S] masks."""
  rng = np.random.default_rng(seed)
  images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
  class_embeddings = rng.standard_normal((classes, embed_dim)).astype(
    np.float32
  )
  labels = rng.integers(0, classes, batch)
  masks = np.zeros((batch, size, size), np.uint8)
  for i in range(batch):
    top, left = rng.integers(0, size // 2, 2)
    masks[i, top : top + size // 2, left : left + size // 2] = 1
  return images, class_embeddings, labels, masks
