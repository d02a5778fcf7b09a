"""Streaming evaluation: keep per-sample records, summarise at any threshold.

`Accumulator` gathers per-batch, per-sample arrays on the host (prediction
right or wrong, RMA, what makes a sample degenerate, and any other per-sample
score), merges with other accumulators (other hosts, other shards of an
evaluation), saves to and loads from a `.npz` file, and summarises at any
validity threshold under either degenerate-case policy. Because it keeps the
per-sample records rather than the counts, PT and IR at a new threshold or
under the release's policies never need the model again:

    acc = Accumulator()
    for batch in batches:
        out = eval_step(params, batch)     # jitted: logits, heatmaps, ...
        acc.add(correct=out["correct"], logits_finite=out["logits_finite"],
                **metrics.evidence_columns(out["heatmap"], batch["mask"]),
                where=batch["valid"])
    acc.summary(threshold=0.5)             # {'accuracy': ..., 'pt': ..., ...}
    acc.summary(0.5, empty_mask="release", nonfinite="release")   # the release
    acc.curve([0.3, 0.5, 0.7])             # PT / IR against the threshold
    Accumulator.from_arrays(acc.arrays()).summary(0.6)   # same numbers, no model

The records are the truth: each summary recomputes every sample's evidence
under the policies asked for. Records without the newer columns load as they
are (missing flags read as finite; see `summary` for what then cannot be told).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
import dataclasses
import os
import zipfile

import jax
import numpy as np

from rationality_jax import files
from rationality_jax.metrics import localisation
from rationality_jax.metrics import rationality

_REQUIRED = ("correct", "rma")
# Optional columns with a meaning of their own (never averaged as scores), and
# what a part of a merge that lacks them holds: flags read as finite, an
# unknown mass or spread as NaN (not zero).
_FILL = {
  "logits_finite": True,
  "heatmap_finite": True,
  "heatmap_mass": np.nan,
  "heatmap_std": np.nan,
}
_NOT_SCORES = ("correct", "ids", "mask_area", *_FILL)
# Why a sample is undefined, in order of precedence (a sample has one reason):
# the prediction, then the heatmap, then the mask, then an RMA that is not
# finite for no recorded reason (records without the flags).
REASONS = (
  "nonfinite_logits",
  "nonfinite_heatmap",
  "empty_mask",
  "nonfinite_rma",
)


def _bool_column(value, name: str) -> np.ndarray:
  """[B] bool from bool or 0/1 integers; ValueError naming `name` otherwise."""
  value = np.asarray(value).reshape(-1)
  if value.dtype == bool or value.size == 0:
    return value.astype(bool)
  if np.issubdtype(value.dtype, np.integer) and np.isin(value, (0, 1)).all():
    return value.astype(bool)
  raise ValueError(
    f"Accumulator.add: `{name}` must be bool (or 0/1 integers); got "
    f"{value.dtype} with values such as {np.unique(value)[:4].tolist()}. "
    "Pass a comparison (e.g. `prediction == label`), not scores or "
    "probabilities."
  )


class Accumulator:
  """Per-sample results of an evaluation, merged across batches and hosts.

  Columns:
    correct: bool, the prediction equals the label.
    rma: float32, RMA under the default policies (`metrics.rma`).
    mask_area: optional int, mask pixels (0: empty mask).
    heatmap_mass: optional float32, sum of the heatmap after RMA's negative
      policy (0: a zero map, which the release scores 0 / 0).
    heatmap_finite: optional bool, no NaN / inf in the heatmap.
    logits_finite: optional bool, no NaN / inf in the logits (otherwise the
      prediction is undefined).
    heatmap_std: optional float32, the heatmap's standard deviation over its
      pixels (a diagnostic: not averaged in `summary`).
    ids: optional str.
    any further per-sample float score by keyword (e.g. `rra`).
  `evidence_columns` computes rma, mask_area, heatmap_mass, heatmap_finite
  and heatmap_std in one jitted pass. Every `add` must give the same columns.
  """

  def __init__(self):
    self._chunks: dict[str, list[np.ndarray]] = {}

  def add(
    self,
    *,
    correct,
    rma,
    where=None,
    ids=None,
    mask_area=None,
    heatmap_mass=None,
    heatmap_finite=None,
    logits_finite=None,
    **scores,
  ) -> Accumulator:
    """Appends one batch. Arrays are [B] (or any shape, flattened in C order).

    Args:
      correct: [B] bool (or 0/1 ints), prediction == label.
      rma: [B] float.
      where: optional [B] bool (or 0/1); False rows (batch padding) are dropped.
      ids: optional [B] sample ids (str or bytes).
      mask_area: optional [B] number of mask pixels.
      heatmap_mass: optional [B] float, sum of the heatmap.
      heatmap_finite: optional [B] bool (or 0/1).
      logits_finite: optional [B] bool (or 0/1).
      **scores: further [B] per-sample float scores.
    Returns:
      self, for chaining.
    Raises:
      ValueError: a flag that is not bool-like (named), columns of different
        lengths, or other columns than the earlier batches'.
    """
    columns = {
      "correct": _bool_column(correct, "correct"),
      "rma": np.asarray(rma, np.float32).reshape(-1),
    }
    if ids is not None:
      columns["ids"] = np.asarray(
        [
          i.decode() if isinstance(i, bytes) else str(i)
          for i in np.asarray(ids).reshape(-1)
        ]
      )
    if mask_area is not None:
      columns["mask_area"] = np.asarray(mask_area).astype(np.int64).reshape(-1)
    if heatmap_mass is not None:
      columns["heatmap_mass"] = np.asarray(heatmap_mass, np.float32).reshape(-1)
    for name, flag in (
      ("heatmap_finite", heatmap_finite),
      ("logits_finite", logits_finite),
    ):
      if flag is not None:
        columns[name] = _bool_column(flag, name)
    for name, value in scores.items():
      columns[name] = np.asarray(value, np.float32).reshape(-1)
    n = columns["correct"].shape[0]
    for name, value in columns.items():
      if value.shape[0] != n:
        raise ValueError(
          f"Accumulator.add: column {name!r} has {value.shape[0]} samples, "
          f"'correct' has {n}; every column needs one value per sample."
        )
    if where is not None:
      keep = _bool_column(where, "where")
      if keep.shape[0] != n:
        raise ValueError(
          f"Accumulator.add: 'where' has {keep.shape[0]} entries for {n} "
          "samples."
        )
      columns = {name: value[keep] for name, value in columns.items()}
    if self._chunks and set(columns) != set(self._chunks):
      raise ValueError(
        f"Accumulator.add: columns {sorted(columns)} differ from the earlier "
        f"batches' {sorted(self._chunks)}; pass the same ones every time."
      )
    for name, value in columns.items():
      self._chunks.setdefault(name, []).append(value)
    return self

  def __len__(self) -> int:
    return sum(len(c) for c in self._chunks.get("correct", []))

  def arrays(self) -> dict[str, np.ndarray]:
    """All samples so far, one concatenated array per column."""
    merged = {
      name: np.concatenate(chunks) for name, chunks in self._chunks.items()
    }
    self._chunks = {name: [value] for name, value in merged.items()}
    return dict(merged)

  @classmethod
  def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Accumulator:
    """Rebuilds an accumulator from `arrays()` output or saved records."""
    missing = [name for name in _REQUIRED if name not in arrays]
    if missing:
      raise KeyError(
        f"Accumulator.from_arrays: missing column(s) {missing}; got "
        f"{sorted(arrays)}. 'correct' and 'rma' are required."
      )
    return cls().add(**arrays)

  @classmethod
  def merge(cls, parts: Iterable[Accumulator]) -> Accumulator:
    """One accumulator holding the samples of all `parts`, in order.

    Parts recorded with and without the optional flag columns (e.g. a run
    resumed across a code update) merge: the missing flags read as finite
    and a missing heatmap mass as unknown (NaN).
    """
    parts = [part.arrays() for part in parts if len(part)]
    names = set().union(*parts) if parts else set()
    merged = cls()
    for arrays in parts:
      n = len(arrays["correct"])
      for name in names.intersection(_FILL).difference(arrays):
        arrays[name] = np.full(n, _FILL[name])
      merged.add(**arrays)
    return merged

  def save(self, path: str | os.PathLike) -> None:
    """Writes the columns to `path` (.npz), atomically (temp file + rename)."""
    files.write_npz(path, **self.arrays())

  @classmethod
  def load(cls, path: str | os.PathLike) -> Accumulator:
    path = os.fspath(path)
    try:
      with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
      raise ValueError(f"Accumulator.load: cannot read {path!r}: {e}") from e
    return cls.from_arrays(arrays)

  def _judged(
    self, empty_mask: str, nonfinite: str
  ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(columns, RMA under the policies [N], reason codes [N]).

    Reason 0: defined; i > 0: undefined because of REASONS[i - 1].
    """
    localisation.check_policy("empty_mask", empty_mask)
    localisation.check_policy("nonfinite", nonfinite)
    arrays = (
      self.arrays()
      if len(self)
      else {"correct": np.zeros(0, bool), "rma": np.zeros(0, np.float32)}
    )
    n = len(arrays["correct"])
    finite_logits = arrays.get("logits_finite", np.ones(n, bool))
    finite_heatmap = arrays.get("heatmap_finite", np.ones(n, bool))
    empty = arrays.get("mask_area", np.ones(n)) == 0
    massless = arrays.get("heatmap_mass", np.ones(n)) == 0
    value = arrays["rma"].copy()
    if "release" in (empty_mask, nonfinite) and "mask_area" not in arrays:
      unexplained = np.isnan(value) & finite_heatmap
      if unexplained.any():
        raise ValueError(
          f"Accumulator: {int(unexplained.sum())} sample(s) have a NaN RMA "
          "and no 'mask_area' (nor a false 'heatmap_finite') to say why; "
          "the release policies score an empty mask and a NaN heatmap "
          "differently. Record mask_area (metrics.evidence_columns) or use "
          "empty_mask='undefined', nonfinite='undefined'."
        )
    if empty_mask == "release":
      value[empty & finite_heatmap] = 0.0  # 0 / sum(H)
    if nonfinite == "release":
      value[massless | ~finite_heatmap] = np.nan  # 0 / 0; NaN through the sums
    reason = np.zeros(n, np.int8)
    if nonfinite == "undefined":
      reason[~np.isfinite(value)] = 4
    if empty_mask == "undefined":
      reason[empty] = 3
    if nonfinite == "undefined":
      reason[~finite_heatmap] = 2
      reason[~finite_logits] = 1
    return arrays, value, reason

  def _evaluate(self, thresholds: np.ndarray, empty_mask: str, nonfinite: str):
    """(columns, RMA under the policies, reason codes, Counts [T])."""
    arrays, value, reason = self._judged(empty_mask, nonfinite)
    valid = np.array(
      rationality.valid_evidence(
        value[:, None], thresholds.reshape(1, -1), nonfinite=nonfinite
      )
    )
    valid[reason != 0] = np.nan
    shape = valid.shape
    counts = rationality.rationality_counts(
      np.broadcast_to(arrays["correct"][:, None], shape),
      valid,
      prediction_defined=np.broadcast_to((reason != 1)[:, None], shape),
      axis=0,
    )
    return arrays, value, reason, jax.tree.map(np.asarray, counts)

  def evidence(
    self,
    threshold: float = 0.5,
    *,
    empty_mask: localisation.Policy = "undefined",
    nonfinite: localisation.Policy = "undefined",
  ) -> dict[str, np.ndarray]:
    """Every sample's evidence under the policies of `summary`.

    Returns:
      {'rma': [N] float32 (as the policies score it), 'valid': [N] float
      (1.0 valid, 0.0 invalid, NaN undefined), 'reason': [N] int8 (0
      defined, i > 0 undefined because of REASONS[i - 1])}.
    """
    _, value, reason = self._judged(empty_mask, nonfinite)
    valid = np.array(
      rationality.valid_evidence(
        value, np.float32(threshold), nonfinite=nonfinite
      )
    )
    valid[reason != 0] = np.nan
    return {"rma": value, "valid": valid, "reason": reason}

  def counts(
    self,
    threshold: float | Sequence[float] = 0.5,
    *,
    empty_mask: localisation.Policy = "undefined",
    nonfinite: localisation.Policy = "undefined",
  ) -> rationality.Counts:
    """Counts at one threshold (scalar fields) or several ([T] fields), under
    the policies of `summary`."""
    thresholds = np.asarray(threshold, np.float32)
    *_, counts = self._evaluate(thresholds, empty_mask, nonfinite)
    return jax.tree.map(lambda x: x.reshape(thresholds.shape), counts)

  def summary(
    self,
    threshold: float = 0.5,
    *,
    empty_mask: localisation.Policy = "undefined",
    nonfinite: localisation.Policy = "undefined",
  ) -> dict:
    """Accuracy, PT, IR, counts and mean scores at one threshold (plain Python).

    Args:
      threshold: validity threshold on RMA, in [0, 1].
      empty_mask, nonfinite: the policies of `metrics.rma` and
        `valid_evidence`, applied to the records. "undefined" (default):
        empty masks, non-finite heatmaps and non-finite logits make a sample
        undefined, counted apart by reason. "release": the release's
        arithmetic (empty mask: RMA 0, invalid; NaN heatmap or a zero map's
        0 / 0: valid; non-finite logits: the argmax prediction, as recorded
        in `correct`, counts).

    Returns:
      threshold, n (all samples), accuracy (over defined predictions), pt,
      ir, the `Counts` fields (rr, rw, wr, ww, right_undefined,
      wrong_undefined, prediction_undefined), undefined (their sum), one
      `undefined_<reason>` per REASONS (a partition of `undefined`),
      policy_empty_mask, policy_nonfinite, and mean_<score> for rma (under
      the policies) and every further score, over the samples in the four
      cells whose score is finite.

    What old records cannot tell: without heatmap_mass no map counts as a
    zero map; without mask_area a NaN RMA cannot be told from a NaN heatmap,
    so the release policies refuse such records (ValueError).
    """
    arrays, value, reason, counts = self._evaluate(
      np.float32(threshold), empty_mask, nonfinite
    )
    counts = jax.tree.map(lambda x: x.reshape(()), counts)
    out = {
      "threshold": float(threshold),
      "n": int(counts.total),
      "accuracy": float(rationality.accuracy(counts)),
      "pt": float(rationality.prediction_trustworthiness(counts)),
      "ir": float(rationality.inference_reliability(counts)),
      **counts.as_dict(),
      "undefined": int(counts.undefined),
      **{
        f"undefined_{name}": int(np.sum(reason == i))
        for i, name in enumerate(REASONS, start=1)
      },
      "policy_empty_mask": empty_mask,
      "policy_nonfinite": nonfinite,
    }
    if not len(self):
      return out
    scores = {"rma": value}
    scores.update(
      (name, column)
      for name, column in arrays.items()
      if name not in (*_NOT_SCORES, "rma")
    )
    for name, column in scores.items():
      counted = (reason == 0) & np.isfinite(column)
      out[f"mean_{name}"] = (
        float(np.mean(column[counted])) if counted.any() else float("nan")
      )
    return out

  def curve(
    self,
    thresholds: Sequence[float],
    *,
    empty_mask: localisation.Policy = "undefined",
    nonfinite: localisation.Policy = "undefined",
  ) -> dict[str, np.ndarray]:
    """`summary`'s rates and counts against the threshold: arrays of shape [T].

    Keys: threshold, accuracy, pt, ir, the `Counts` fields, undefined and
    undefined_<reason> (the last ones do not depend on the threshold).
    """
    thresholds = np.asarray(thresholds, np.float32).reshape(-1)
    counts = self.counts(thresholds, empty_mask=empty_mask, nonfinite=nonfinite)
    _, _, reason = self._judged(empty_mask, nonfinite)
    return {
      "threshold": thresholds,
      "accuracy": np.asarray(rationality.accuracy(counts)),
      "pt": np.asarray(rationality.prediction_trustworthiness(counts)),
      "ir": np.asarray(rationality.inference_reliability(counts)),
      **{
        field.name: getattr(counts, field.name)
        for field in dataclasses.fields(counts)
      },
      "undefined": np.asarray(counts.undefined),
      **{
        f"undefined_{name}": np.full(thresholds.shape, np.sum(reason == i))
        for i, name in enumerate(REASONS, start=1)
      },
    }
