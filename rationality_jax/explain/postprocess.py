"""From a patch-level map to the pixel heatmap the metrics read.

The study's release (and ours, by default) does, per image:

1. bilinear upsampling of the [gh, gw] patch map to the input resolution
   [H, W], with PyTorch's ``F.interpolate(mode='bilinear',
   align_corners=False)`` convention (no antialiasing; it only upsamples):
   output pixel i samples the source coordinate ``(i + 0.5) * in / out - 0.5``,
   clamped to ``[0, in - 1]``, and interpolates linearly between its two
   neighbours. This is also OpenCV's ``cv2.resize(INTER_LINEAR)`` and
   ``jax.image.resize(method='bilinear')`` for upsampling;
2. for a signed map (gradient x input, integrated gradients: a heatmap whose
   ``signed`` is True), what of it is relevance (`SIGNED_MAPS`): ours,
   ``'positive'`` (the default), keeps its positive part ``max(h, 0)``, the
   evidence *for* the explained class, the relevance mass of the RMA paper
   (Arras et al. 2022, CLEVR-XAI) and of Quantus's RelevanceMassAccuracy
   ("the sum of overall positive attributions"); the release's,
   ``'minmax'``, keeps the raw map, so min-max puts a background of zero
   attribution near the middle of [0, 1] (see `signed_relevance`);
3. min-max normalization to [0, 1] over the H x W pixels of that image:
   ``(h - min h) / (max h - min h)``.

Order matters: bilinear upsampling does not reproduce a patch's value at any
output pixel (the sample points fall between patch centres), so min-max after
upsampling (the release) and before differ.

Degenerate cases:

* a constant map (max == min, e.g. the score does not depend on the image, so
  every gradient is zero) normalizes, by default (``constant_map='zero'``), to
  all zeros, never NaN; its RMA is then 0 (no mass). The study's release
  divides by the zero spread (``(h - h.min()) / (h.max() - h.min())`` in
  numpy, ``show_image_relevance`` in ``prediction_rationality/utils/
  xml_analysis.py``), so its map is 0/0 = NaN everywhere:
  ``constant_map='nan'`` reproduces that;
* a non-finite value (NaN, +-inf) anywhere in an image's map makes that
  image's normalized map all NaN, so it is never silently scored. The token
  heatmaps also mark a sample whose attention, activations or gradients hold a
  non-finite value (`nan_where_nonfinite`), because a clamp or a row selection
  could otherwise hide it (``max(-inf, 0) = 0``; a NaN off the CLS row never
  reaches ``R[CLS]``).
"""

from __future__ import annotations

from collections.abc import Sequence
import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=64)
def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] float32 weights of a 1-D align_corners=False resize.

  Row i holds the two weights of output sample i (see the module docstring);
  rows sum to 1. ``upsample(x)[i] = bilinear_matrix(n, m)[i] @ x``.
  """
  if in_size < 1 or out_size < 1:
    raise ValueError(
      f"sizes must be >= 1; got in_size={in_size}, out_size={out_size}."
    )
  source = (np.arange(out_size, dtype=np.float64) + 0.5) * (
    in_size / out_size
  ) - 0.5
  source = np.clip(source, 0.0, in_size - 1)
  low = np.floor(source).astype(int)
  high = np.minimum(low + 1, in_size - 1)
  frac = source - low
  weights = np.zeros((out_size, in_size), np.float64)
  np.add.at(weights, (np.arange(out_size), low), 1.0 - frac)
  np.add.at(weights, (np.arange(out_size), high), frac)
  return weights.astype(np.float32)


def upsample(maps: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Bilinear upsampling (align_corners=False) of [..., gh, gw] to [..., H, W].

  Computed as two small matrix products with `bilinear_matrix`, so it is
  exact, jit/vmap/grad-safe and cheap. Works for any sizes (down-sampling
  too, but then without antialiasing, like PyTorch's default).

  Args:
    maps: [..., gh, gw] float.
    size: (H, W) output size in pixels.

  Returns:
    [..., H, W], same dtype as `maps`.
  """
  maps = jnp.asarray(maps)
  if maps.ndim < 2:
    raise ValueError(f"upsample expects [..., gh, gw]; got shape {maps.shape}.")
  rows = jnp.asarray(bilinear_matrix(maps.shape[-2], size[0]), maps.dtype)
  cols = jnp.asarray(bilinear_matrix(maps.shape[-1], size[1]), maps.dtype)
  return jnp.einsum(
    "ih,...hw,jw->...ij", rows, maps, cols, precision=jax.lax.Precision.HIGHEST
  )


CONSTANT_MAPS = ("zero", "nan")
# What of a signed map is relevance: ours first (see `signed_relevance`).
SIGNED_MAPS = ("positive", "minmax")


