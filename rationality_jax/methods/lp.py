"""LP: frozen backbone, a linear head trained with cross-entropy.

Head ``{'kernel': [F, C], 'bias': [C]}`` on the feature ``config.lp.feature``:
'embedding' (the projected image embedding, CLIP's LP in the study), 'cls'
(the ViT CLS token, ALBEF/BLIP's), 'auto' (the family's `Family.lp_feature`,
the study's choice).
Initialisation ``config.lp.init``: 'random' (the study: PyTorch ``nn.Linear``'s
uniform(+-1/sqrt(F)) for kernel and bias) or 'zero_shot' (kernel = the unit
class embeddings of the zero-shot head, bias 0; 'embedding' feature only: the
logits are |f| x cosine, the zero-shot ranking).
"""

import jax
import jax.numpy as jnp
import numpy as np

from rationality_jax import models
from rationality_jax.explain import targets
from rationality_jax.methods.base import Method

FEATURES = ("auto", "embedding", "cls")
INITS = ("random", "zero_shot")


def feature(module, config) -> str:
  """The probed feature: ``config.lp.feature``, 'auto' resolved by the family."""
  name = config.lp.feature
  if name == "auto":
    name = models.family(module.config).lp_feature
  if name == "cls" and module.config.vision.width == module.config.embed_dim:
    raise ValueError(
      "lp.feature='cls' needs the ViT width to differ from embed_dim "
      f"(both {module.config.embed_dim}): the classifier tells the "
      "features apart by the kernel's input size."
    )
  return name


def init_head(init):
  module, config = init.module, init.config
  name = feature(module, config)
  num_classes = init.task["caption_ids"].shape[0]
  if config.lp.init == "zero_shot":
    if name != "embedding":
      raise ValueError("lp.init='zero_shot' needs lp.feature='embedding'.")
    kernel = np.asarray(init.zero_shot()["class_embeddings"], np.float32).T
    return {
      "kernel": jnp.asarray(kernel),
      "bias": jnp.zeros((num_classes,), jnp.float32),
    }
  features = (
    module.config.embed_dim
    if name == "embedding"
    else module.config.vision.width
  )
  bound = 1.0 / np.sqrt(features)
  k_kernel, k_bias = jax.random.split(init.rng)
  return {
    "kernel": jax.random.uniform(
      k_kernel, (features, num_classes), jnp.float32, -bound, bound
    ),
    "bias": jax.random.uniform(
      k_bias, (num_classes,), jnp.float32, -bound, bound
    ),
  }


def logits(module, images, head, task):
  del task
  return targets.linear_probe(module, images, head)


METHOD = Method(
  name="lp",
  trainable=lambda config, model_config: r"head/.*",
  init_head=init_head,
  classifier=targets.linear_probe,
  logits=logits,
  options={"feature": "auto", "init": "random"},
  section="lp",  # FT (`ft`) keeps this head and reads the same options
  choices={"feature": FEATURES, "init": INITS},
  study_lr=1e-3,
)
