"""Bootstrap intervals: a plain numpy loop on the same indices, properties,
degenerate cases, and the multinomial draw against index resampling."""

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import metrics
from rationality_jax.metrics import bootstrap

settings = hypothesis.settings(deadline=None, max_examples=25)
NAN = np.nan


SIZE = 40  # every example is padded to it (where=False): one compilation


@st.composite
def samples(draw, min_size=1, max_size=SIZE):
  """(correct [N] bool, valid [N] 1/0/NaN, where [N] bool, defined [N] bool):
  n samples, padded to SIZE rows with where=False."""
  n = draw(st.integers(min_size, max_size))
  seed = draw(st.integers(0, 2**31 - 1))
  rng = np.random.default_rng(seed)
  correct = rng.random(SIZE) < draw(st.floats(0, 1))
  valid = np.where(rng.random(SIZE) < draw(st.floats(0, 1)), 1.0, 0.0)
  valid[rng.random(SIZE) < draw(st.sampled_from([0.0, 0.1]))] = NAN
  where = rng.random(SIZE) >= draw(st.sampled_from([0.0, 0.2]))
  where[n:] = False
  defined = rng.random(SIZE) >= draw(st.sampled_from([0.0, 0.1]))
  return correct, valid.astype(np.float32), where, defined


def _reference_statistics(correct, valid, where, defined):
  """Accuracy, PT, IR of one resample, numpy float64, as the study defines them."""
  keep = where & defined
  right = keep & correct
  wrong = keep & ~correct
  rr = np.sum(right & (valid == 1))
  rw = np.sum(right & (valid == 0))
  wr = np.sum(wrong & (valid == 1))

  def ratio(a, b):
    return a / b if b else NAN

  return (
    ratio(np.sum(right), np.sum(keep)),
    ratio(rr, rr + rw),
    ratio(rr, rr + wr),
  )


def _reference(arrays, indices, level=0.95, undefined="drop"):
  """[3 statistics, resamples] by a loop, and their intervals."""
  values = np.array(
    [_reference_statistics(*(x[row] for x in arrays)) for row in indices]
  ).T
  tail = 100 * (1 - level) / 2
  with np.errstate(all="ignore"):
    import warnings

    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)
      bounds = np.nanpercentile(values, [tail, 100 - tail], axis=1).T
  if undefined == "nan":
    bounds[np.isnan(values).any(axis=1)] = NAN
  return values, bounds


def _indices(seed, kept, resamples):
  """[resamples, SIZE] indices drawn from the kept rows (SIZE draws, not
  len(kept): one shape, one compilation; the loop reads the same ones)."""
  rng = np.random.default_rng(seed)
  return kept[rng.integers(0, len(kept), (resamples, SIZE))]


def _ours(arrays, **options):
  correct, valid, where, defined = arrays
  return bootstrap.bootstrap_intervals(
    correct,
    valid,
    where=where,
    prediction_defined=defined,
    key=options.pop("key", jax.random.key(0)),
    **options,
  )


def test_cells_count_as_rationality_counts():
  correct = np.array([1, 1, 0, 0, 1, 0, 1, 0, 1], bool)
  valid = np.array([1, 0, 1, 0, NAN, NAN, 1, 0, 1], np.float32)
  where = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0], bool)
  defined = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1], bool)
  codes = bootstrap.cells(
    correct, valid, where=where, prediction_defined=defined
  )
  np.testing.assert_array_equal(codes, [2, 3, 4, 5, 6, 7, 1, 1, 0])
  assert bootstrap.CELLS[2:6] == ("rr", "rw", "wr", "ww")


@settings
@hypothesis.given(samples())
def test_cells_agree_with_rationality_counts(arrays):
  correct, valid, where, defined = arrays
  codes = np.asarray(
    bootstrap.cells(correct, valid, where=where, prediction_defined=defined)
  )
  counts = metrics.rationality_counts(
    correct, valid, where=where, prediction_defined=defined
  ).as_dict()
  histogram = np.bincount(codes, minlength=8)
  assert {
    name: int(histogram[i]) for i, name in enumerate(bootstrap.CELLS) if i
  } == counts
  statistics = bootstrap.cell_statistics(jnp.asarray(histogram))
  direct = metrics.rationality_counts(
    correct, valid, where=where, prediction_defined=defined
  )
  for name, fn in (
    ("accuracy", metrics.accuracy),
    ("pt", metrics.prediction_trustworthiness),
    ("ir", metrics.inference_reliability),
  ):
    np.testing.assert_array_equal(statistics[name], fn(direct))


@settings
@hypothesis.given(
  samples(), st.integers(0, 2**31 - 1), st.sampled_from(["drop", "nan"])
)
def test_same_indices_agree_with_a_numpy_loop(arrays, seed, undefined):
  kept = np.flatnonzero(arrays[2])
  hypothesis.assume(len(kept) > 0)
  indices = _indices(seed, kept, 50)
  out = _ours(arrays, indices=jnp.asarray(indices), undefined=undefined)
  values, bounds = _reference(arrays, indices, undefined=undefined)
  estimate = _reference_statistics(*arrays)
  for i, name in enumerate(bootstrap.STATISTICS):
    np.testing.assert_allclose(
      out[name], [estimate[i], *bounds[i]], rtol=1e-5, atol=1e-6
    )
    assert int(out[f"{name}_undefined"]) == int(np.isnan(values[i]).sum())


