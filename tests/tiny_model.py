"""A random tiny CLIP (32 px, patch 8, 2 blocks) with a random zero-shot head
and its Chefer explainer, for tests of the evaluation loop that need a model
but not a checkpoint.

    module, params, head, explain_fn = tiny_model.zero_shot_explainer()
"""

import jax
import jax.numpy as jnp

from rationality_jax import explain
from rationality_jax import models


def zero_shot_explainer():
  """(module, params, head, explain_fn), fixed seeds; `explain_fn` unjitted
  (the evaluation loop jits it)."""
  config = models.VLMConfig(
    family="clip",
    embed_dim=16,
    projection_bias=False,
    vision=models.ViTConfig(
      image_size=32, patch_size=8, width=32, depth=2, num_heads=2, mlp_dim=64
    ),
    text=models.CLIPTextConfig(
      vocab_size=64,
      context_length=8,
      width=16,
      depth=1,
      num_heads=2,
      mlp_dim=32,
    ),
  )
  module = models.VisionLanguageModel(config)
  params = module.init(
    jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.ones((1, 8), jnp.int32)
  )["params"]
  head = {"class_embeddings": jax.random.normal(jax.random.key(1), (4, 16))}
  explain_fn = explain.make_explainer(
    module, explain.targets.zero_shot, explain.Chefer(start_layer=0), jit=False
  )
  return module, params, head, explain_fn
