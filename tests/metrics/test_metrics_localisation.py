"""RMA, RRA, pointing game and IoU: hand-computed values, degenerate cases, properties."""

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import metrics

H = np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 0.0]], np.float32)  # total mass 10
M = np.array([[1, 0, 0], [0, 1, 1]], np.uint8)  # mass on mask: 1 + 4 + 0 = 5


class TestRMA:
  def test_hand_computed(self):
    assert float(metrics.rma(H, M)) == pytest.approx(0.5)
    assert float(metrics.rma(H, 1 - M)) == pytest.approx(0.5)
    mask = np.array([[0, 0, 0], [1, 1, 0]], np.uint8)
    assert float(metrics.rma(H, mask)) == pytest.approx(0.7)

  def test_mask_dtypes_are_binarised(self):
    hs = np.stack([H, H])
    signed = 2 * M.astype(np.int8) - 1  # -1 off the object: not on the mask
    for mask in (M.astype(bool), M.astype(np.float32), M * 255, signed):
      assert float(metrics.rma(H, mask)) == pytest.approx(0.5)
      masks = np.stack([mask, 0 * mask])  # a batch: the CPU loop's path
      np.testing.assert_allclose(metrics.rma(hs, masks), [0.5, np.nan])
      np.testing.assert_array_equal(
        metrics.evidence_columns(hs, masks)["mask_area"], [3, 0]
      )

  def test_negative_policies(self):
    h = np.array([[2.0, -2.0], [-1.0, 1.0]], np.float32)
    m = np.array([[1, 1], [0, 0]], np.uint8)
    # clip: [[2, 0], [0, 1]] -> 2 / 3
    assert float(metrics.rma(h, m)) == pytest.approx(2 / 3)
    # abs: [[2, 2], [1, 1]] -> 4 / 6
    assert float(metrics.rma(h, m, negative="abs")) == pytest.approx(4 / 6)
    # keep: inside 0, total 0 -> zero total mass -> 0
    assert float(metrics.rma(h, m, negative="keep")) == 0.0
    h2 = np.array([[3.0, 0.0], [-1.0, 0.0]], np.float32)
    # keep: 3 / 2 = 1.5, outside [0, 1] as documented
    assert float(metrics.rma(h2, m, negative="keep")) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="negative='square'"):
      metrics.rma(h, m, negative="square")

  def test_zero_heatmap_is_zero(self):
    assert float(metrics.rma(np.zeros_like(H), M)) == 0.0
    assert float(metrics.rma(-np.ones_like(H), M)) == 0.0  # all clipped away

  def test_empty_mask_is_nan(self):
    assert np.isnan(metrics.rma(H, np.zeros_like(M)))
    assert np.isnan(metrics.rma(np.zeros_like(H), np.zeros_like(M)))

  def test_nan_propagates(self):
    h = H.copy()
    h[0, 2] = np.nan  # even outside the mask
    for policy in ("clip", "abs", "keep"):
      assert np.isnan(metrics.rma(h, M, negative=policy))

  def test_leading_dims(self):
    hs = np.stack([H, 2 * H, np.zeros_like(H)]).reshape(3, 1, 2, 3)
    out = metrics.rma(hs, np.broadcast_to(M, hs.shape))
    assert out.shape == (3, 1)
    np.testing.assert_allclose(out[:, 0], [0.5, 0.5, 0.0])

  def test_shape_errors_name_the_shapes(self):
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 3\)"):
      metrics.rma(H, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="H, W"):
      metrics.rma(np.ones(4), np.ones(4))

  def test_gradient(self):
    grad = jax.grad(lambda h: metrics.rma(h, M))(jnp.asarray(H))
    # d/dh_i (S_in / S) = (m_i - RMA) / S with S = 10, RMA = 0.5
    np.testing.assert_allclose(grad, (M - 0.5) / 10, rtol=1e-6)
    zero_grad = jax.grad(lambda h: metrics.rma(h, M))(jnp.zeros_like(H))
    assert np.all(np.isfinite(zero_grad))
    empty_grad = jax.grad(lambda h: jnp.nan_to_num(metrics.rma(h, 0 * M)))(H)
    assert np.all(np.isfinite(empty_grad))