@settings
@hypothesis.given(samples(), samples(), st.integers(0, 2**31 - 1))
def test_paired_same_indices_agree_with_a_numpy_loop(first, second, seed):
  a, b = list(first), list(second)
  b[2] = a[2]  # one `where` for both
  kept = np.flatnonzero(a[2])
  hypothesis.assume(len(kept) > 0)
  indices = _indices(seed, kept, 40)
  out = bootstrap.paired_bootstrap(
    a[0],
    a[1],
    b[0],
    b[1],
    where=a[2],
    prediction_defined_a=a[3],
    prediction_defined_b=b[3],
    key=jax.random.key(0),
    indices=jnp.asarray(indices),
  )
  values_a, _ = _reference(a, indices)
  values_b, _ = _reference(b, indices)
  delta = values_a - values_b
  with np.errstate(all="ignore"):
    import warnings

    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)
      bounds = np.nanpercentile(delta, [2.5, 97.5], axis=1).T
  estimate = np.subtract(_reference_statistics(*a), _reference_statistics(*b))
  for i, name in enumerate(bootstrap.STATISTICS):
    np.testing.assert_allclose(
      out[name], [estimate[i], *bounds[i]], rtol=1e-5, atol=1e-6
    )
    assert int(out[f"{name}_undefined"]) == int(np.isnan(delta[i]).sum())


CELL_MAX = 60


@st.composite
def cell_counts(draw, low=3):
  """Well-behaved data: every one of RR, RW, WR, WW holds >= `low` samples;
  (correct, valid, where), padded to 4 * CELL_MAX rows with where=False."""
  counts = [draw(st.integers(low, CELL_MAX)) for _ in range(4)]
  correct = np.repeat([True, True, False, False], counts)
  valid = np.repeat(np.float32([1, 0, 1, 0]), counts)
  order = np.random.default_rng(sum(counts)).permutation(len(correct))
  pad = 4 * CELL_MAX - len(correct)
  where = np.arange(4 * CELL_MAX) < len(correct)
  return (
    np.pad(correct[order], (0, pad)),
    np.pad(valid[order], (0, pad)),
    where,
  )


@settings
@hypothesis.given(cell_counts(), st.integers(0, 2**16))
def test_estimate_lies_within_its_interval(data, seed):
  correct, valid, where = data
  out = bootstrap.bootstrap_intervals(
    correct, valid, where=where, key=jax.random.key(seed), resamples=500
  )
  for name in bootstrap.STATISTICS:
    estimate, low, high = np.asarray(out[name])
    assert low <= estimate <= high, (name, low, estimate, high)
    assert low < high


@settings
@hypothesis.given(cell_counts(low=5), st.integers(0, 2**16))
def test_intervals_shrink_with_n(data, seed):
  """The same proportions on 4x the samples: about half the width."""
  correct, valid, where = data
  key = jax.random.key(seed)
  small = bootstrap.bootstrap_intervals(correct, valid, where=where, key=key)
  large = bootstrap.bootstrap_intervals(
    np.tile(correct, 4), np.tile(valid, 4), where=np.tile(where, 4), key=key
  )
  for name in bootstrap.STATISTICS:
    np.testing.assert_allclose(large[name][0], small[name][0], rtol=1e-6)
    width_small = float(small[name][2] - small[name][1])
    width_large = float(large[name][2] - large[name][1])
    assert width_large < width_small, name
    assert width_large < 0.75 * width_small, (name, width_small, width_large)


@settings
@hypothesis.given(samples(), st.integers(0, 2**16))
def test_a_method_against_itself_differs_by_exactly_zero(arrays, seed):
  correct, valid, where, defined = arrays
  hypothesis.assume(where.any())
  out = bootstrap.paired_bootstrap(
    correct,
    valid,
    correct,
    valid,
    where=where,
    prediction_defined_a=defined,
    prediction_defined_b=defined,
    key=jax.random.key(seed),
  )
  single = _ours(arrays, key=jax.random.key(seed))
  for name in bootstrap.STATISTICS:
    if np.isnan(single[name][0]):
      assert np.isnan(out[name]).all()
    else:
      np.testing.assert_array_equal(out[name], [0.0, 0.0, 0.0])


def test_multinomial_draw_matches_index_resampling():
  """The cell counts of n indices drawn with replacement are multinomial:
  both ways give the same bootstrap distribution (to Monte Carlo error), and
  its spread is the binomial one for accuracy."""
  rng = np.random.default_rng(0)
  n = 400
  correct = rng.random(n) < 0.7
  valid = (rng.random(n) < np.where(correct, 0.6, 0.3)).astype(np.float32)
  resamples = 4000
  drawn = bootstrap.bootstrap_intervals(
    correct, valid, key=jax.random.key(1), resamples=resamples
  )
  indices = rng.integers(0, n, (resamples, n))
  looped = bootstrap.bootstrap_intervals(
    correct, valid, key=jax.random.key(1), indices=jnp.asarray(indices)
  )
  for name in bootstrap.STATISTICS:
    np.testing.assert_allclose(drawn[name], looped[name], atol=0.012)
  accuracy = correct.mean()
  half_width = 1.96 * np.sqrt(accuracy * (1 - accuracy) / n)
  np.testing.assert_allclose(
    drawn["accuracy"][2] - drawn["accuracy"][1], 2 * half_width, rtol=0.08
  )


