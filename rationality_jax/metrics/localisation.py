"""Per-sample localisation scores of a heatmap against a binary object mask.

Every function here is a pure function of arrays: it takes `heatmaps` and
`masks` of the same shape [..., H, W] (any number of leading batch dimensions)
and returns one value per sample, shape [...]. Shapes must be equal: a mask
that should serve several heatmaps is broadcast by the caller
(`jnp.broadcast_to(masks, heatmaps.shape)`), so a stray axis never multiplies
the number of samples. They are safe under `jax.jit`, `jax.vmap`, `jax.grad`
and sharded inputs.

Degenerate cases, the same for every score by default:
- empty mask (no pixel on the object): NaN. The question "how much evidence
  lies on the object" has no answer; callers exclude such samples from every
  count and report them separately (see `rationality.Counts`).
- a non-finite value (NaN, +-inf) anywhere in a sample's heatmap: NaN for that
  sample (never silently scored).
- masks are binarised with `mask > 0` (uint8 {0, 1}, bool, or float masks all
  work; soft masks are not supported on purpose).

`rma` can instead follow the authors' release (`empty_mask="release"`,
`nonfinite="release"`), which has no special cases: see its docstring and
docs/metrics.md for the two behaviours side by side.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from typing import Literal

import jax
import jax.numpy as jnp

Negative = Literal["clip", "abs", "keep"]
# How a degenerate sample is scored: "undefined" (ours: NaN, reported apart)
# or "release" (the arithmetic of the authors' release, no special case).
Policy = Literal["undefined", "release"]

_NEGATIVE_POLICIES = ("clip", "abs", "keep")
POLICIES = ("undefined", "release")


def check_policy(name: str, value: str) -> None:
  """Raises ValueError unless `value` is one of `POLICIES`."""
  if value not in POLICIES:
    raise ValueError(
      f"{name}={value!r} is not a policy; use one of {POLICIES} "
      "(docs/metrics.md, 'Degenerate cases')."
    )


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
  if heatmaps.shape != masks.shape:
    raise ValueError(
      f"{name}: heatmaps {heatmaps.shape} and masks {masks.shape} must have "
      f"the same shape (one mask per heatmap); to score several heatmaps "
      f"against one mask, pass jnp.broadcast_to(masks, heatmaps.shape)."
    )


def _prepare(heatmaps, masks, name: str) -> tuple[jax.Array, jax.Array]:
  """Arrays with float heatmaps, checked to have the masks' shape."""
  heatmaps = jnp.asarray(heatmaps)
  if not jnp.issubdtype(heatmaps.dtype, jnp.floating):
    heatmaps = heatmaps.astype(jnp.float32)
  masks = jnp.asarray(masks)
  _check_pair(heatmaps, masks, name)
  return heatmaps, masks


def _undefined(heatmaps: jax.Array, masks: jax.Array) -> jax.Array:
  """[...] bool: empty mask or a non-finite heatmap value (the score is NaN)."""
  return (jnp.sum(masks > 0, axis=(-2, -1)) == 0) | ~jnp.all(
    jnp.isfinite(heatmaps), axis=(-2, -1)
  )


def _binary(masks: jax.Array, dtype) -> jax.Array:
  return (jnp.asarray(masks) > 0).astype(dtype)


def _apply_negative(heatmaps: jax.Array, negative: str) -> jax.Array:
  if negative == "clip":
    # `where`, not `maximum`: a map that is already >= 0 passes unchanged,
    # gradient included (maximum would halve the gradient at exact zeros).
    # Negatives become h * 0: -0.0 for finite ones, NaN for -inf, so the
    # mass stays non-finite exactly when the map is (NaN stays NaN).
    return jnp.where(heatmaps < 0, heatmaps * 0, heatmaps)
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
  heatmaps: jax.Array,
  masks: jax.Array,
  *,
  negative: Negative = "clip",
  empty_mask: Policy = "undefined",
  nonfinite: Policy = "undefined",
) -> jax.Array:
  """Relevant Mass Accuracy (Arras et al. 2022): share of the mass on the object.

  RMA(H, M) = sum(H * M) / sum(H), per sample over the last two axes.

  Args:
    heatmaps: [..., H, W] float. Any scale: RMA is invariant to scaling.
    masks: [..., H, W] (the heatmaps' shape) binary (bool / {0,1} ints /
      floats, binarised with > 0).
    negative: what to do with negative heatmap values.
      "clip" (default): max(H, 0), as Arras et al.'s positive pooling; RMA in
        [0, 1]. Maps already >= 0 (the min-max normalized explanations) pass
        unchanged, gradient included.
      "abs": |H|; RMA in [0, 1].
      "keep": use H as is; RMA can leave [0, 1] (even exceed 1 when negative
        mass sits off the object). Only for maps known to be >= 0.
    empty_mask: a mask with no pixel on the object.
      "undefined" (default): NaN; the evidence is undefined, and
        `valid_evidence` / the counts keep the sample out of RR/RW/WR/WW.
      "release": no special case, as `eval_rma` in the release
        (prediction_rationality/utils/xml_analysis.py:
        `np.sum(pred * anno) / np.sum(pred)`): 0 / sum(H) = 0.0, so the
        evidence is invalid at any threshold > 0 and the sample counts in
        RW or WW. When sum(H) is 0 as well, it is what `nonfinite` makes of
        0 / 0.
    nonfinite: non-finite values and the division by a zero mass.
      "undefined" (default): a heatmap with any NaN or +-inf gives NaN
        (undefined); sum(H) == 0 gives 0.0 (no mass, so none on the object).
      "release": IEEE arithmetic, as the release's numpy: a NaN in H gives
        NaN, sum(H) == 0 gives 0 / 0 = NaN (+-inf for mass on the mask with
        negative="keep"), inf gives NaN or 0. The release then counts a NaN
        RMA as valid (`0 if es < cls_thres else 1`, and NaN < 0.5 is False):
        `valid_evidence(..., nonfinite="release")` does the same.

  Returns:
    [...] float. With the default policies: in [0, 1] (negative "clip" or
    "abs"); 0.0 for a zero heatmap; NaN for an empty mask or a non-finite map.
    Gradients are finite wherever the value is finite, under both policies.
  """
  heatmaps, masks = _prepare(heatmaps, masks, "rma")
  if negative not in _NEGATIVE_POLICIES:
    raise ValueError(
      f"negative={negative!r} is not a policy; use one of {_NEGATIVE_POLICIES}."
    )
  check_policy("empty_mask", empty_mask)
  check_policy("nonfinite", nonfinite)
  inside, total, area = _mass_sums(heatmaps, masks, negative)
  return _rma_from_sums(inside, total, area, empty_mask, nonfinite)