def minmax_normalize(maps: jax.Array, constant_map: str = "zero") -> jax.Array:
  """Per-map min-max to [0, 1] over the last two axes: [..., H, W] -> [..., H, W].

  Args:
    maps: [..., H, W] float.
    constant_map: what a constant map (max == min) becomes: ``'zero'`` (ours,
      the default: all zeros, with a finite gradient) or ``'nan'`` (the study's
      release: 0/0 = NaN everywhere).

  Returns:
    [..., H, W], same dtype, in [0, 1]; all NaN for a map holding a NaN or an
    infinity.
  """
  if constant_map not in CONSTANT_MAPS:
    raise ValueError(
      f"constant_map={constant_map!r} is not one of {CONSTANT_MAPS}; 'zero' is "
      "ours, 'nan' the study's release (0/0)."
    )
  maps = jnp.asarray(maps)
  low = jnp.min(maps, axis=(-2, -1), keepdims=True)
  high = jnp.max(maps, axis=(-2, -1), keepdims=True)
  spread = high - low
  positive = spread > 0
  # Double `where` keeps the gradient finite for constant maps.
  safe = jnp.where(positive, spread, 1.0)
  constant = 0.0 if constant_map == "zero" else jnp.nan
  normalized = jnp.where(positive, (maps - low) / safe, constant)
  finite = jnp.isfinite(low) & jnp.isfinite(high)
  return jnp.where(finite, normalized, jnp.nan).astype(maps.dtype)


def check_signed(signed: str) -> None:
  """Raises ValueError unless `signed` is one of `SIGNED_MAPS`."""
  if signed not in SIGNED_MAPS:
    raise ValueError(
      f"signed={signed!r} is not one of {SIGNED_MAPS}; 'positive' is ours "
      "(the positive part is the relevance), 'minmax' the study's release "
      "(min-max of the raw signed map)."
    )


def signed_relevance(maps: jax.Array, signed: str = "positive") -> jax.Array:
  """The relevance of a signed map, before min-max: [..., H, W] -> [..., H, W].

  Args:
    maps: [..., H, W] float, a signed attribution (gradient x input,
      integrated gradients).
    signed: ``'positive'`` (ours, the default): the positive part ``max(h,
      0)``, evidence for the explained class; negative attribution (evidence
      against it) is no relevance. A map with no positive value becomes all
      zeros, a constant map (`minmax_normalize`: zeros, RMA 0, or NaN with
      ``constant_map='nan'``). ``'minmax'`` (the study's release): the map as
      it is, so min-max sends its most negative pixel to 0 and a background
      of zero attribution to ``-min / (max - min)``, about 0.5 for a map
      whose positive and negative extremes are alike: such a background
      holds most of the mass, and RMA falls below 0.5 whatever the object's
      share of the positive part.

  Returns:
    [..., H, W], same dtype. Non-finite values stay non-finite (``-inf``
    becomes NaN, not 0), so `minmax_normalize` still marks the map.
  """
  check_signed(signed)
  maps = jnp.asarray(maps)
  if signed == "minmax":
    return maps
  # h * 0, not 0: -inf * 0 is NaN, so a non-finite map stays non-finite.
  return jnp.where(maps < 0, maps * 0, maps)


def normalize(
  maps: jax.Array,
  *,
  signed_map: bool,
  signed: str = "positive",
  constant_map: str = "zero",
) -> jax.Array:
  """The heatmap the metrics read from an upsampled map: [..., H, W] in [0, 1].

  Args:
    maps: [..., H, W] float at the input resolution.
    signed_map: whether the heatmap's raw map is signed (its ``signed``);
      a non-negative map is min-max normalized as it is, whatever `signed`.
    signed: `SIGNED_MAPS`, see `signed_relevance`.
    constant_map: see `minmax_normalize`.
  """
  check_signed(signed)
  if signed_map:
    maps = signed_relevance(maps, signed)
  return minmax_normalize(maps, constant_map)


def nan_where_nonfinite(
  maps: jax.Array, inputs: Sequence[jax.Array]
) -> jax.Array:
  """Sets the maps of the samples whose inputs hold a NaN or an inf to NaN.

  Args:
    maps: [B, ...] one map per sample.
    inputs: the arrays the maps were computed from, each [B, ...].

  Returns:
    `maps`, all NaN for every sample b with a non-finite value in any
    ``inputs[i][b]``; the other samples are returned unchanged (bitwise).
  """
  finite = jnp.ones(maps.shape[:1], bool)
  for x in inputs:
    finite &= jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
  finite = finite.reshape(-1, *([1] * (maps.ndim - 1)))
  return jnp.where(finite, maps, jnp.nan)


def patch_pool(maps: jax.Array, grid: tuple[int, int]) -> jax.Array:
  """Mean of a pixel map over each patch: [..., H, W] -> [..., gh, gw].

  Used to report a patch-level view of pixel-space attributions (input
  gradients, gradient x input, integrated gradients). H and W must be
  multiples of gh and gw.
  """
  maps = jnp.asarray(maps)
  height, width = maps.shape[-2:]
  gh, gw = grid
  if height % gh or width % gw:
    raise ValueError(
      f"map of {height}x{width} pixels does not split into a "
      f"{gh}x{gw} patch grid."
    )
  blocks = maps.reshape(*maps.shape[:-2], gh, height // gh, gw, width // gw)
  return blocks.mean(axis=(-3, -1))
