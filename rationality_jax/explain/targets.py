"""What is explained: a classifier on top of the image tower, and a score of its output.

Two kinds of small callables, in the spirit of pytorch-grad-cam's
``model_targets``:

* a **classifier** ``classifier(module, images, head) -> logits [B, C]`` is
  run inside ``module.apply`` (so ``module`` is bound and its sown/perturbed
  intermediates are visible). ``head`` is any pytree of arrays that is not part
  of the model's params: the class text embeddings of a zero-shot head, the
  weights of a linear probe or an adapter. `zero_shot` and `linear_probe` cover
  the study's heads; anything with the same signature works (adapters, prompt
  tuning heads).
* a **score** ``score(logits [B, C], classes [B] int) -> [B]`` is the scalar per
  sample whose gradient is explained: `class_logit` (the study's), or
  `class_log_probability`; `class_probability` is the deletion and insertion
  curves' (`explain.faithfulness`). The explained class is the ground-truth label
  (``target='label'``, the study's) or the predicted class
  (``target='predicted'``), see `explained_classes`.

Samples are independent (no cross-sample op anywhere in the towers), so the
gradient of the *sum* of the per-sample scores gives every sample's own
gradient in one backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp

from rationality_jax.models.vlm import normalize

Classifier = Callable[[Any, jax.Array, Any], jax.Array]
Score = Callable[[jax.Array, jax.Array], jax.Array]
Target = Literal["label", "predicted"]

TARGETS = ("label", "predicted")


def zero_shot(module, images: jax.Array, head: dict) -> jax.Array:
  """Zero-shot / FLCP head: image-text logits against precomputed class prompts.

  ``logits[b, c] = multiplier * cos(encode_image(images)[b], class_embeddings[c])``
  with the model's own multiplier (CLIP: exp(logit_scale); ALBEF/BLIP: 1/temp).

  Args:
    module: a bound `VisionLanguageModel`.
    images: [B, S, S, 3] normalized images.
    head: ``{'class_embeddings': [C, E]}`` projected text embeddings of the
      class prompts (e.g. "a photo of a {class}"), normalized or not.

  Returns:
    [B, C] float32 logits.
  """
  image_embeds = normalize(module.encode_image(images))
  class_embeds = normalize(jnp.asarray(head["class_embeddings"], jnp.float32))
  return module.logit_multiplier() * image_embeds @ class_embeds.T


def linear_probe(module, images: jax.Array, head: dict) -> jax.Array:
  """Linear head (LP, FT) on the image features.

  Args:
    module: a bound `VisionLanguageModel`.
    images: [B, S, S, 3] normalized images.
    head: ``{'kernel': [F, C], 'bias': [C]}``. The feature is chosen by the
      kernel's input size: F == embed_dim -> the projected image embedding
      (CLIP's LP), F == the ViT width -> the un-projected CLS token
      (ALBEF/BLIP's LP). When both sizes are equal the projected embedding is
      used.

  Returns:
    [B, C] float32 logits.
  """
  in_features = head["kernel"].shape[0]
  project = in_features == module.config.embed_dim
  if not project and in_features != module.config.vision.width:
    raise ValueError(
      f"linear head kernel {head['kernel'].shape} fits neither the projected "
      f"embedding ({module.config.embed_dim}) nor the CLS token "
      f"({module.config.vision.width})."
    )
  features = module.encode_image(images, project=project)
  return features @ head["kernel"] + head["bias"]


def tower_linear_probe(module, images: jax.Array, head: dict) -> jax.Array:
  """Linear head on the CLS output of a bare `VisionTransformer` (no VLM around it).

  head: ``{'kernel': [D, C], 'bias': [C]}``. Returns [B, C] float32.
  """
  cls = module(images)[:, 0].astype(jnp.float32)
  return cls @ head["kernel"] + head["bias"]


def class_logit(logits: jax.Array, classes: jax.Array) -> jax.Array:
  """The logit of each sample's explained class: [B, C], [B] -> [B] (the study's score)."""
  return jnp.take_along_axis(
    logits, classes[:, None].astype(jnp.int32), axis=-1
  )[:, 0]


def class_log_probability(logits: jax.Array, classes: jax.Array) -> jax.Array:
  """log softmax(logits)[class]: [B, C], [B] -> [B]."""
  return class_logit(jax.nn.log_softmax(logits, axis=-1), classes)


def class_probability(logits: jax.Array, classes: jax.Array) -> jax.Array:
  """softmax(logits)[class]: [B, C], [B] -> [B] in [0, 1] (the score of the
  deletion and insertion curves, as in RISE)."""
  return class_logit(jax.nn.softmax(logits, axis=-1), classes)


def explained_classes(
  target: Target, logits: jax.Array, labels: jax.Array | None
) -> jax.Array:
  """[B] int32 class whose score is explained.

  Args:
    target: ``'label'`` (the ground truth, the study's choice) or
      ``'predicted'`` (argmax of the logits).
    logits: [B, C] (only read for ``'predicted'``; no gradient flows).
    labels: [B] int ground-truth labels (needed for ``'label'``).
  """
  if target == "label":
    if labels is None:
      raise ValueError(
        "target='label' needs labels; pass them or use target='predicted'."
      )
    return jnp.asarray(labels, jnp.int32)
  if target == "predicted":
    return jnp.argmax(jax.lax.stop_gradient(logits), axis=-1).astype(jnp.int32)
  raise ValueError(f"target {target!r} is not one of {TARGETS}.")
