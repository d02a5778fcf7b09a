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
    accuracy                       = right predictions / defined predictions

Nothing disappears silently. A sample whose evidence is undefined (RMA NaN:
empty mask or non-finite heatmap) is in none of the four cells: it is counted
in `right_undefined` / `wrong_undefined`, and it still counts for accuracy. A
sample whose prediction is undefined (non-finite logits) is in none of them
either, nor in accuracy: it is counted in `prediction_undefined`.

Misuse is refused rather than cast: `correct` must be bool, `valid` the 1/0/NaN
of `valid_evidence` (or bool), shapes must be equal, thresholds in [0, 1].
Dtypes and shapes are checked always, under `jax.jit` too. Values are checked
when they are known (eager calls, the Accumulator): ValueError. Under a
transformation they are `checkify.debug_check`s: free and silent under plain
`jax.jit`, reported when the caller wraps it in `jax.experimental.checkify`.
"""

from __future__ import annotations

from flax import struct
import jax
from jax.experimental import checkify
import jax.numpy as jnp
import numpy as np

from rationality_jax.metrics import localisation


def _known_values(x: jax.Array) -> np.ndarray | None:
  """`x` as numpy when its values are known now; None under a transformation
  (tracer) or for a global array not held whole by this process."""
  if isinstance(x, jax.core.Tracer):
    return None
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return None
  return np.asarray(x)


def _check_values(x: jax.Array, predicate, message) -> None:
  """Checks `predicate(x)` holds everywhere.

  Known values: ValueError(message(values, ok)). Under a transformation: a
  `checkify.debug_check` with message(None, None), a no-op unless the caller
  wraps the function in `checkify.checkify`.
  """
  known = _known_values(x)
  if known is None:
    text = message(None, None).replace("{", "{{").replace("}", "}}")
    checkify.debug_check(jnp.all(predicate(x)), text)
    return
  ok = np.asarray(predicate(known))
  if not np.all(ok):
    raise ValueError(message(known, ok))


def _examples(values: np.ndarray | None, ok: np.ndarray | None) -> str:
  if values is None:
    return "other values"
  bad = np.broadcast_to(values, ok.shape)[~ok]
  return (
    f"{values.dtype} {list(values.shape)} with {bad.size} such value(s), "
    f"e.g. {bad[:3].tolist()}"
  )


def _describe(x) -> str:
  """'dtype [shape]' of `x` as the caller passed it (before any conversion)."""
  if not hasattr(x, "dtype"):
    x = np.asarray(x)
  return f"{x.dtype} {list(np.shape(x))}"


def valid_evidence(
  rma: jax.Array,
  threshold: float | jax.Array = 0.5,
  *,
  nonfinite: localisation.Policy = "undefined",
) -> jax.Array:
  """Whether each sample's evidence is valid: RMA >= threshold.

  Args:
    rma: [...] float, from `rma(...)`.
    threshold: scalar or array in [0, 1] broadcasting against `rma` (e.g.
      `rma[..., None]` against a [T] vector of thresholds gives [..., T]).
    nonfinite: how a non-finite RMA is judged.
      "undefined" (default): NaN (undefined evidence), for NaN and +-inf.
      "release": as the release (prediction_rationality/utils/xml_analysis.py,
        `eval_rma`: `0 if es < cls_thres else 1`): NaN is not < threshold, so
        a NaN RMA (a NaN heatmap, or 0 / 0 for a zero heatmap) is valid.
        valid_evidence sees values, not causes: with `rma(...,
        empty_mask="undefined")` an empty mask's NaN would count valid too,
        so pair it with `empty_mask="release"` (as the release does) or use
        `Accumulator`, which keeps each sample's cause.

  Returns:
    float array: 1.0 valid, 0.0 invalid, NaN undefined (only with
    nonfinite="undefined"). Floats rather than bools so that undefined
    samples cannot be counted as invalid by accident; `rationality_counts`
    takes this directly.

  Raises:
    ValueError: a threshold outside [0, 1] or NaN (checked when known; a
      `checkify.debug_check` under a transformation), or an unknown policy.
  """
  localisation.check_policy("nonfinite", nonfinite)
  rma = jnp.asarray(rma)
  dtype = rma.dtype if jnp.issubdtype(rma.dtype, jnp.floating) else jnp.float32
  rma = rma.astype(dtype)
  threshold = jnp.asarray(threshold, dtype)
  _check_values(
    threshold,
    lambda t: (t >= 0) & (t <= 1),
    lambda values, ok: (
      "valid_evidence: `threshold` must lie in [0, 1] (a share of the heatmap "
      f"mass); got {_examples(values, ok)}."
    ),
  )
  if nonfinite == "release":
    return jnp.where(rma < threshold, 0, 1).astype(dtype)
  valid = (rma >= threshold).astype(dtype)
  return jnp.where(jnp.isfinite(rma), valid, jnp.nan)


@struct.dataclass
class Counts:
  """Sample counts of the four rationality cells (+ undefined samples).

  A pytree of integer arrays (scalars, or any shape when counted per axis,
  e.g. per threshold). Counts of separate batches add with `+`; counts of
  shards of one batch reduce with `psum` inside `shard_map`/`pmap`, or with
  `sum_over_hosts` for host-local numpy counts. Under `jax.jit` on a sharded
  global batch no reduction is needed: the sums are already global.

  Fields: `rr`, `rw`, `wr`, `ww` (the cells); `right_undefined`,
  `wrong_undefined` (prediction right / wrong, evidence undefined);
  `prediction_undefined` (no defined prediction, whatever the evidence).
  """

  rr: jax.Array
  rw: jax.Array
  wr: jax.Array
  ww: jax.Array
  right_undefined: jax.Array
  wrong_undefined: jax.Array
  prediction_undefined: jax.Array

  def __add__(self, other: Counts) -> Counts:
    return jax.tree.map(lambda a, b: a + b, self, other)

  @property
  def defined(self) -> jax.Array:
    """Samples in one of the four cells."""
    return self.rr + self.rw + self.wr + self.ww

  @property
  def undefined(self) -> jax.Array:
    """Samples in none of the four cells (evidence or prediction undefined)."""
    return (
      self.right_undefined + self.wrong_undefined + self.prediction_undefined
    )

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
    return cls(*([z] * len(_FIELDS)))

  def as_dict(self) -> dict[str, int]:
    """Plain Python ints (for scalar counts): reports and JSON."""
    return {name: int(getattr(self, name)) for name in _FIELDS}


_FIELDS = (
  "rr",
  "rw",
  "wr",
  "ww",
  "right_undefined",
  "wrong_undefined",
  "prediction_undefined",
)


def _bool_argument(value, name: str, shape, what: str) -> jax.Array:
  """`value` as a bool array of `shape`; ValueError naming `name` otherwise."""
  given = value
  value = jnp.asarray(value)
  if value.dtype != jnp.bool_:
    raise ValueError(
      f"rationality_counts: `{name}` must be a bool array ({what}); got "
      f"{_describe(given)}. Pass a comparison such as `prediction == label`; "
      "ints and floats are refused rather than cast, so 0/1 codes or "
      "probabilities cannot be miscounted."
    )
  if shape is not None and value.shape != shape:
    raise ValueError(
      f"rationality_counts: `{name}` has shape {list(value.shape)}, `valid` "
      f"{list(shape)}; they must be equal (one entry per sample). For counts "
      "per threshold broadcast explicitly, e.g. "
      "jnp.broadcast_to(correct[:, None], valid.shape)."
    )
  return value


def rationality_counts(
  correct: jax.Array,
  valid: jax.Array,
  *,
  where: jax.Array | None = None,
  prediction_defined: jax.Array | None = None,
  axis: int | tuple[int, ...] | None = None,
) -> Counts:
  """Counts the samples of each rationality cell.

  Args:
    correct: [...] bool: prediction == label. Bool dtype only (0/1 ints and
      float probabilities are refused, not cast).
    valid: [...] (the shape of `correct`) from `valid_evidence`: 1.0 valid,
      0.0 invalid, NaN undefined (bool also accepted, then nothing is
      undefined). Any other value, e.g. a raw RMA such as 0.73, is refused.
    where: optional [...] bool; False samples count nowhere (e.g. padding of
      the last batch).
    prediction_defined: optional [...] bool; False where the prediction is
      undefined (non-finite logits): such samples count in
      `prediction_undefined` only, never as right or wrong.
    axis: axes to count over; None (default) counts over all of them, giving
      scalar counts. E.g. axis=0 on [B, T] gives counts per threshold.

  Returns:
    `Counts` of int32 arrays.

  Raises:
    ValueError: a wrong dtype or shape (always), or `valid` values other
      than 1, 0, NaN (when known; a `checkify.debug_check` under a
      transformation). The message names the argument.
  """
  valid, defined, is_valid = _valid_argument(valid)
  correct = _bool_argument(
    correct, "correct", valid.shape, "prediction == label"
  )
  keep = (
    jnp.ones(valid.shape, bool)
    if where is None
    else _bool_argument(where, "where", valid.shape, "keep this sample")
  )
  predicted = (
    jnp.ones(valid.shape, bool)
    if prediction_defined is None
    else _bool_argument(
      prediction_defined,
      "prediction_defined",
      valid.shape,
      "the logits were finite",
    )
  )

  def count(selector):
    return jnp.sum(selector & keep, axis=axis, dtype=jnp.int32)

  right = predicted & correct
  wrong = predicted & ~correct
  invalid = defined & ~is_valid
  return Counts(
    rr=count(right & is_valid),
    rw=count(right & invalid),
    wr=count(wrong & is_valid),
    ww=count(wrong & invalid),
    right_undefined=count(right & ~defined),
    wrong_undefined=count(wrong & ~defined),
    prediction_undefined=count(~predicted),
  )


def _valid_argument(given):
  """(valid, defined, is_valid) of `valid_evidence`'s values (or bools);
  refuses anything else, naming what it expected."""
  valid = jnp.asarray(given)
  if valid.dtype != jnp.bool_ and not jnp.issubdtype(valid.dtype, jnp.floating):
    raise ValueError(
      "rationality_counts: `valid` must be the float 1.0 / 0.0 / NaN of "
      f"valid_evidence(rma, threshold) (or bool); got {_describe(given)}."
    )
  if valid.dtype == jnp.bool_:
    return valid, jnp.ones(valid.shape, bool), valid
  _check_values(
    valid,
    lambda v: (v == 0) | (v == 1) | (v != v),
    lambda values, ok: (
      "rationality_counts: `valid` must hold 1.0 (valid), 0.0 (invalid) or "
      "NaN (undefined), as returned by valid_evidence(rma, threshold); got "
      f"{_examples(values, ok)}. Is it a raw RMA? Pass "
      "valid_evidence(rma, threshold) instead."
    ),
  )
  return valid, ~jnp.isnan(valid), valid == 1


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
  """Right predictions / defined predictions. Undefined-evidence samples are
  included (their prediction is still right or wrong); samples with an
  undefined prediction (non-finite logits) are not: a NaN output is no
  prediction, and argmax would silently call it the first class. They are
  reported in `prediction_undefined`. NaN for zero defined predictions."""
  right = counts.rr + counts.rw + counts.right_undefined
  return _ratio(right, counts.total - counts.prediction_undefined)
