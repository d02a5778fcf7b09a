"""Spearman and SSIM of two maps: against scipy.stats.spearmanr and a numpy
(scipy.ndimage) SSIM written as skimage computes it."""

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.stats

from rationality_jax import metrics
from rationality_jax.metrics import similarity

settings = hypothesis.settings(deadline=None, max_examples=25)


def _maps(sides=(1, 2, 3, 5, 12), values=None):
  """Pairs of maps [2, H, W], H and W from `sides` (the smallest, odd, even
  and larger; a few shapes, each compiled once, with many values each); by
  default small integer values (many ties)."""
  values = st.integers(0, 4).map(float) if values is None else values
  side = st.sampled_from(sides)
  return hnp.arrays(
    np.float32, st.tuples(st.just(2), side, side), elements=values
  )


@settings
@hypothesis.given(_maps(sides=(2, 3, 5, 12)))
def test_spearman_matches_scipy_with_ties(pair):
  a, b = pair
  hypothesis.assume(np.ptp(a) > 0 and np.ptp(b) > 0)
  expected = scipy.stats.spearmanr(a.ravel(), b.ravel()).statistic
  np.testing.assert_allclose(
    float(metrics.spearman(a, b)), expected, rtol=1e-5, atol=1e-6
  )


def test_spearman_hand_computed_and_degenerate():
  a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
  assert float(metrics.spearman(a, a * 10 + 3)) == pytest.approx(1.0)
  assert float(metrics.spearman(a, -a)) == pytest.approx(-1.0)
  b = np.array([[1.0, 1.0], [2.0, 0.0]], np.float32)
  # ranks a: 0 1 2 3, b: 1.5 1.5 3 0; centred: [-1.5 -.5 .5 1.5] and
  # [0 0 1.5 -1.5]: dot -1.5, sums of squares 5 and 4.5
  assert float(metrics.spearman(a, b)) == pytest.approx(-1.5 / np.sqrt(22.5))
  assert np.isnan(metrics.spearman(a, np.ones_like(a)))
  assert np.isnan(metrics.spearman(a, np.where(a == 2, np.nan, a)))
  assert np.isnan(metrics.spearman(a, np.where(a == 2, np.inf, a)))
  with pytest.raises(ValueError, match="one shape"):
    metrics.spearman(a, a[:1])


def test_average_ranks_are_scipys():
  x = np.random.default_rng(0).integers(0, 5, (3, 40)).astype(np.float32)
  np.testing.assert_array_equal(
    similarity.average_ranks(jnp.asarray(x)),
    scipy.stats.rankdata(x, axis=-1) - 1,
  )


def _ssim_reference(a, b, window="uniform", data_range=1.0):
  """skimage.metrics.structural_similarity's arithmetic (float64): filter
  with reflected borders, drop the (w - 1) / 2 border, mean."""
  a = a.astype(np.float64)
  b = b.astype(np.float64)
  if window == "uniform":
    win, cov_norm = 7, 49 / 48

    def filt(x):
      return scipy.ndimage.uniform_filter(x, size=win)
  else:
    win, cov_norm = 11, 1.0

    def filt(x):
      return scipy.ndimage.gaussian_filter(x, sigma=1.5, truncate=3.5)

  ux, uy = filt(a), filt(b)
  vx = cov_norm * (filt(a * a) - ux * ux)
  vy = cov_norm * (filt(b * b) - uy * uy)
  vxy = cov_norm * (filt(a * b) - ux * uy)
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / (
    (ux**2 + uy**2 + c1) * (vx + vy + c2)
  )
  pad = (win - 1) // 2
  return s[pad:-pad, pad:-pad].mean()


@settings
@hypothesis.given(
  _maps(sides=(11, 12, 24), values=st.floats(0, 1, width=32)),
  st.sampled_from(similarity.WINDOWS),
)
def test_ssim_matches_the_skimage_arithmetic(pair, window):
  a, b = pair
  np.testing.assert_allclose(
    float(metrics.ssim(a, b, window=window)),
    _ssim_reference(a, b, window),
    rtol=1e-4,
    atol=1e-5,
  )


def test_ssim_on_real_sized_maps_and_degenerate_cases():
  rng = np.random.default_rng(1)
  a = rng.random((3, 224, 224)).astype(np.float32)
  b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
  got = np.asarray(jax.jit(metrics.ssim)(a, b))
  expected = [_ssim_reference(x, y) for x, y in zip(a, b)]
  np.testing.assert_allclose(got, expected, rtol=1e-4)
  np.testing.assert_allclose(metrics.ssim(a, a), 1.0, rtol=1e-5)
  zeros = np.zeros((7, 7), np.float32)
  assert float(metrics.ssim(zeros, zeros)) == pytest.approx(1.0)
  a0 = a[0].copy()
  a0[5, 5] = np.nan
  assert np.isnan(metrics.ssim(a0, a[0]))
  with pytest.raises(ValueError, match="7 pixels wide"):
    metrics.ssim(zeros[:6], zeros[:6])
  with pytest.raises(ValueError, match="window 'box'"):
    metrics.ssim(zeros, zeros, window="box")
  # data_range scales the constants: maps in [0, 255]
  np.testing.assert_allclose(
    metrics.ssim(255 * a[0], 255 * b[0], data_range=255.0),
    got[0],
    rtol=1e-4,
  )


def test_vmap_and_batch_axes():
  rng = np.random.default_rng(2)
  a = jnp.asarray(rng.random((2, 3, 9, 9)), jnp.float32)
  b = jnp.asarray(rng.random((2, 3, 9, 9)), jnp.float32)
  for fn in (metrics.spearman, metrics.ssim):
    batched = fn(a, b)
    assert batched.shape == (2, 3)
    np.testing.assert_allclose(jax.vmap(fn)(a, b), batched, atol=1e-6)
    np.testing.assert_allclose(fn(a[1, 2], b[1, 2]), batched[1, 2], atol=1e-6)