class TestRRA:
  def test_hand_computed(self):
    # |M| = 3; top-3 values 4, 3, 2 at (1,1) in, (1,0) out, (0,1) out -> 1/3
    assert float(metrics.relevance_rank_accuracy(H, M)) == pytest.approx(1 / 3)
    m = np.array([[0, 1, 0], [1, 1, 0]], np.uint8)
    assert float(metrics.relevance_rank_accuracy(H, m)) == pytest.approx(1.0)

  def test_ties_use_expectation(self):
    m = np.array([[1, 0], [0, 0]], np.uint8)
    flat = np.ones((2, 2), np.float32)
    assert float(metrics.relevance_rank_accuracy(flat, m)) == pytest.approx(
      0.25
    )
    # top-2 of [5, 1, 1, 1]: 5 (in) + one of three tied ones (1 of 3 inside)
    h = np.array([[5.0, 1.0], [1.0, 1.0]], np.float32)
    m2 = np.array([[1, 1], [0, 0]], np.uint8)
    assert float(metrics.relevance_rank_accuracy(h, m2)) == pytest.approx(
      (1 + 1 / 3) / 2
    )

  def test_degenerate(self):
    assert np.isnan(metrics.relevance_rank_accuracy(H, 0 * M))
    h = H.copy()
    h[0, 0] = np.nan
    assert np.isnan(metrics.relevance_rank_accuracy(h, M))
    full = np.ones_like(M)
    assert float(metrics.relevance_rank_accuracy(H, full)) == 1.0


class TestPointingGame:
  def test_hand_computed(self):
    assert float(metrics.pointing_game(H, M)) == 1.0  # max 4 at (1,1)
    assert float(metrics.pointing_game(H, 1 - M)) == 0.0

  def test_ties_and_degenerate(self):
    flat = np.zeros((2, 3), np.float32)
    assert float(metrics.pointing_game(flat, M)) == pytest.approx(3 / 6)
    assert np.isnan(metrics.pointing_game(H, 0 * M))
    h = H.copy()
    h[1, 2] = np.nan
    assert np.isnan(metrics.pointing_game(h, M))


class TestIoU:
  def test_hand_computed(self):
    h = H / 4  # [[.25,.5,0],[.75,1,0]]; >= 0.5 at (0,1),(1,0),(1,1)
    # intersection {(1,1)} = 1; union {(0,0),(0,1),(1,0),(1,1),(1,2)} = 5
    assert float(metrics.iou(h, M)) == pytest.approx(1 / 5)
    assert float(metrics.iou(h, M, threshold=0.9)) == pytest.approx(1 / 3)
    np.testing.assert_allclose(
      metrics.iou(np.stack([h, h]), np.stack([M, M]), np.array([0.5, 0.9])),
      [1 / 5, 1 / 3],
    )

  def test_degenerate(self):
    assert np.isnan(metrics.iou(H, 0 * M))
    assert float(metrics.iou(np.zeros_like(H), M)) == 0.0


# ---------------------------------------------------------------- properties

# No subnormal values: XLA on CPU flushes them to zero (a map of subnormal
# mass is a zero map there), so scale invariance cannot hold for them.
maps = hnp.arrays(
  np.float32,
  (6, 5),
  elements=st.one_of(st.just(0.0), st.floats(2.0**-20, 1e3, width=32)),
)
binary_masks = hnp.arrays(np.uint8, (6, 5), elements=st.integers(0, 1))
settings = hypothesis.settings(max_examples=60, deadline=None)


@settings
@hypothesis.given(maps, binary_masks)
def test_rma_in_unit_interval(h, m):
  value = float(metrics.rma(h, m))
  if m.sum() == 0:
    assert np.isnan(value)
  else:
    assert 0.0 <= value <= 1.0 + 1e-6


@settings
@hypothesis.given(maps, binary_masks, st.floats(1e-3, 1e3))
def test_rma_scale_invariant(h, m, scale):
  hypothesis.assume(m.sum() > 0)
  a = float(metrics.rma(h, m))
  b = float(metrics.rma(h * np.float32(scale), m))
  assert b == pytest.approx(a, abs=1e-5)


@settings
@hypothesis.given(maps, binary_masks)
def test_rma_one_when_all_mass_inside(h, m):
  hypothesis.assume(m.sum() > 0 and (h * m).sum() > 0)
  assert float(metrics.rma(h * m, m)) == pytest.approx(1.0)


