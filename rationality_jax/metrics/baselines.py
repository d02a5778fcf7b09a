"""Chance levels of RMA: what a uniform map scores against each mask.

A uniform map (the same positive value on every pixel) puts a share
``|M| / (H * W)`` of its mass on the object: its RMA is the mask's share of
the image. That is the score of a heatmap that knows nothing about the
object, so a heatmap is only informative where it beats it: a mean RMA of
0.3 on objects covering 30 % of the image on average is chance level, and an
object covering at least half the image (``|M| / (H * W) >= 0.5``) makes a
uniform map valid evidence at the study's threshold. The "uniform map" is
conceptual: `explain`'s min-max normalization turns a constant map into
zeros (RMA 0); this is RMA's own value for any constant map > 0.

Degenerate cases, as `rma`'s default policy: an empty mask gives NaN (the
sample has no defined evidence), and `uniform_map_baseline` leaves such
samples out of both its mean and its share.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from rationality_jax.metrics import rationality


def uniform_map_rma(masks: jax.Array) -> jax.Array:
  """RMA of a uniform map against each mask: [..., H, W] -> [...] float32.

  Args:
    masks: [..., H, W] binary (binarised with > 0, as `rma`).

  Returns:
    [...] float32 ``|M| / (H * W)`` in (0, 1]; NaN for an empty mask. Equal
    to ``rma(jnp.ones(masks.shape), masks)``.
  """
  masks = jnp.asarray(masks)
  if masks.ndim < 2:
    raise ValueError(
      f"uniform_map_rma: masks need shape [..., H, W]; got {masks.shape}."
    )
  area = jnp.sum(masks > 0, axis=(-2, -1), dtype=jnp.int32)
  return uniform_map_rma_from_areas(area, masks.shape[-2] * masks.shape[-1])


def uniform_map_rma_from_areas(
  mask_area: jax.Array, pixels: int | jax.Array
) -> jax.Array:
  """`uniform_map_rma` from mask areas (e.g. the records' `mask_area`).

  Args:
    mask_area: [...] int, mask pixels per sample (`evidence_columns`).
    pixels: H * W, the pixels of the image the masks cover (scalar or
      broadcasting against `mask_area`).

  Returns:
    [...] float32 ``mask_area / pixels``; NaN where ``mask_area == 0``.
  """
  area = jnp.asarray(mask_area)
  if not jnp.issubdtype(area.dtype, jnp.integer):
    raise ValueError(
      "uniform_map_rma_from_areas: `mask_area` must be integer pixel counts; "
      f"got {area.dtype}."
    )
  share = area.astype(jnp.float32) / jnp.asarray(pixels, jnp.float32)
  return jnp.where(area == 0, jnp.nan, share)


def uniform_map_baseline(
  uniform_rma: jax.Array,
  threshold: float | jax.Array = 0.5,
  *,
  where: jax.Array | None = None,
) -> dict[str, jax.Array]:
  """The chance levels of a set of samples.

  Args:
    uniform_rma: [N] float, from `uniform_map_rma` (NaN: empty mask).
    threshold: the validity threshold, a scalar or a [T] vector, in [0, 1].
    where: optional [N] bool; False rows (padding) are left out.

  Returns:
    {'mean_rma': float32, the mean uniform-map RMA over the samples with a
    non-empty mask; 'valid_share': float32 (or [T]), the share of those
    samples on which a uniform map is valid (``uniform_rma >= threshold``);
    'samples': int32, how many samples that is}. Both shares are NaN when
    no sample has a non-empty mask.
  """
  uniform_rma = jnp.asarray(uniform_rma, jnp.float32)
  chex.assert_rank(uniform_rma, 1)
  defined = ~jnp.isnan(uniform_rma)
  if where is not None:
    defined &= rationality._bool_argument(
      where, "where", uniform_rma.shape, "keep this sample"
    )
  threshold = jnp.asarray(threshold, jnp.float32)
  chex.assert_rank(threshold, {0, 1})
  valid = rationality.valid_evidence(uniform_rma[:, None], threshold[None])
  count = defined.sum(dtype=jnp.int32)
  denominator = jnp.maximum(count, 1).astype(jnp.float32)
  mean = jnp.where(defined, uniform_rma, 0.0).sum() / denominator
  share = jnp.where(defined[:, None], valid, 0.0).sum(axis=0) / denominator
  share = share.reshape(threshold.shape)
  return {
    "mean_rma": jnp.where(count > 0, mean, jnp.nan),
    "valid_share": jnp.where(count > 0, share, jnp.nan),
    "samples": count,
  }
