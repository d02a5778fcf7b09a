"""Streaming evaluation: keep per-sample results, summarise at any threshold.

`Accumulator` gathers per-batch, per-sample arrays on the host (prediction
right or wrong, RMA, and any other per-sample score), merges with other
accumulators (other hosts, other shards of an evaluation), saves to and loads
from a `.npz` file, and summarises at any validity threshold. Because it keeps
the per-sample arrays rather than the counts, PT and IR at a new threshold never
need the model again:

    acc = Accumulator()
    for batch in batches:
        out = eval_step(params, batch)          # jitted: logits, rma, ...
        acc.add(correct=out["correct"], rma=out["rma"], where=batch["valid"])
    acc.summary(threshold=0.5)                  # {'accuracy': ..., 'pt': ..., ...}
    acc.curve([0.3, 0.5, 0.7])                  # PT / IR against the threshold
    Accumulator.from_arrays(acc.arrays()).summary(0.6)   # same numbers, no model
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
import os
import zipfile

import jax
import numpy as np

from rationality_jax.metrics import rationality

_REQUIRED = ("correct", "rma")


class Accumulator:
  """Per-sample results of an evaluation, merged across batches and hosts.

  Columns: `correct` (bool), `rma` (float32), optional `mask_area` (int; lets
  the summary tell empty masks from NaN heatmaps), optional `ids` (str), and
  any further per-sample float scores passed by keyword (e.g. `rra`,
  `pointing_game`). Every `add` must give the same columns.
  """

  def __init__(self):
    self._chunks: dict[str, list[np.ndarray]] = {}

  def add(
    self, *, correct, rma, where=None, ids=None, mask_area=None, **scores
  ) -> Accumulator:
    """Appends one batch. Arrays are [B] (or any shape, flattened in C order).

    Args:
      correct: [B] bool, prediction == label.
      rma: [B] float.
      where: optional [B] bool; False rows (batch padding) are dropped.
      ids: optional [B] sample ids (str or bytes).
      mask_area: optional [B] number of mask pixels.
      **scores: further [B] per-sample float scores.
    Returns:
      self, for chaining.
    """
    columns = {
      "correct": np.asarray(correct).astype(bool).reshape(-1),
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
      keep = np.asarray(where).astype(bool).reshape(-1)
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
    arrays = dict(arrays)
    acc = cls()
    acc.add(
      correct=arrays.pop("correct"),
      rma=arrays.pop("rma"),
      ids=arrays.pop("ids", None),
      mask_area=arrays.pop("mask_area", None),
      **arrays,
    )
    return acc

  @classmethod
  def merge(cls, parts: Iterable[Accumulator]) -> Accumulator:
    """One accumulator holding the samples of all `parts`, in order."""
    merged = cls()
    for part in parts:
      if len(part):
        arrays = part.arrays()
        merged.add(
          correct=arrays.pop("correct"),
          rma=arrays.pop("rma"),
          ids=arrays.pop("ids", None),
          mask_area=arrays.pop("mask_area", None),
          **arrays,
        )
    return merged

  def save(self, path: str | os.PathLike) -> None:
    """Writes the columns to `path` (.npz), atomically (temp file + rename)."""
    path = os.fspath(path)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **self.arrays())
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str | os.PathLike) -> Accumulator:
    path = os.fspath(path)
    try:
      with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
      raise ValueError(f"Accumulator.load: cannot read {path!r}: {e}") from e
    return cls.from_arrays(arrays)

  def counts(
    self, threshold: float | Sequence[float] = 0.5
  ) -> rationality.Counts:
    """Counts at one threshold (scalar fields) or several ([T] fields)."""
    arrays = (
      self.arrays()
      if len(self)
      else {"correct": np.zeros(0, bool), "rma": np.zeros(0, np.float32)}
    )
    thresholds = np.asarray(threshold, np.float32)
    rma = arrays["rma"].reshape(-1, *([1] * thresholds.ndim))
    valid = rationality.valid_evidence(rma, thresholds)
    correct = arrays["correct"].reshape(rma.shape)
    counts = rationality.rationality_counts(correct, valid, axis=0)
    return jax.tree.map(np.asarray, counts)

  def summary(self, threshold: float = 0.5) -> dict:
    """Accuracy, PT, IR, mean scores and counts at one threshold (plain Python).

    Mean RMA and the means of other scores are over samples where they are
    defined (not NaN). With `mask_area`, undefined evidence is split into
    `empty_mask` and `nan_rma` (heatmap problems worth investigating).
    """
    counts = self.counts(float(threshold))
    out = {
      "threshold": float(threshold),
      "n": int(counts.total),
      "accuracy": float(rationality.accuracy(counts)),
      "pt": float(rationality.prediction_trustworthiness(counts)),
      "ir": float(rationality.inference_reliability(counts)),
      **counts.as_dict(),
      "undefined": int(counts.undefined),
    }
    if not len(self):
      return out
    arrays = self.arrays()
    if "mask_area" in arrays:
      empty = arrays["mask_area"] == 0
      out["empty_mask"] = int(np.sum(empty))
      out["nan_rma"] = int(np.sum(np.isnan(arrays["rma"]) & ~empty))
    for name, value in arrays.items():
      if name in ("correct", "ids", "mask_area"):
        continue
      defined = ~np.isnan(value)
      out[f"mean_{name}"] = (
        float(np.mean(value[defined])) if defined.any() else float("nan")
      )
    return out

  def curve(self, thresholds: Sequence[float]) -> dict[str, np.ndarray]:
    """PT, IR and counts against the validity threshold: arrays of shape [T]."""
    thresholds = np.asarray(thresholds, np.float32).reshape(-1)
    counts = self.counts(thresholds)
    return {
      "threshold": thresholds,
      "pt": np.asarray(rationality.prediction_trustworthiness(counts)),
      "ir": np.asarray(rationality.inference_reliability(counts)),
      **{
        name: np.asarray(getattr(counts, name))
        for name in ("rr", "rw", "wr", "ww")
      },
    }
