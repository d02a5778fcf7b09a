"""Bilinear upsampling (align_corners=False) and per-image min-max."""

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax.explain import postprocess

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(
  "grid,size",
  [
    ((14, 14), (224, 224)),
    ((7, 7), (224, 224)),
    ((6, 6), (48, 48)),
    ((5, 5), (13, 13)),
    ((3, 5), (12, 20)),
    ((4, 4), (3, 3)),
  ],
)
def test_upsample_matches_torch_bilinear_align_corners_false(grid, size):
  maps = np.random.default_rng(0).standard_normal((2, *grid)).astype(np.float32)
  expected = torch.nn.functional.interpolate(
    torch.from_numpy(maps)[:, None],
    size=size,
    mode="bilinear",
    align_corners=False,
  )[:, 0].numpy()
  got = np.asarray(postprocess.upsample(jnp.asarray(maps), size))
  assert got.shape == (2, *size)
  np.testing.assert_allclose(got, expected, atol=1e-6)


def test_bilinear_matrix_rows_are_convex_weights():
  weights = postprocess.bilinear_matrix(14, 224)
  np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
  assert weights.min() >= 0 and (weights > 0).sum(axis=1).max() == 2
  # the first and last 8 output pixels (half a patch) copy the border patch
  np.testing.assert_array_equal(weights[:8, 0], 1.0)
  np.testing.assert_array_equal(weights[-8:, -1], 1.0)


def test_minmax_hits_zero_and_one_per_image():
  maps = np.random.default_rng(1).standard_normal((3, 5, 7)).astype(np.float32)
  maps[1] *= 100.0
  out = np.asarray(postprocess.minmax_normalize(jnp.asarray(maps)))
  np.testing.assert_allclose(out.min(axis=(1, 2)), 0.0)
  np.testing.assert_allclose(out.max(axis=(1, 2)), 1.0)
  expected = (maps[2] - maps[2].min()) / (maps[2].max() - maps[2].min())
  np.testing.assert_allclose(out[2], expected, atol=1e-6)


def test_minmax_constant_map_is_zero_with_finite_gradient():
  maps = jnp.stack([jnp.zeros((4, 4)), jnp.full((4, 4), 3.5)])
  out = postprocess.minmax_normalize(maps)
  np.testing.assert_array_equal(np.asarray(out), 0.0)
  grad = jax.grad(lambda m: postprocess.minmax_normalize(m).sum())(maps)
  assert np.isfinite(np.asarray(grad)).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_minmax_nonfinite_map_is_all_nan_others_untouched(bad):
  maps = np.ones((2, 3, 3), np.float32)
  maps[0, 1, 1] = bad
  maps[1, 0, 0] = 2.0
  out = np.asarray(postprocess.minmax_normalize(jnp.asarray(maps)))
  assert np.isnan(out[0]).all()
  assert out[1, 0, 0] == 1.0 and out[1].sum() == 1.0


def test_minmax_constant_map_option_reproduces_the_release():
  """constant_map='nan' is numpy's (h - h.min()) / (h.max() - h.min())."""
  maps = np.stack(
    [np.full((4, 4), 3.5, np.float32), np.eye(4, dtype=np.float32)]
  )
  with np.errstate(invalid="ignore"):
    release = (maps - maps.min(axis=(1, 2), keepdims=True)) / np.ptp(
      maps, axis=(1, 2), keepdims=True
    )
  out = np.asarray(postprocess.minmax_normalize(jnp.asarray(maps), "nan"))
  np.testing.assert_array_equal(out, release)  # NaN == NaN for this check
  assert np.isnan(out[0]).all()
  zero = np.asarray(postprocess.minmax_normalize(jnp.asarray(maps), "zero"))
  np.testing.assert_array_equal(zero[0], 0.0)
  np.testing.assert_array_equal(zero[1], out[1])
  with pytest.raises(ValueError, match="constant_map='one' is not one of"):
    postprocess.minmax_normalize(jnp.asarray(maps), "one")


def test_nan_where_nonfinite_marks_whole_samples_only():
  maps = jnp.arange(12.0).reshape(3, 2, 2)
  inputs = [np.ones((3, 5), np.float32), np.ones((3, 2, 2), np.float32)]
  inputs[0][1, 4] = -np.inf
  inputs[1][2, 0, 1] = np.nan
  out = np.asarray(postprocess.nan_where_nonfinite(maps, inputs))
  assert np.isnan(out[1:]).all()
  np.testing.assert_array_equal(out[0], np.asarray(maps[0]))


@hypothesis.settings(deadline=None, max_examples=30)
@hypothesis.given(
  hnp.arrays(np.float32, (4, 4), elements=st.floats(-1e3, 1e3, width=32)),
  st.floats(1e-2, 1e2),
  st.floats(-1e2, 1e2),
)
def test_minmax_is_invariant_to_positive_affine_maps(maps, scale, shift):
  base = np.asarray(postprocess.minmax_normalize(jnp.asarray(maps)))
  moved = np.asarray(
    postprocess.minmax_normalize(jnp.asarray(maps * scale + shift))
  )
  assert ((base >= 0) & (base <= 1)).all()
  if np.ptp(maps) * scale > 1e-2:
    np.testing.assert_allclose(moved, base, atol=1e-3)


def test_patch_pool_is_the_mean_per_patch():
  maps = jnp.arange(2 * 8 * 12, dtype=jnp.float32).reshape(2, 8, 12)
  pooled = np.asarray(postprocess.patch_pool(maps, (2, 3)))
  assert pooled.shape == (2, 2, 3)
  np.testing.assert_allclose(
    pooled[1, 1, 2], np.asarray(maps)[1, 4:, 8:].mean()
  )
  with pytest.raises(ValueError, match="patch grid"):
    postprocess.patch_pool(maps, (3, 3))
