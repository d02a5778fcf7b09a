"""Similarity of two heatmaps of one image: rank correlation and SSIM.

What the model-randomisation sanity check (Adebayo et al., "Sanity Checks
for Saliency Maps", NeurIPS 2018) compares: the map of the trained model
against the map after re-initialising its layers (`explain.randomization`).
A heatmap that stays similar does not depend on what the model learned.
Adebayo et al. report the Spearman rank correlation (with and without
absolute values) and the structural similarity (SSIM) of the two maps.

Both take maps ``a`` and ``b`` of one shape [..., H, W] (any leading batch
dimensions) and return one value per pair, shape [...]; they are pure,
jit/vmap-safe functions.

Degenerate cases: a pair with a NaN or an inf in either map gives NaN. A
constant map has no ranking, so its rank correlation is NaN (as
`scipy.stats.spearmanr`); SSIM is defined for constant maps (its constants
C1, C2 keep the denominators positive: two equal constant maps score 1).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

WINDOWS = ("uniform", "gaussian")
K1 = 0.01
K2 = 0.03
GAUSSIAN_SIGMA = 1.5
GAUSSIAN_TRUNCATE = 3.5


def _pair(a, b, name: str) -> tuple[jax.Array, jax.Array]:
  a = jnp.asarray(a, jnp.float32)
  b = jnp.asarray(b, jnp.float32)
  if a.ndim < 2 or a.shape != b.shape:
    raise ValueError(
      f"{name}: two maps of one shape [..., H, W] are needed; got "
      f"{a.shape} and {b.shape}."
    )
  return a, b


def _finite(x: jax.Array) -> jax.Array:
  return jnp.all(jnp.isfinite(x), axis=(-2, -1))


def average_ranks(x: jax.Array) -> jax.Array:
  """Ranks 0..P-1 of [..., P] values along the last axis; ties share the
  mean of their ranks (`scipy.stats.rankdata(method='average') - 1`)."""
  flat = x.reshape(-1, x.shape[-1])
  ordered = jnp.sort(flat, axis=-1)

  def one(row_sorted, row):
    left = jnp.searchsorted(row_sorted, row, side="left")
    right = jnp.searchsorted(row_sorted, row, side="right")
    return (left + right - 1).astype(jnp.float32) / 2

  return jax.vmap(one)(ordered, flat).reshape(x.shape)


def spearman(a: jax.Array, b: jax.Array) -> jax.Array:
  """Spearman rank correlation of two maps over their pixels.

  The Pearson correlation of the pixels' average ranks (ties share their
  mean rank), as `scipy.stats.spearmanr` on the flattened maps.

  Args:
    a, b: [..., H, W] float, the same shape.

  Returns:
    [...] float32 in [-1, 1]; NaN when either map is constant (no ranking)
    or holds a NaN or an inf.
  """
  a, b = _pair(a, b, "spearman")
  flat = (*a.shape[:-2], a.shape[-2] * a.shape[-1])
  ra = average_ranks(a.reshape(flat))
  rb = average_ranks(b.reshape(flat))
  ra = ra - ra.mean(axis=-1, keepdims=True)
  rb = rb - rb.mean(axis=-1, keepdims=True)
  cross = jnp.sum(ra * rb, axis=-1)
  spread = jnp.sqrt(jnp.sum(ra * ra, axis=-1) * jnp.sum(rb * rb, axis=-1))
  defined = (spread > 0) & _finite(a) & _finite(b)
  value = cross / jnp.where(defined, spread, 1.0)
  return jnp.where(defined, jnp.clip(value, -1.0, 1.0), jnp.nan)


@functools.lru_cache(maxsize=32)
def _window_matrix(size: int, window: str) -> np.ndarray:
  """[size - w + 1, size] float32: the window's 1-D taps at every position
  where it fits inside the map (a 'valid' correlation as a matrix)."""
  if window == "uniform":
    taps = np.full(7, 1 / 7)
  else:
    radius = int(GAUSSIAN_TRUNCATE * GAUSSIAN_SIGMA + 0.5)
    x = np.arange(-radius, radius + 1)
    taps = np.exp(-0.5 * (x / GAUSSIAN_SIGMA) ** 2)
    taps /= taps.sum()
  width = len(taps)
  if size < width:
    raise ValueError(
      f"ssim: a {window} window is {width} pixels wide; the maps have a "
      f"side of {size}."
    )
  matrix = np.zeros((size - width + 1, size), np.float64)
  for i in range(size - width + 1):
    matrix[i, i : i + width] = taps
  return matrix.astype(np.float32)


def ssim(
  a: jax.Array,
  b: jax.Array,
  *,
  window: str = "uniform",
  data_range: float = 1.0,
) -> jax.Array:
  """Mean structural similarity of two maps (Wang et al., IEEE TIP 2004).

  Per window: ``(2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy +
  C2))`` with C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = `data_range`; the mean
  over every window position that fits inside the map. As
  `skimage.metrics.structural_similarity` (which Adebayo et al. used):

  * ``window='uniform'`` (default, skimage's default): a 7 x 7 mean, and
    the sample covariance (variances scaled by 49 / 48);
  * ``window='gaussian'`` (Wang et al.'s): an 11 x 11 Gaussian of sigma
    1.5 (skimage's ``gaussian_weights=True``, truncated at 3.5 sigma) and
    no sample-covariance scaling (``use_sample_covariance=False``).

  skimage filters the whole map with reflected borders, then drops the
  (w - 1) / 2 border pixels before averaging: exactly the positions where
  the window fits, which is what is computed here.

  Args:
    a, b: [..., H, W] float, the same shape, H and W at least the window's
      side (7 or 11).
    window: ``'uniform'`` or ``'gaussian'``.
    data_range: L, the maps' value range (1.0 for maps in [0, 1]).

  Returns:
    [...] float32 in [-1, 1] (1 for identical maps); NaN when either map
    holds a NaN or an inf.
  """
  a, b = _pair(a, b, "ssim")
  if window not in WINDOWS:
    raise ValueError(f"ssim: window {window!r} is not one of {WINDOWS}.")
  rows = jnp.asarray(_window_matrix(a.shape[-2], window))
  cols = jnp.asarray(_window_matrix(a.shape[-1], window))

  def mean(x):
    return jnp.einsum(
      "ih,...hw,jw->...ij", rows, x, cols, precision=jax.lax.Precision.HIGHEST
    )

  taps = 49 if window == "uniform" else 1
  scale = taps / (taps - 1) if taps > 1 else 1.0
  # The (co)variances from maps shifted by their own means (shift-invariant
  # quantities; float32's E[x^2] - E[x]^2 cancels badly on nearly flat maps).
  shift_a = a.mean(axis=(-2, -1), keepdims=True)
  shift_b = b.mean(axis=(-2, -1), keepdims=True)
  a, b = a - shift_a, b - shift_b
  ca, cb = mean(a), mean(b)
  vx = scale * (mean(a * a) - ca * ca)
  vy = scale * (mean(b * b) - cb * cb)
  vxy = scale * (mean(a * b) - ca * cb)
  ux, uy = ca + shift_a, cb + shift_b
  c1 = (K1 * data_range) ** 2
  c2 = (K2 * data_range) ** 2
  s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / (
    (ux * ux + uy * uy + c1) * (vx + vy + c2)
  )
  value = s.mean(axis=(-2, -1))
  return jnp.where(_finite(a) & _finite(b), value, jnp.nan)
