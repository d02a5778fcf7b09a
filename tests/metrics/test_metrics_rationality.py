"""Valid evidence, counts, PT, IR and accuracy."""

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import numpy as np
import pytest

from rationality_jax import metrics

RMA = np.array([0.9, 0.2, 0.7, 0.1, np.nan, 0.5, np.nan], np.float32)
CORRECT = np.array([1, 1, 0, 0, 1, 1, 0], bool)


def test_valid_evidence():
  np.testing.assert_array_equal(
    metrics.valid_evidence(RMA), [1, 0, 1, 0, np.nan, 1, np.nan]
  )
  np.testing.assert_array_equal(
    metrics.valid_evidence(RMA, threshold=0.8), [1, 0, 0, 0, np.nan, 0, np.nan]
  )
  per_threshold = metrics.valid_evidence(RMA[:, None], np.array([0.1, 0.95]))
  assert per_threshold.shape == (7, 2)
  np.testing.assert_array_equal(
    per_threshold[:4], [[1, 0], [1, 0], [1, 0], [1, 0]]
  )


def test_counts_hand_computed():
  counts = metrics.rationality_counts(CORRECT, metrics.valid_evidence(RMA))
  assert counts.as_dict() == {
    "rr": 2,
    "rw": 1,
    "wr": 1,
    "ww": 1,
    "right_undefined": 1,
    "wrong_undefined": 1,
    "prediction_undefined": 0,
  }
  assert int(counts.defined) == 5 and int(counts.undefined) == 2
  assert int(counts.total) == 7
  assert float(metrics.prediction_trustworthiness(counts)) == pytest.approx(
    2 / 3
  )
  assert float(metrics.inference_reliability(counts)) == pytest.approx(2 / 3)
  assert float(metrics.accuracy(counts)) == pytest.approx(4 / 7)


def test_counts_where_and_axis():
  valid = metrics.valid_evidence(RMA)
  where = np.array([1, 1, 1, 1, 1, 0, 0], bool)
  counts = metrics.rationality_counts(CORRECT, valid, where=where)
  assert counts.as_dict() == {
    "rr": 1,
    "rw": 1,
    "wr": 1,
    "ww": 1,
    "right_undefined": 1,
    "wrong_undefined": 0,
    "prediction_undefined": 0,
  }
  valid = metrics.valid_evidence(RMA[:, None], np.array([0.0, 1.0]))
  per_threshold = metrics.rationality_counts(
    np.broadcast_to(CORRECT[:, None], valid.shape), valid, axis=0
  )
  np.testing.assert_array_equal(per_threshold.rr, [3, 0])
  np.testing.assert_array_equal(per_threshold.ww, [0, 2])
  bool_counts = metrics.rationality_counts(
    CORRECT[:4], np.array([1, 0, 1, 0], bool)
  )
  assert bool_counts.as_dict()["rr"] == 1 and int(bool_counts.undefined) == 0


def test_empty_denominators_are_nan():
  nothing_right = metrics.rationality_counts(np.zeros(3, bool), np.ones(3))
  assert np.isnan(metrics.prediction_trustworthiness(nothing_right))
  assert float(metrics.inference_reliability(nothing_right)) == 0.0
  nothing_valid = metrics.rationality_counts(np.ones(3, bool), np.zeros(3))
  assert np.isnan(metrics.inference_reliability(nothing_valid))
  assert float(metrics.prediction_trustworthiness(nothing_valid)) == 0.0
  empty = metrics.Counts.zeros()
  for fn in (
    metrics.accuracy,
    metrics.prediction_trustworthiness,
    metrics.inference_reliability,
  ):
    assert np.isnan(fn(empty))


def test_counts_add_and_psum():
  valid = metrics.valid_evidence(RMA)
  a = metrics.rationality_counts(CORRECT[:3], valid[:3])
  b = metrics.rationality_counts(CORRECT[3:], valid[3:])
  whole = metrics.rationality_counts(CORRECT, valid)
  assert (a + b).as_dict() == whole.as_dict()
  per_device = jax.vmap(
    lambda c, v: metrics.rationality_counts(c, v).psum("batch"),
    axis_name="batch",
  )(CORRECT[:6].reshape(3, 2), valid[:6].reshape(3, 2))
  expected = metrics.rationality_counts(CORRECT[:6], valid[:6])
  for name, value in expected.as_dict().items():
    np.testing.assert_array_equal(getattr(per_device, name), [value] * 3)
  assert (
    metrics.Counts.zeros().sum_over_hosts().as_dict()
    == metrics.Counts.zeros().as_dict()
  )


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
  hnp.arrays(
    np.float32,
    st.integers(0, 40),
    elements=st.one_of(st.floats(0, 1, width=32), st.just(np.nan)),
  ),
  st.data(),
  st.floats(0, 1),
)
def test_counts_sum_to_non_degenerate_samples(rma, data, threshold):
  correct = data.draw(hnp.arrays(bool, rma.shape))
  counts = metrics.rationality_counts(
    correct, metrics.valid_evidence(rma, threshold)
  )
  assert int(counts.defined) == int(np.sum(~np.isnan(rma)))
  assert int(counts.total) == rma.shape[0]
  assert int(counts.right_undefined) == int(np.sum(correct & np.isnan(rma)))
  pt = float(metrics.prediction_trustworthiness(counts))
  ir = float(metrics.inference_reliability(counts))
  for value in (pt, ir):
    assert np.isnan(value) or 0.0 <= value <= 1.0
