"""Valid evidence, the four rationality cells, and PT / IR / accuracy.

Each test sample gets a prediction (right or wrong) and evidence (valid when its
RMA reaches a threshold, the study's 0.5). Samples then fall in four cells:

    RR  right prediction, right (valid) rationale
    RW  right prediction, wrong rationale
    WR  wrong prediction, right rationale
    WW  wrong prediction, wrong rationale

and the study's summaries are

    Prediction Trustworthiness  PT = RR / (RR + RW)
    Inference Reliability       IR = RR / (RR + WR)
    accuracy                       = right predictions / all predictions

A sample whose evidence is undefined (RMA NaN: empty mask or NaN heatmap) is in
none of the four cells: it is counted in `right_undefined` / `wrong_undefined`
so that nothing disappears silently, and it still counts for accuracy.
"""

from __future__ import annotations

from flax import struct
import jax
import jax.numpy as jnp
import numpy as np


def valid_evidence(
  rma: jax.Array, threshold: float | jax.Array = 0.5
) -> jax.Array:
  """Whether each sample's evidence is valid: RMA >= threshold.

  Args:
    rma: [...] float, from `rma(...)`.
    threshold: scalar or array broadcasting against `rma` (e.g. `rma[..., None]`
      against a [T] vector of thresholds gives [..., T]).

  Returns:
    float array: 1.0 valid, 0.0 invalid, NaN where `rma` is NaN (undefined
    evidence). Floats rather than bools so that undefined samples cannot be
    counted as invalid by accident; `rationality_counts` takes this directly.
  """
  rma = jnp.asarray(rma)
  dtype = rma.dtype if jnp.issubdtype(rma.dtype, jnp.floating) else jnp.float32
  rma = rma.astype(dtype)
  valid = (rma >= jnp.asarray(threshold, dtype)).astype(dtype)
  return jnp.where(jnp.isnan(rma), jnp.nan, valid)


@struct.dataclass
class Counts:
  """Sample counts of the four rationality cells (+ undefined evidence).

  A pytree of integer arrays (scalars, or any shape when counted per axis,
  e.g. per threshold). Counts of separate batches add with `+`; counts of
  shards of one batch reduce with `psum` inside `shard_map`/`pmap`, or with
  `sum_over_hosts` for host-local numpy counts. Under `jax.jit` on a sharded
  global batch no reduction is needed: the sums are already global.
  """

  rr: jax.Array
  rw: jax.Array
  wr: jax.Array
  ww: jax.Array
  right_undefined: jax.Array
  wrong_undefined: jax.Array

  def __add__(self, other: Counts) -> Counts:
    return jax.tree.map(lambda a, b: a + b, self, other)

  @property
  def defined(self) -> jax.Array:
    """Samples in one of the four cells."""
    return self.rr + self.rw + self.wr + self.ww

  @property
  def undefined(self) -> jax.Array:
    """Samples with undefined evidence (empty mask or NaN heatmap)."""
    return self.right_undefined + self.wrong_undefined

  @property
  def total(self) -> jax.Array:
    return self.defined + self.undefined

  def psum(self, axis_name) -> Counts:
    """Sum over a named mapped axis (inside shard_map / pmap)."""
    return jax.tree.map(lambda x: jax.lax.psum(x, axis_name), self)

  def sum_over_hosts(self) -> Counts:
    """Sum host-local counts over all JAX processes (identity on one host)."""
    if jax.process_count() == 1:
      return self
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(
      jax.tree.map(np.asarray, self), tiled=False
    )
    return jax.tree.map(lambda x: np.sum(x, axis=0), gathered)

  @classmethod
  def zeros(cls, shape=()) -> Counts:
    z = jnp.zeros(shape, jnp.int32)
    return cls(z, z, z, z, z, z)

  def as_dict(self) -> dict[str, int]:
    """Plain Python ints (for scalar counts): reports and JSON."""
    return {name: int(getattr(self, name)) for name in _FIELDS}


_FIELDS = ("rr", "rw", "wr", "ww", "right_undefined", "wrong_undefined")


def rationality_counts(
  correct: jax.Array,
  valid: jax.Array,
  *,
  where: jax.Array | None = None,
  axis: int | tuple[int, ...] | None = None,
) -> Counts:
  """Counts the samples of each rationality cell.

  Args:
    correct: [...] bool (or {0,1}): prediction == label.
    valid: [...] from `valid_evidence`: 1.0 valid, 0.0 invalid, NaN undefined
      (bool also accepted, then nothing is undefined). Broadcasts against
      `correct` (e.g. [B, 1] correct against [B, T] validity per threshold).
    where: optional [...] bool; False samples count nowhere (e.g. padding of
      the last batch).
    axis: axes to count over; None (default) counts over all of them, giving
      scalar counts. E.g. axis=0 on [B, T] gives counts per threshold.

  Returns:
    `Counts` of int32 arrays.
  """
  correct = jnp.asarray(correct).astype(bool)
  valid = jnp.asarray(valid)
  if valid.dtype == bool:
    defined = jnp.ones(valid.shape, bool)
    is_valid = valid
  else:
    defined = ~jnp.isnan(valid)
    is_valid = defined & (valid > 0.5)
  correct, is_valid, defined = jnp.broadcast_arrays(correct, is_valid, defined)
  if where is not None:
    keep = jnp.broadcast_to(jnp.asarray(where).astype(bool), correct.shape)
  else:
    keep = jnp.ones(correct.shape, bool)

  def count(selector):
    return jnp.sum(selector & keep, axis=axis, dtype=jnp.int32)

  wrong = ~correct
  invalid = defined & ~is_valid
  return Counts(
    rr=count(correct & is_valid),
    rw=count(correct & invalid),
    wr=count(wrong & is_valid),
    ww=count(wrong & invalid),
    right_undefined=count(correct & ~defined),
    wrong_undefined=count(wrong & ~defined),
  )


def _ratio(numerator, denominator) -> jax.Array:
  numerator = jnp.asarray(numerator, jnp.float32)
  denominator = jnp.asarray(denominator, jnp.float32)
  zero = denominator == 0
  return jnp.where(zero, jnp.nan, numerator / jnp.where(zero, 1.0, denominator))


def prediction_trustworthiness(counts: Counts) -> jax.Array:
  """PT = RR / (RR + RW): of the right predictions with defined evidence, the
  share resting on valid evidence. NaN when there is no such prediction."""
  return _ratio(counts.rr, counts.rr + counts.rw)


def inference_reliability(counts: Counts) -> jax.Array:
  """IR = RR / (RR + WR): of the samples with valid evidence, the share
  predicted right. NaN when no sample has valid evidence."""
  return _ratio(counts.rr, counts.rr + counts.wr)


def accuracy(counts: Counts) -> jax.Array:
  """Right predictions / all predictions, undefined-evidence samples included
  (their prediction is still right or wrong). NaN for zero samples."""
  right = counts.rr + counts.rw + counts.right_undefined
  return _ratio(right, counts.total)
