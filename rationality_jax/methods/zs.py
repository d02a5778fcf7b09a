"""ZS: the zero-shot head of class-prompt text embeddings; nothing trains.

Head ``{'class_embeddings': [C, E]}`` from `heads.zero_shot_head` (template
``config.head.templates``: 'study' = "a photo of a {}", 'clip80' = CLIP's
ensemble), cached per (model, dataset, templates). Prediction: argmax of the
model's multiplier x cosine (CLIP 100 x, ALBEF/BLIP 1/temp).
"""

from rationality_jax.explain import targets
from rationality_jax.methods.base import Method


def init_head(init):
  return init.zero_shot()


def logits(module, images, head, task):
  del task
  return targets.zero_shot(module, images, head)


METHOD = Method(
  name="zs",
  trainable=lambda config, model_config: "",
  init_head=init_head,
  classifier=targets.zero_shot,
  logits=logits,
)
