"""Per-sample localisation scores of a heatmap against a binary object mask.

Every function here is a pure function of arrays: it takes `heatmaps` and
`masks` of shape [..., H, W] (any number of leading batch dimensions, which
broadcast against each other) and returns one value per sample, shape [...].
They are safe under `jax.jit`, `jax.vmap`, `jax.grad` and sharded inputs.

Degenerate cases, the same for every score:
- empty mask (no pixel on the object): NaN. The question "how much evidence
  lies on the object" has no answer; callers exclude such samples from every
  count and report them separately (see `rationality.Counts`).
- NaN anywhere in a sample's heatmap: NaN for that sample (propagates, never
  silently scored).
- masks are binarised with `mask > 0` (uint8 {0, 1}, bool, or float masks all
  work; soft masks are not supported on purpose).
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp

Negative = Literal["clip", "abs", "keep"]

_NEGATIVE_POLICIES = ("clip", "abs", "keep")


def _check_pair(heatmaps: jax.Array, masks: jax.Array, name: str) -> None:
  if heatmaps.ndim < 2 or masks.ndim < 2:
    raise ValueError(
      f"{name}: heatmaps and masks need shape [..., H, W]; got heatmaps "
      f"{heatmaps.shape} and masks {masks.shape}."
    )
  if heatmaps.shape[-2:] != masks.shape[-2:]:
    raise ValueError(
      f"{name}: heatmaps {heatmaps.shape} and masks {masks.shape} differ in "
      f"their last two (H, W) axes; resize the heatmap to the mask's "
      f"resolution first (rationality_jax.explain upsamples to the input)."
    )


def _prepare(heatmaps, masks, name: str) -> tuple[jax.Array, jax.Array]:
  """Arrays with float heatmaps, checked to pair up over the last two axes."""
  heatmaps = jnp.asarray(heatmaps)
  if not jnp.issubdtype(heatmaps.dtype, jnp.floating):
    heatmaps = heatmaps.astype(jnp.float32)
  masks = jnp.asarray(masks)
  _check_pair(heatmaps, masks, name)
  return heatmaps, masks


def _undefined(heatmaps: jax.Array, masks: jax.Array) -> jax.Array:
  """[...] bool: empty mask or NaN in the heatmap (the score is NaN there)."""
  return (jnp.sum(masks > 0, axis=(-2, -1)) == 0) | jnp.any(
    jnp.isnan(heatmaps), axis=(-2, -1)
  )


def _binary(masks: jax.Array, dtype) -> jax.Array:
  return (jnp.asarray(masks) > 0).astype(dtype)


def _apply_negative(heatmaps: jax.Array, negative: str) -> jax.Array:
  if negative == "clip":
    # `where`, not `maximum`: a map that is already >= 0 passes unchanged,
    # gradient included (maximum would halve the gradient at exact zeros).
    return jnp.where(heatmaps < 0, 0, heatmaps)  # NaN stays NaN
  if negative == "abs":
    return jnp.abs(heatmaps)
  if negative == "keep":
    return heatmaps
  raise ValueError(
    f"negative={negative!r} is not a policy; use one of {_NEGATIVE_POLICIES}."
  )


def _safe_ratio(
  numerator: jax.Array, denominator: jax.Array, when_zero: float
) -> jax.Array:
  """numerator / denominator, `when_zero` where denominator == 0, grad-safe."""
  zero = denominator == 0
  ratio = numerator / jnp.where(zero, 1, denominator)
  return jnp.where(zero, jnp.asarray(when_zero, ratio.dtype), ratio)


def _sum_hw(x: jax.Array) -> jax.Array:
  return jnp.sum(x, axis=(-2, -1))


def rma(
  heatmaps: jax.Array, masks: jax.Array, *, negative: Negative = "clip"
) -> jax.Array:
  """Relevant Mass Accuracy (Arras et al. 2022): share of the mass on the object.

  RMA(H, M) = sum(H * M) / sum(H), per sample over the last two axes.

  Args:
    heatmaps: [..., H, W] float. Any scale: RMA is invariant to scaling.
    masks: [..., H, W] binary (bool / {0,1} ints / floats, binarised with > 0).
    negative: what to do with negative heatmap values.
      "clip" (default): max(H, 0), as Arras et al.'s positive pooling; RMA in
        [0, 1]. Maps already >= 0 (the min-max normalised explanations) pass
        unchanged, gradient included.
      "abs": |H|; RMA in [0, 1].
      "keep": use H as is; RMA can leave [0, 1] (even exceed 1 when negative
        mass sits off the object). Only for maps known to be >= 0.

  Returns:
    [...] float. Degenerate cases:
      sum(H) == 0 (after the policy): 0.0, no mass on the object;
      empty mask: NaN (excluded from counts, reported separately);
      NaN in H: NaN.
  """
  heatmaps, masks = _prepare(heatmaps, masks, "rma")
  if negative not in _NEGATIVE_POLICIES:
    raise ValueError(
      f"negative={negative!r} is not a policy; use one of {_NEGATIVE_POLICIES}."
    )
  inside, total, area = _mass_sums(heatmaps, masks, negative)
  value = _safe_ratio(inside, total, when_zero=0.0)
  return jnp.where(area == 0, jnp.nan, value)


# On CPU, XLA emits a reduction fused with elementwise work as one long serial
# loop per output; run over a few samples at a time it stays in cache and is
# about 7x faster (benchmarks/metrics.py). GPUs and TPUs take the plain form.
_CPU_SAMPLES_PER_STEP = 8


def _plain_mass_sums(h: jax.Array, masks: jax.Array, negative: str):
  h = _apply_negative(h, negative)
  on_mask = jnp.asarray(masks) > 0
  return (
    _sum_hw(jnp.where(on_mask, h, 0)),
    _sum_hw(h),
    jnp.sum(on_mask, axis=(-2, -1), dtype=jnp.int32),
  )


def _chunked_mass_sums(h: jax.Array, masks: jax.Array, negative: str):
  h, masks = jnp.broadcast_arrays(h, jnp.asarray(masks))
  batch_shape = h.shape[:-2]
  flat_h = h.reshape(-1, *h.shape[-2:])
  flat_m = masks.reshape(flat_h.shape)
  sums = jax.lax.map(
    lambda hm: _plain_mass_sums(*hm, negative),
    (flat_h, flat_m),
    batch_size=_CPU_SAMPLES_PER_STEP,
  )
  return tuple(x.reshape(batch_shape) for x in sums)


def _mass_sums(h: jax.Array, masks: jax.Array, negative: str):
  """(sum(H'*M), sum(H'), sum(M)) over the last two axes, H' = H after the
  negative policy, M binarised by > 0."""
  if h.ndim == 2 and jnp.ndim(masks) == 2:
    return _plain_mass_sums(h, masks, negative)
  return jax.lax.platform_dependent(
    h,
    masks,
    cpu=functools.partial(_chunked_mass_sums, negative=negative),
    default=functools.partial(_plain_mass_sums, negative=negative),
  )


def relevance_rank_accuracy(heatmaps: jax.Array, masks: jax.Array) -> jax.Array:
  """Relevance Rank Accuracy (Arras et al. 2022): top-K pixels inside the mask.

  With K = |M| (the number of mask pixels), RRA is the share of the K
  highest-scoring pixels that lie inside M. Ranking uses the raw heatmap values
  (no negative policy is needed: only the order matters).

  Ties at the K-th value are resolved by their expectation under uniformly
  random tie-breaking: pixels strictly above the K-th value count fully, and
  the remaining slots are shared evenly among the pixels equal to it. So the
  score is deterministic and does not depend on pixel order; a constant
  heatmap scores |M| / (H*W).

  Args:
    heatmaps: [..., H, W] float.
    masks: [..., H, W] binary.

  Returns:
    [...] float in [0, 1]; NaN for an empty mask or a heatmap with NaN.
  """
  heatmaps, masks = _prepare(heatmaps, masks, "relevance_rank_accuracy")
  heatmaps, masks = jnp.broadcast_arrays(heatmaps, masks)
  flat_h = heatmaps.reshape(*heatmaps.shape[:-2], -1)
  m = _binary(masks, heatmaps.dtype).reshape(flat_h.shape)
  k = jnp.sum(m, axis=-1)
  k_index = jnp.maximum(k.astype(jnp.int32) - 1, 0)
  descending = -jnp.sort(-jax.lax.stop_gradient(flat_h), axis=-1)
  kth = jnp.take_along_axis(descending, k_index[..., None], axis=-1)
  above = flat_h > kth
  tied = flat_h == kth
  n_above = jnp.sum(above, axis=-1)
  n_tied = jnp.sum(tied, axis=-1)
  share = (k - n_above) / jnp.maximum(n_tied, 1)
  hits = jnp.sum(above * m, axis=-1) + share * jnp.sum(tied * m, axis=-1)
  value = hits / jnp.maximum(k, 1)
  return jnp.where(_undefined(heatmaps, masks), jnp.nan, value)


def pointing_game(heatmaps: jax.Array, masks: jax.Array) -> jax.Array:
  """Pointing game (Zhang et al. 2018): is the heatmap's maximum on the object?

  Returns 1.0 when the maximum lies inside M, 0.0 when outside. When several
  pixels share the maximum, the result is the share of them inside M (the hit
  probability under uniformly random tie-breaking), so a constant map scores
  |M| / (H*W) instead of depending on pixel order. No tolerance margin.

  Args:
    heatmaps: [..., H, W] float.
    masks: [..., H, W] binary.

  Returns:
    [...] float in [0, 1]; NaN for an empty mask or a heatmap with NaN.
  """
  heatmaps, masks = _prepare(heatmaps, masks, "pointing_game")
  h = jax.lax.stop_gradient(heatmaps)
  m = _binary(masks, h.dtype)
  peak = jnp.max(h, axis=(-2, -1), keepdims=True)
  at_peak = (h == peak).astype(h.dtype)
  value = _sum_hw(at_peak * m) / jnp.maximum(_sum_hw(at_peak), 1)
  return jnp.where(_undefined(h, masks), jnp.nan, value)


def iou(
  heatmaps: jax.Array, masks: jax.Array, threshold: float = 0.5
) -> jax.Array:
  """Intersection over union of the thresholded heatmap `H >= threshold` with M.

  The threshold is absolute, so apply it to maps on a known scale (the
  explanation heatmaps are min-max normalised to [0, 1] per image).

  Args:
    heatmaps: [..., H, W] float.
    masks: [..., H, W] binary.
    threshold: scalar or array broadcasting against the batch dims [...].

  Returns:
    [...] float in [0, 1]; NaN for an empty mask or a heatmap with NaN.
  """
  heatmaps, masks = _prepare(heatmaps, masks, "iou")
  threshold = jnp.asarray(threshold, heatmaps.dtype)[..., None, None]
  predicted = heatmaps >= threshold
  m = jnp.asarray(masks) > 0
  intersection = _sum_hw(predicted & m)
  union = _sum_hw(predicted | m)
  value = intersection / jnp.maximum(union, 1)
  return jnp.where(
    _undefined(heatmaps, masks), jnp.nan, value.astype(heatmaps.dtype)
  )