@settings
@hypothesis.given(maps, binary_masks, st.floats(0, 1))
def test_rma_monotone_when_mass_moves_inside(h, m, fraction):
  hypothesis.assume(0 < m.sum() < m.size)
  outside = np.argwhere(m == 0)[0]
  inside = np.argwhere(m == 1)[0]
  moved = h.copy()
  delta = np.float32(fraction) * h[tuple(outside)]
  moved[tuple(outside)] -= delta
  moved[tuple(inside)] += delta
  assert float(metrics.rma(moved, m)) >= float(metrics.rma(h, m)) - 1e-6


@settings
@hypothesis.given(maps, binary_masks)
def test_rra_and_pointing_in_unit_interval(h, m):
  hypothesis.assume(m.sum() > 0)
  for fn in (
    metrics.relevance_rank_accuracy,
    metrics.pointing_game,
    metrics.iou,
  ):
    assert 0.0 <= float(fn(h, m)) <= 1.0 + 1e-6


class TestHeatmapStd:
  """evidence_columns' `heatmap_std`: the spread of each map over its pixels."""

  def test_hand_computed_and_degenerate(self):
    hs = np.stack(
      [
        H,  # mean 10/6
        np.full_like(H, 0.25),  # constant: 0
        np.where(np.eye(2, 3, dtype=bool), 1.0, 0.0).astype(np.float32),
        H,  # NaN below
      ]
    )
    hs[3, 1, 2] = np.nan
    ms = np.stack([M] * 4)
    std = np.asarray(jax.jit(metrics.evidence_columns)(hs, ms)["heatmap_std"])
    mean = 10 / 6
    expected0 = np.sqrt(((np.array([1, 2, 0, 3, 4, 0]) - mean) ** 2).mean())
    np.testing.assert_allclose(std[0], expected0, rtol=1e-6)
    assert std[1] == 0.0
    np.testing.assert_allclose(std[2], np.sqrt(2 / 6 * 4 / 6), rtol=1e-6)
    assert np.isnan(std[3])

  def test_is_of_the_map_as_given_not_after_the_negative_policy(self):
    h = np.array([[[2.0, -2.0], [-2.0, 2.0]]], np.float32)
    m = np.ones((1, 2, 2), np.uint8)
    for negative in ("clip", "abs", "keep"):
      columns = metrics.evidence_columns(h, m, negative=negative)
      np.testing.assert_allclose(columns["heatmap_std"], [2.0])

  @hypothesis.settings(deadline=None, max_examples=25)
  @hypothesis.given(
    hnp.arrays(
      np.float32,
      hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=9),
      elements=st.floats(0, 1, width=32),
    )
  )
  def test_matches_numpy(self, hs):
    masks = np.ones(hs.shape, np.uint8)
    std = np.asarray(metrics.evidence_columns(hs, masks)["heatmap_std"])
    np.testing.assert_allclose(
      std, hs.astype(np.float64).std(axis=(1, 2)), atol=1e-6, rtol=1e-5
    )

  def test_near_constant_map_has_no_cancellation(self):
    """Two passes: a 224 x 224 map 0.5 +- 1e-4 has std 1e-4, not noise."""
    rng = np.random.default_rng(0)
    h = (0.5 + 1e-4 * rng.choice([-1.0, 1.0], (2, 224, 224))).astype(np.float32)
    std = np.asarray(
      metrics.evidence_columns(h, np.ones(h.shape, np.uint8))["heatmap_std"]
    )
    np.testing.assert_allclose(std, h.astype(np.float64).std((1, 2)), rtol=1e-3)

  def test_accumulator_keeps_it_apart_and_merges_old_records(self):
    hs = np.stack([H, np.zeros_like(H)])
    ms = np.stack([M, M])
    new = metrics.Accumulator().add(
      correct=np.array([True, False]), **metrics.evidence_columns(hs, ms)
    )
    old = metrics.Accumulator().add(  # recorded before heatmap_std
      correct=np.array([True]),
      rma=[0.5],
      mask_area=[3],
      heatmap_mass=[10.0],
      heatmap_finite=[True],
    )
    arrays = metrics.Accumulator.merge([new, old]).arrays()
    np.testing.assert_allclose(arrays["heatmap_std"][1], 0.0)
    assert np.isnan(arrays["heatmap_std"][2])
    assert "mean_heatmap_std" not in new.summary()
