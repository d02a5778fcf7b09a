"""CLIP-Adapter (Gao et al. 2021): a residual bottleneck MLP on the image embedding.

  a = relu(relu(x @ down) @ up);  f = ratio * a + (1 - ratio) * x
  logits = multiplier * cos(f, class_embeddings)

x is the projected image embedding [B, E]; ``down: [E, E // reduction]`` and
``up: [E // reduction, E]`` (no biases, as the original); E comes from the
model (``embed_dim``), ``ratio`` (0.2) and ``reduction`` (4) from
``config.adapter``. The class embeddings are the frozen zero-shot head; only
``head/adapter`` trains. Weights start like PyTorch's ``nn.Linear``:
uniform(+-1/sqrt(fan_in)).
"""

import jax
import jax.numpy as jnp

from rationality_jax.methods.base import Method
from rationality_jax.models.vlm import normalize


def init_head(init):
  embed_dim = init.module.config.embed_dim
  hidden = embed_dim // init.config.adapter.reduction
  if hidden < 1:
    raise ValueError(
      f"adapter.reduction={init.config.adapter.reduction} leaves no hidden "
      f"units for embed_dim {embed_dim}."
    )
  k_down, k_up = jax.random.split(init.rng)

  def linear(key, fan_in, fan_out):
    bound = 1.0 / jnp.sqrt(fan_in)
    return jax.random.uniform(
      key, (fan_in, fan_out), jnp.float32, -bound, bound
    )

  return {
    "adapter": {
      "down": linear(k_down, embed_dim, hidden),
      "up": linear(k_up, hidden, embed_dim),
    },
    "ratio": jnp.float32(init.config.adapter.ratio),
    "class_embeddings": jnp.asarray(
      init.zero_shot()["class_embeddings"], jnp.float32
    ),
  }


def classifier(module, images, head):
  """The explain contract: [B, S, S, 3] images, adapter head -> [B, C] logits."""
  x = module.encode_image(images)
  adapted = jax.nn.relu(
    jax.nn.relu(x @ head["adapter"]["down"]) @ head["adapter"]["up"]
  )
  features = head["ratio"] * adapted + (1.0 - head["ratio"]) * x
  class_embeds = normalize(head["class_embeddings"])
  return module.logit_multiplier() * normalize(features) @ class_embeds.T


def logits(module, images, head, task):
  del task
  return classifier(module, images, head)


METHOD = Method(
  name="adapter",
  trainable=lambda config, model_config: r"head/adapter/.*",
  init_head=init_head,
  classifier=classifier,
  logits=logits,
  options={"ratio": 0.2, "reduction": 4},
  study_lr=1e-3,
)
