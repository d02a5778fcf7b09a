"""Training losses: cross-entropy on class logits, symmetric image-text contrastive."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(
  logits: jax.Array, labels: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
  """Mean softmax cross-entropy.

  Args:
    logits: [B, C] float; labels: [B] int in [0, C).
    weights: [B] (e.g. the batch's ``valid``), None = all 1.

  Returns:
    scalar float32, the weighted mean over the batch.
  """
  per_example = optax.softmax_cross_entropy_with_integer_labels(
    logits.astype(jnp.float32), labels.astype(jnp.int32)
  )
  if weights is None:
    return per_example.mean()
  weights = weights.astype(jnp.float32)
  return (per_example * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def contrastive(
  logits: jax.Array, labels: jax.Array | None = None
) -> jax.Array:
  """CLIP's symmetric cross-entropy over an image x text logit matrix (FLYP).

  Args:
    logits: [B, B] float, row i = image i against the captions of the batch.
    labels: None: image i matches caption i only (CLIP, FLYP, the release).
      [B] int: captions are "a photo of a {label}", so images sharing a label
      share a caption; the target mass spreads evenly over them.

  Returns:
    scalar: (CE over rows + CE over columns) / 2.
  """
  logits = logits.astype(jnp.float32)
  if labels is None:
    targets = jnp.eye(logits.shape[0], dtype=jnp.float32)
  else:
    same = (labels[:, None] == labels[None, :]).astype(jnp.float32)
    targets = same / same.sum(-1, keepdims=True)
  image_loss = optax.softmax_cross_entropy(logits, targets)
  text_loss = optax.softmax_cross_entropy(logits.T, targets.T)
  return (image_loss.mean() + text_loss.mean()) / 2