def test_undefined_resamples_are_dropped_or_void_the_interval():
  # 2 right predictions with defined evidence among 30: RR + RW = 0 in a
  # resample with probability (28/30)**30 = 0.13.
  correct = np.array([True, True] + [False] * 28)
  valid = np.array([1, 0] + [1] * 28, np.float32)
  key = jax.random.key(3)
  dropped = bootstrap.bootstrap_intervals(correct, valid, key=key)
  voided = bootstrap.bootstrap_intervals(
    correct, valid, key=key, undefined="nan"
  )
  missing = int(dropped["pt_undefined"])
  assert 80 < missing < 190  # binomial(1000, 0.126): 126 +- 3.5 sd
  assert int(voided["pt_undefined"]) == missing
  assert dropped["pt"][0] == 0.5 and np.isfinite(dropped["pt"]).all()
  assert voided["pt"][0] == 0.5 and np.isnan(voided["pt"][1:]).all()
  assert int(dropped["ir_undefined"]) == 0
  np.testing.assert_array_equal(dropped["ir"], voided["ir"])


def test_statistic_undefined_on_the_data_and_no_sample():
  correct = np.array([False, False, False])
  valid = np.array([1, 0, 1], np.float32)
  out = bootstrap.bootstrap_intervals(correct, valid, key=jax.random.key(0))
  assert np.isnan(out["pt"]).all() and int(out["pt_undefined"]) == 1000
  np.testing.assert_array_equal(out["accuracy"], [0.0, 0.0, 0.0])
  np.testing.assert_array_equal(out["ir"], [0.0, 0.0, 0.0])
  empty = bootstrap.bootstrap_intervals(
    correct, valid, where=np.zeros(3, bool), key=jax.random.key(0)
  )
  for name in bootstrap.STATISTICS:
    assert np.isnan(empty[name]).all()


def test_padding_is_not_a_sample_and_keys_are_deterministic():
  rng = np.random.default_rng(5)
  correct = rng.random(60) < 0.6
  valid = (rng.random(60) < 0.5).astype(np.float32)
  where = np.ones(60, bool)
  where[50:] = False
  key = jax.random.key(7)
  padded = bootstrap.bootstrap_intervals(correct, valid, where=where, key=key)
  trimmed = bootstrap.bootstrap_intervals(correct[:50], valid[:50], key=key)
  again = bootstrap.bootstrap_intervals(correct[:50], valid[:50], key=key)
  other = bootstrap.bootstrap_intervals(
    correct[:50], valid[:50], key=jax.random.key(8)
  )
  for name in bootstrap.STATISTICS:
    np.testing.assert_array_equal(padded[name], trimmed[name])
    np.testing.assert_array_equal(again[name], trimmed[name])
  assert any(
    not np.array_equal(other[n], trimmed[n]) for n in bootstrap.STATISTICS
  )


def test_jit_and_vmap():
  rng = np.random.default_rng(2)
  correct = jnp.asarray(rng.random((3, 80)) < 0.6)
  valid = jnp.asarray((rng.random((3, 80)) < 0.5).astype(np.float32))
  keys = jax.random.split(jax.random.key(0), 3)

  def one(c, v, k):
    return bootstrap.bootstrap_intervals(c, v, key=k, resamples=200)

  batched = jax.jit(jax.vmap(one))(correct, valid, keys)
  for i in range(3):
    alone = one(correct[i], valid[i], keys[i])
    for name in bootstrap.STATISTICS:
      np.testing.assert_allclose(batched[name][i], alone[name], rtol=1e-6)


def test_misuse_is_refused():
  correct = np.array([True, False])
  valid = np.array([1.0, 0.0], np.float32)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="undefined='skip'"):
    bootstrap.bootstrap_intervals(correct, valid, key=key, undefined="skip")
  with pytest.raises(ValueError, match="resamples"):
    bootstrap.bootstrap_intervals(correct, valid, key=key, resamples=0)
  with pytest.raises(ValueError, match="level"):
    bootstrap.bootstrap_intervals(correct, valid, key=key, level=95)
  with pytest.raises(ValueError, match="`correct` must be a bool"):
    bootstrap.bootstrap_intervals(np.array([1, 0]), valid, key=key)
  with pytest.raises(ValueError, match="Is it a raw RMA"):
    bootstrap.bootstrap_intervals(correct, np.float32([0.7, 0.2]), key=key)
  with pytest.raises(AssertionError):
    bootstrap.paired_bootstrap(correct, valid, correct[:1], valid[:1], key=key)
