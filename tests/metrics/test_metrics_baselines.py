"""Chance levels: a uniform map's RMA is the mask's share of the image."""

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import metrics


def test_hand_computed():
  masks = np.zeros((4, 4, 5), np.uint8)
  masks[0, :2, :5] = 1  # 10 of 20 pixels: exactly the threshold
  masks[1, 0, 0] = 1  # 1 of 20
  masks[2] = 7  # every pixel, any value > 0
  # masks[3] empty
  uniform = np.asarray(metrics.uniform_map_rma(masks))
  np.testing.assert_array_equal(uniform[:3], np.float32([0.5, 0.05, 1.0]))
  assert np.isnan(uniform[3])
  out = metrics.uniform_map_baseline(uniform)
  np.testing.assert_allclose(out["mean_rma"], (0.5 + 0.05 + 1.0) / 3)
  np.testing.assert_allclose(out["valid_share"], 2 / 3)  # 0.5 >= 0.5 is valid
  assert int(out["samples"]) == 3
  curve = metrics.uniform_map_baseline(uniform, jnp.array([0.0, 0.51, 1.0]))
  np.testing.assert_allclose(curve["valid_share"], [1.0, 1 / 3, 1 / 3])
  kept = metrics.uniform_map_baseline(
    uniform, where=np.array([False, True, True, True])
  )
  np.testing.assert_allclose(kept["mean_rma"], 0.525)
  np.testing.assert_allclose(kept["valid_share"], 0.5)


def test_from_areas_matches_masks():
  masks = np.zeros((2, 6, 6), bool)
  masks[0, 1:4, 1:3] = True
  np.testing.assert_array_equal(
    metrics.uniform_map_rma_from_areas(jnp.array([6, 0]), 36),
    metrics.uniform_map_rma(masks),
  )
  columns = metrics.evidence_columns(np.ones((2, 6, 6), np.float32), masks)
  np.testing.assert_array_equal(
    metrics.uniform_map_rma_from_areas(columns["mask_area"], 36),
    metrics.uniform_map_rma(masks),
  )
  with pytest.raises(ValueError, match="integer pixel counts"):
    metrics.uniform_map_rma_from_areas(jnp.array([0.5]), 36)


@hypothesis.settings(deadline=None, max_examples=25)
@hypothesis.given(
  hnp.arrays(
    np.uint8,
    st.tuples(st.just(6), st.integers(1, 9), st.integers(1, 9)),
    elements=st.integers(0, 1),
  ),
  st.floats(0, 1, width=32),
)
def test_is_rma_of_a_constant_map_and_the_share_is_numpy(masks, threshold):
  uniform = np.asarray(metrics.uniform_map_rma(masks))
  for value in (1.0, 0.37):
    np.testing.assert_allclose(
      uniform,
      metrics.rma(np.full(masks.shape, value, np.float32), masks),
      rtol=1e-6,
    )
  area = masks.reshape(6, -1).sum(1)
  share = area / masks[0].size
  defined = area > 0
  out = metrics.uniform_map_baseline(uniform, threshold)
  assert int(out["samples"]) == defined.sum()
  if defined.any():
    np.testing.assert_allclose(out["mean_rma"], share[defined].mean(), 1e-6)
    # float32 shares may round across a threshold within 1e-7 of them
    hypothesis.assume(np.abs(share - threshold).min() > 1e-6)
    np.testing.assert_allclose(
      out["valid_share"], (share[defined] >= threshold).mean(), 1e-6
    )
  else:
    assert np.isnan(out["mean_rma"]) and np.isnan(out["valid_share"])


def test_jit_and_refusals():
  masks = jnp.zeros((3, 4, 4)).at[:, :2].set(1)
  jitted = jax.jit(
    lambda m: metrics.uniform_map_baseline(metrics.uniform_map_rma(m))
  )(masks)
  np.testing.assert_allclose(jitted["valid_share"], 1.0)
  with pytest.raises(ValueError, match=r"\[\.\.\., H, W\]"):
    metrics.uniform_map_rma(jnp.ones(4))
  with pytest.raises(ValueError, match="threshold"):
    metrics.uniform_map_baseline(jnp.ones(3), 1.5)
  with pytest.raises(ValueError, match="`where` must be a bool"):
    metrics.uniform_map_baseline(jnp.ones(3), where=jnp.ones(3))
