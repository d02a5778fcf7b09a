"""Misuse is refused, not cast: each error names the argument and what came."""

import jax
from jax.experimental import checkify
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import metrics

CORRECT = np.array([True, False, True, False])
VALID = np.array([1.0, 0.0, np.nan, 1.0], np.float32)


@pytest.mark.parametrize(
  "correct",
  [
    np.array([1, 0, 1, 0]),  # 0/1 codes
    np.array([0.9, 0.2, 0.6, 0.4], np.float32),  # probabilities
    np.array([3, 0, 7, 1]),  # predicted classes
  ],
)
def test_correct_must_be_bool(correct):
  with pytest.raises(ValueError, match=r"`correct` must be a bool array"):
    metrics.rationality_counts(correct, VALID)
  with pytest.raises(ValueError, match=rf"got {correct.dtype}"):
    metrics.rationality_counts(correct, VALID)


@pytest.mark.parametrize(
  "valid", [[0.5, 0.73, 0.1, 0.9], [1.0, 0.0, 0.5, 1.0], [2.0, 0, 0, 1]]
)
def test_raw_rma_is_not_validity(valid):
  # It used to be cut at > 0.5, so a raw RMA of 0.5 silently counted invalid.
  valid = np.asarray(valid, np.float32)
  with pytest.raises(ValueError, match=r"`valid` must hold 1.0.*raw RMA"):
    metrics.rationality_counts(CORRECT, valid)


def test_valid_dtype_and_other_arguments():
  with pytest.raises(ValueError, match=r"`valid` must be the float.*int"):
    metrics.rationality_counts(CORRECT, np.array([1, 0, 1, 0]))
  with pytest.raises(ValueError, match=r"`where` must be a bool array"):
    metrics.rationality_counts(CORRECT, VALID, where=np.array([1, 1, 1, 0]))
  with pytest.raises(ValueError, match=r"`prediction_defined` must be a bool"):
    metrics.rationality_counts(
      CORRECT, VALID, prediction_defined=np.ones(4, np.float32)
    )


@pytest.mark.parametrize(
  ("correct_shape", "valid_shape"),
  [((4,), (4, 1)), ((4, 1), (4,)), ((4,), (2, 2))],
)
def test_shapes_must_be_equal(correct_shape, valid_shape):
  # [4] against [4, 1] used to broadcast to 16 "samples".
  correct = np.ones(correct_shape, bool)
  valid = np.ones(valid_shape, np.float32)
  with pytest.raises(ValueError, match=r"`correct` has shape.*`valid`"):
    metrics.rationality_counts(correct, valid)
  with pytest.raises(ValueError, match=r"`where` has shape"):
    metrics.rationality_counts(
      np.ones(valid_shape, bool), valid, where=np.ones(correct_shape, bool)
    )


def test_static_checks_hold_under_jit():
  with pytest.raises(ValueError, match="`correct`"):
    jax.jit(metrics.rationality_counts)(jnp.array([1, 0, 1, 0]), VALID)
  with pytest.raises(ValueError, match="`correct` has shape"):
    jax.jit(metrics.rationality_counts)(CORRECT[:, None], VALID)


def test_value_checks_under_jit_via_checkify():
  raw_rma = np.array([0.5, 0.73, 0.1, 0.9], np.float32)
  counts = jax.jit(metrics.rationality_counts)
  # Plain jit cannot raise on values: the check is a checkify.debug_check.
  assert int(counts(CORRECT, raw_rma).total) == 4
  error, _ = checkify.checkify(counts)(CORRECT, raw_rma)
  with pytest.raises(checkify.JaxRuntimeError, match="`valid` must hold"):
    error.throw()
  error, _ = checkify.checkify(counts)(CORRECT, VALID)
  assert error.get() is None
  error, _ = checkify.checkify(jax.jit(metrics.valid_evidence))(
    np.float32(0.7), np.float32(1.5)
  )
  with pytest.raises(checkify.JaxRuntimeError, match="`threshold` must lie"):
    error.throw()


@pytest.mark.parametrize("threshold", [1.5, -0.1, np.nan, [0.5, 1.5]])
def test_threshold_must_be_a_share(threshold):
  with pytest.raises(ValueError, match=r"`threshold` must lie in \[0, 1\]"):
    metrics.valid_evidence(np.float32(0.7), np.asarray(threshold, np.float32))
  with pytest.raises(ValueError, match="`threshold`"):
    metrics.Accumulator().add(correct=[True], rma=[0.7]).summary(
      float(np.ravel(threshold)[-1])
    )


def test_thresholds_at_the_ends_are_fine():
  np.testing.assert_array_equal(
    metrics.valid_evidence(np.array([0.0, 1.0], np.float32), 0.0), [1, 1]
  )
  np.testing.assert_array_equal(
    metrics.valid_evidence(np.array([0.99, 1.0], np.float32), 1.0), [0, 1]
  )


def test_localisation_shapes_must_be_equal():
  heatmaps = np.ones((3, 2, 3), np.float32)
  for fn in (
    metrics.rma,
    metrics.relevance_rank_accuracy,
    metrics.pointing_game,
    metrics.iou,
    metrics.evidence_columns,
  ):
    with pytest.raises(
      ValueError, match=r"heatmaps \(3, 2, 3\) and masks \(2, 3\) must have"
    ):
      fn(heatmaps, np.ones((2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"heatmaps \(3, 2, 3\) and masks"):
      jax.jit(fn)(heatmaps, np.ones((1, 2, 3), np.uint8))


def test_accumulator_refuses_non_bool_flags():
  with pytest.raises(ValueError, match="`correct` must be bool"):
    metrics.Accumulator().add(correct=[0.2, 0.9], rma=[0.5, 0.5])
  with pytest.raises(ValueError, match="`logits_finite` must be bool"):
    metrics.Accumulator().add(
      correct=[True, False], rma=[0.5, 0.5], logits_finite=[2, 0]
    )
  with pytest.raises(ValueError, match="`where` must be bool"):
    metrics.Accumulator().add(
      correct=[True, False], rma=[0.5, 0.5], where=[0.5, 1.0]
    )
  accepted = metrics.Accumulator().add(correct=[1, 0], rma=[0.5, 0.5])
  assert accepted.arrays()["correct"].dtype == bool