def _rma_from_sums(
  inside: jax.Array,
  total: jax.Array,
  area: jax.Array,
  empty_mask: str = "undefined",
  nonfinite: str = "undefined",
) -> jax.Array:
  """RMA from sum(H*M), sum(H) and sum(M) under `rma`'s policies. A
  non-finite sum(H) stands for a non-finite heatmap (see `_mass_sums`)."""
  if nonfinite == "undefined":
    value = _safe_ratio(inside, total, when_zero=0.0)
    value = jnp.where(jnp.isfinite(total), value, jnp.nan)
  else:
    # IEEE quotient; the unguarded division only feeds the zero-mass branch,
    # behind stop_gradient, so gradients stay finite elsewhere.
    zero = total == 0
    value = jnp.where(
      zero,
      jax.lax.stop_gradient(inside / total),
      inside / jnp.where(zero, 1, total),
    )
  if empty_mask == "undefined":
    value = jnp.where(area == 0, jnp.nan, value)
  return value


# On CPU, XLA materialises the elementwise work (clipping, masking) and hands
# float sums and maxima to a fast reduction kernel (integer sums take a slower
# path; the empty-mask test, a max of the raw masks, runs once over the whole
# batch, see `_any_on_mask`). Over the whole batch those intermediates would go
# through memory; over a few samples at a time they stay in cache, and the
# loop's per-step cost stays small. Each step holds one group of samples per
# core (about 1.5 MiB of heatmap, 8 maps of 224x224, per group; at most 8
# groups): the groups' passes are independent, so XLA runs them side by side,
# where one group per step left a core idle in the single-threaded reductions
# (benchmarks/metrics.py, figures in docs/benchmarks.md). GPUs and TPUs fuse
# it all and take the plain form.
_CPU_BYTES_PER_GROUP = 8 * 224 * 224 * 4
_CPU_MAX_GROUPS = 8


def _cpu_cores() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def _flat_mass_sums(h, masks, negative: str, count_area: bool):
  """(sum(H'*M), sum(H')) over the last axis of [..., P], and with
  `count_area` the int32 number of mask pixels (a float32 sum, exact up to
  2**24 pixels) and the standard deviation of H (two passes: no
  cancellation for a near-constant map)."""
  raw = h
  h = _apply_negative(h, negative)
  on_mask = masks > 0
  sums = (jnp.sum(jnp.where(on_mask, h, 0), axis=-1), jnp.sum(h, axis=-1))
  if count_area:
    area = jnp.sum(on_mask.astype(jnp.float32), axis=-1)
    sums += (area.astype(jnp.int32), jnp.std(raw, axis=-1))
  return sums


def _any_on_mask(masks: jax.Array) -> jax.Array:
  """[...] int32: 1 where the mask has a pixel > 0, else 0. A max of the raw
  mask over the whole batch at once: no converted copy, and on CPU one
  multi-threaded pass instead of a slice copy in every step of the loop."""
  raw = masks.astype(jnp.uint8) if masks.dtype == jnp.bool_ else masks
  raw = raw.reshape(*raw.shape[:-2], raw.shape[-2] * raw.shape[-1])
  return (jnp.max(raw, axis=-1) > 0).astype(jnp.int32)


def _plain_mass_sums(h, masks, sums_of):
  flat = (*h.shape[:-2], h.shape[-2] * h.shape[-1])
  return sums_of(h.reshape(flat), masks.reshape(flat))


