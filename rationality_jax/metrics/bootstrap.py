"""Percentile bootstrap intervals for accuracy, PT and IR, single and paired.

The percentile bootstrap (Efron & Tibshirani, "An Introduction to the
Bootstrap", 1993, ch. 13): draw `resamples` resamples of the n samples with
replacement, compute the statistic on each, and report the (1 - level) / 2
and (1 + level) / 2 quantiles of those values (numpy's default 'linear'
quantile). A paired difference (two methods on the same samples) draws one
set of resamples and takes the difference on each, so what the two share
(the samples' difficulty) cancels.

How it is computed. Accuracy, PT and IR depend on a resample only through
how many of its samples fall in each cell (RR, RW, WR, WW, right/wrong with
undefined evidence, undefined prediction; `cells`). Resampling n samples with
replacement and counting their cells gives counts distributed exactly as
Multinomial(n, cell shares of the data), so each resample is drawn as one
multinomial vector of 8 cell counts (64 joint cells for a pair of methods:
the same resampled sample falls in one cell of each), not as n indices: the
same bootstrap distribution, in O(resamples x cells) time and memory whatever
n (50,000 samples x 1,000 resamples: milliseconds; `benchmarks/metrics.py`).
Counts are int32. ``indices=`` takes explicit resample indices instead
(counted with one scatter-add, O(resamples x n) memory): for reproducing an
external resampling, and for the tests, which compare both against a plain
loop.

Degenerate cases:

* a statistic undefined on a resample (PT when RR + RW = 0, IR when RR + WR
  = 0, accuracy when no prediction is defined; a paired difference when
  either side is): NaN for that resample. ``undefined='drop'`` (default)
  takes the quantiles over the defined resamples and reports how many were
  not (``<stat>_undefined``; a handful of 1,000 is harmless, a large share
  means the interval describes only the resamples that happened to define
  the statistic). ``undefined='nan'`` makes the interval NaN as soon as one
  resample is undefined.
* undefined on the data itself (e.g. no right prediction with defined
  evidence): the estimate is NaN and so is the interval (every resample is
  undefined too).
* samples with ``where=False`` (padding) are not samples: they are never
  drawn, and n counts the others. Samples with undefined evidence or
  prediction are samples: they are drawn, and count where
  `rationality_counts` counts them (accuracy, `Counts.undefined`).
* no sample at all: every estimate and interval is NaN.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from rationality_jax.metrics import rationality

# Each sample's cell (index = code). "excluded" is where=False.
CELLS = (
  "excluded",
  "prediction_undefined",
  "rr",
  "rw",
  "wr",
  "ww",
  "right_undefined",
  "wrong_undefined",
)
STATISTICS = ("accuracy", "pt", "ir")
UNDEFINED_RESAMPLES = ("drop", "nan")


def cells(
  correct: jax.Array,
  valid: jax.Array,
  *,
  where: jax.Array | None = None,
  prediction_defined: jax.Array | None = None,
) -> jax.Array:
  """Each sample's rationality cell: [N] int32 codes into `CELLS`.

  Args:
    correct, valid, where, prediction_defined: [N], as `rationality_counts`
      takes them (the same checks: bool `correct`, `valid` the 1/0/NaN of
      `valid_evidence`).

  Returns:
    [N] int32; ``jnp.bincount(codes, length=8)[2:6]`` are RR, RW, WR, WW of
    `rationality_counts` with the same arguments.
  """
  valid, defined, is_valid = rationality._valid_argument(valid)
  chex.assert_rank(valid, 1)
  correct = rationality._bool_argument(
    correct, "correct", valid.shape, "prediction == label"
  )
  ones = jnp.ones(valid.shape, bool)
  keep = ones if where is None else _flag(where, "where", valid.shape)
  predicted = (
    ones
    if prediction_defined is None
    else _flag(prediction_defined, "prediction_defined", valid.shape)
  )
  code = jnp.select(
    [
      ~keep,
      ~predicted,
      ~defined & correct,
      ~defined,
      is_valid & correct,
      correct,
      is_valid,
    ],
    [0, 1, 6, 7, 2, 3, 4],
    default=5,  # defined, invalid, wrong: WW
  )
  return code.astype(jnp.int32)


def _flag(value, name: str, shape) -> jax.Array:
  return rationality._bool_argument(value, name, shape, "a per-sample flag")


def cell_statistics(counts: jax.Array) -> dict[str, jax.Array]:
  """Accuracy, PT and IR from cell counts: [..., 8] int -> {name: [...]}.

  The formulas (and NaN for a zero denominator) of `rationality.accuracy`,
  `prediction_trustworthiness`, `inference_reliability`; the excluded
  count (code 0) is ignored.
  """
  c = [counts[..., i] for i in range(len(CELLS))]
  counted = rationality.Counts(
    rr=c[2],
    rw=c[3],
    wr=c[4],
    ww=c[5],
    right_undefined=c[6],
    wrong_undefined=c[7],
    prediction_undefined=c[1],
  )
  return {
    "accuracy": rationality.accuracy(counted),
    "pt": rationality.prediction_trustworthiness(counted),
    "ir": rationality.inference_reliability(counted),
  }


def _histogram(codes: jax.Array, length: int) -> jax.Array:
  return jnp.zeros(length, jnp.int32).at[codes].add(1)


def _resampled_counts(key, codes, length: int, resamples: int, indices):
  """[resamples, length] int32 cell counts of each resample (module docs)."""
  if indices is not None:
    indices = jnp.asarray(indices)
    chex.assert_rank(indices, 2)
    drawn = codes[indices]
    rows = jnp.broadcast_to(jnp.arange(drawn.shape[0])[:, None], drawn.shape)
    counts = jnp.zeros((drawn.shape[0], length), jnp.int32)
    return counts.at[rows, drawn].add(1)
  histogram = _histogram(codes, length).at[0].set(0)  # excluded: never drawn
  n = histogram.sum()
  weights = histogram.astype(jnp.float32)  # exact up to 2**24 samples
  # The weights need not sum to 1; with no sample, draw n = 0 from anything.
  weights = jnp.where(n > 0, weights, jnp.ones_like(weights))
  drawn = jax.random.multinomial(
    key, n.astype(jnp.float32), weights, shape=(resamples, length)
  )
  return drawn.astype(jnp.int32)


def _interval(estimate, values, level, undefined: str) -> tuple:
  """([3] estimate, low, high), number of undefined resamples."""
  missing = jnp.isnan(values)
  tail = (1.0 - jnp.asarray(level, jnp.float32)) / 2.0
  bounds = jnp.nanquantile(values, jnp.stack([tail, 1.0 - tail]))
  if undefined == "nan":
    bounds = jnp.where(missing.any(), jnp.nan, bounds)
  bounds = jnp.where(jnp.isnan(estimate), jnp.nan, bounds)
  return (
    jnp.concatenate([estimate[None], bounds]).astype(jnp.float32),
    missing.sum(dtype=jnp.int32),
  )


def _check(resamples: int, undefined: str, level) -> None:
  if undefined not in UNDEFINED_RESAMPLES:
    raise ValueError(
      f"undefined={undefined!r} is not one of {UNDEFINED_RESAMPLES}: 'drop' "
      "takes the quantiles over the resamples that define the statistic, "
      "'nan' gives no interval when one does not."
    )
  if not isinstance(resamples, int) or resamples < 1:
    raise ValueError(f"resamples must be an int >= 1; got {resamples!r}.")
  if isinstance(level, (int, float)) and not 0 < level < 1:
    raise ValueError(f"level must lie in (0, 1); got {level!r}.")


@functools.partial(jax.jit, static_argnames=("resamples", "undefined"))
def _single(key, codes, indices, level, resamples: int, undefined: str):
  length = len(CELLS)
  estimate = cell_statistics(_histogram(codes, length))
  draws = cell_statistics(
    _resampled_counts(key, codes, length, resamples, indices)
  )
  out = {}
  for name in STATISTICS:
    out[name], out[f"{name}_undefined"] = _interval(
      estimate[name], draws[name], level, undefined
    )
  return out


def bootstrap_intervals(
  correct: jax.Array,
  valid: jax.Array,
  *,
  key: jax.Array,
  resamples: int = 1000,
  level: float = 0.95,
  where: jax.Array | None = None,
  prediction_defined: jax.Array | None = None,
  undefined: str = "drop",
  indices: jax.Array | None = None,
) -> dict[str, jax.Array]:
  """Percentile bootstrap intervals of accuracy, PT and IR over the samples.

  Args:
    correct: [N] bool, prediction == label.
    valid: [N] float 1.0 / 0.0 / NaN from `valid_evidence` (or bool).
    key: a `jax.random` key; the same key gives the same intervals.
    resamples: B, the number of resamples (static under jit).
    level: the interval's coverage, in (0, 1); 0.95 gives the 2.5 % and
      97.5 % quantiles.
    where: optional [N] bool; False rows (padding) are not samples.
    prediction_defined: optional [N] bool, as `rationality_counts` takes it.
    undefined: ``'drop'`` or ``'nan'``: what a resample on which a statistic
      is undefined does to its interval (module docstring).
    indices: optional [B, M] int resample indices into the N rows, used
      instead of drawing (then `key` and `resamples` are not read; rows with
      ``where=False`` count nowhere, so draw the indices from the kept rows).

  Returns:
    {'accuracy', 'pt', 'ir': [3] float32 (estimate on all samples, low,
    high), 'accuracy_undefined', 'pt_undefined', 'ir_undefined': int32, the
    resamples on which that statistic is undefined}.
  """
  _check(resamples, undefined, level)
  codes = cells(
    correct, valid, where=where, prediction_defined=prediction_defined
  )
  return _single(key, codes, indices, level, resamples, undefined)


@functools.partial(jax.jit, static_argnames=("resamples", "undefined"))
def _paired(key, codes_a, codes_b, indices, level, resamples, undefined):
  size = len(CELLS)
  joint = codes_a * size + codes_b
  counts = _resampled_counts(key, joint, size * size, resamples, indices)
  counts = counts.reshape(-1, size, size)
  full = _histogram(joint, size * size).reshape(size, size)
  estimate_a = cell_statistics(full.sum(axis=1))
  estimate_b = cell_statistics(full.sum(axis=0))
  draws_a = cell_statistics(counts.sum(axis=2))
  draws_b = cell_statistics(counts.sum(axis=1))
  out = {}
  for name in STATISTICS:
    out[name], out[f"{name}_undefined"] = _interval(
      estimate_a[name] - estimate_b[name],
      draws_a[name] - draws_b[name],
      level,
      undefined,
    )
  return out


def paired_bootstrap(
  correct_a: jax.Array,
  valid_a: jax.Array,
  correct_b: jax.Array,
  valid_b: jax.Array,
  *,
  key: jax.Array,
  resamples: int = 1000,
  level: float = 0.95,
  where: jax.Array | None = None,
  prediction_defined_a: jax.Array | None = None,
  prediction_defined_b: jax.Array | None = None,
  undefined: str = "drop",
  indices: jax.Array | None = None,
) -> dict[str, jax.Array]:
  """Paired percentile bootstrap of method A minus method B on the same samples.

  Row i of the A arrays and of the B arrays must be the same sample (e.g.
  two heatmaps of one model: the same `correct`, two `valid`; or two models
  on one split). Each resample draws the same samples for both methods.

  Args:
    correct_a, valid_a, correct_b, valid_b: [N], as in `bootstrap_intervals`.
    key, resamples, level, undefined, indices: as in `bootstrap_intervals`.
    where: optional [N] bool, shared (a padding row is padding for both).
    prediction_defined_a, prediction_defined_b: optional [N] bool.

  Returns:
    {'accuracy', 'pt', 'ir': [3] float32 (A - B on all samples, low, high),
    '<stat>_undefined': int32, the resamples on which A's or B's statistic
    is undefined}. A method against itself gives exactly [0, 0, 0].
  """
  _check(resamples, undefined, level)
  codes_a = cells(
    correct_a, valid_a, where=where, prediction_defined=prediction_defined_a
  )
  codes_b = cells(
    correct_b, valid_b, where=where, prediction_defined=prediction_defined_b
  )
  chex.assert_equal_shape([codes_a, codes_b])
  return _paired(key, codes_a, codes_b, indices, level, resamples, undefined)