def _chunked_mass_sums(h, masks, sums_of):
  batch_shape = h.shape[:-2]
  pixels = h.shape[-2] * h.shape[-1]
  n = math.prod(batch_shape)
  flat_h = h.reshape(n, pixels)
  flat_m = masks.reshape(n, pixels)
  per_group = max(1, _CPU_BYTES_PER_GROUP // (pixels * h.dtype.itemsize))
  step = min(n, per_group * min(_cpu_cores(), _CPU_MAX_GROUPS))
  if step == 0:
    return _plain_mass_sums(h, masks, sums_of)
  groups = -(-step // per_group)
  bounds = [g * step // groups for g in range(groups + 1)]

  def step_sums(h_step, m_step):
    parts = [
      sums_of(h_step[a:b], m_step[a:b]) for a, b in itertools.pairwise(bounds)
    ]
    return tuple(jnp.concatenate(column) for column in zip(*parts))

  # Steps of `step` samples; the last one starts early enough to stay inside
  # (it recomputes a few samples, identically): no slice, pad or copy of the
  # inputs, whatever n is.
  def body(i, sums):
    start = jnp.minimum(i * step, n - step)
    part = step_sums(
      jax.lax.dynamic_slice_in_dim(flat_h, start, step),
      jax.lax.dynamic_slice_in_dim(flat_m, start, step),
    )
    return tuple(
      jax.lax.dynamic_update_slice_in_dim(s, p, start, axis=0)
      for s, p in zip(sums, part)
    )

  shapes = jax.eval_shape(sums_of, flat_h[:1], flat_m[:1])
  init = tuple(jnp.zeros((n,), s.dtype) for s in shapes)
  sums = jax.lax.fori_loop(0, -(-n // step), body, init)
  return tuple(x.reshape(batch_shape) for x in sums)


# Jitted so that eager calls compile once per shape instead of tracing the
# loop every time (inside a caller's jit it is inlined).
@functools.partial(jax.jit, static_argnames=("negative", "count_area"))
def _mass_sums(h, masks, negative: str, count_area: bool = False):
  """(sum(H'*M), sum(H'), on-mask pixels) over the last two axes, H' = H
  after the negative policy; sum(H') is non-finite exactly when H is. The
  third is exact with `count_area`, else 0 for an empty mask and 1 otherwise;
  `count_area` adds a fourth, the standard deviation of H."""
  sums_of = functools.partial(
    _flat_mass_sums, negative=negative, count_area=count_area
  )
  if h.ndim == 2:
    sums = _plain_mass_sums(h, masks, sums_of)
  else:
    sums = jax.lax.platform_dependent(
      h,
      masks,
      cpu=functools.partial(_chunked_mass_sums, sums_of=sums_of),
      default=functools.partial(_plain_mass_sums, sums_of=sums_of),
    )
  if not count_area:
    sums = (*sums, _any_on_mask(masks))
  return tuple(sums)


def evidence_columns(
  heatmaps: jax.Array, masks: jax.Array, *, negative: Negative = "clip"
) -> dict[str, jax.Array]:
  """The per-sample evidence columns of `Accumulator.add`, in one pass.

  Args:
    heatmaps: [..., H, W] float.
    masks: [..., H, W] binary, the heatmaps' shape.
    negative: RMA's policy for negative heatmap values (see `rma`).

  Returns:
    {'rma': [...] float (default policies), 'mask_area': [...] int32 (mask
    pixels), 'heatmap_mass': [...] float (sum(H) after `negative`),
    'heatmap_finite': [...] bool (no NaN / inf in H), 'heatmap_std': [...]
    float (population standard deviation of H over its H x W pixels, as
    given, before `negative`; 0 for a constant map, NaN for a non-finite
    one)}. From the first four the Accumulator recomputes RMA's validity
    under either policy; `heatmap_std` flags near-constant maps (a map in
    [0, 1] spreads its values by up to 0.5).
  """
  heatmaps, masks = _prepare(heatmaps, masks, "evidence_columns")
  inside, total, area, spread = _mass_sums(
    heatmaps, masks, negative, count_area=True
  )
  return {
    "rma": _rma_from_sums(inside, total, area),
    "mask_area": area,
    "heatmap_mass": total,
    "heatmap_finite": jnp.isfinite(total),
    "heatmap_std": spread,
  }


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
    masks: [..., H, W] binary, the heatmaps' shape.

  Returns:
    [...] float in [0, 1]; NaN for an empty mask or a non-finite heatmap.
  """
  heatmaps, masks = _prepare(heatmaps, masks, "relevance_rank_accuracy")
  flat_h = heatmaps.reshape(
    *heatmaps.shape[:-2], heatmaps.shape[-2] * heatmaps.shape[-1]
  )
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
    masks: [..., H, W] binary, the heatmaps' shape.

  Returns:
    [...] float in [0, 1]; NaN for an empty mask or a non-finite heatmap.
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
  explanation heatmaps are min-max normalized to [0, 1] per image).

  Args:
    heatmaps: [..., H, W] float.
    masks: [..., H, W] binary, the heatmaps' shape.
    threshold: scalar or array broadcasting against the batch dims [...].

  Returns:
    [...] float in [0, 1]; NaN for an empty mask or a non-finite heatmap.
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
