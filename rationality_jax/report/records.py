"""The per-sample records of an evaluation on disk, and summaries from them.

  records = records.load(run_dir)          # metrics.Accumulator, source order
  records.summarise(run_dir, threshold=0.3)   # accuracy, PT, IR, counts, means
  records.curve(run_dir, [0.3, 0.5, 0.7])     # against the validity threshold

Layout (written by `rationality_jax.run.evaluate`): ``<run>/records/p<i>-of-<n>/
chunk_NNNNNN.npz`` per process (`metrics.Accumulator` columns) and
``heatmaps_NNNNNN.npz`` (pixel heatmaps of the figure examples). No model is
needed to read them: any threshold can be asked for after the fact.
"""

from __future__ import annotations

import glob
import os

import jax
import numpy as np

from rationality_jax import files
from rationality_jax import metrics

RECORDS = "records"
META = "meta.json"
# Integer columns stored beside the Accumulator's own (no mean is reported).
INT_COLUMNS = ("index", "label", "prediction")
# Score columns newer than some records (a run resumed across the update
# that added them): NaN in the chunks that lack them.
LATER_SCORES = ("confidence",)


def process_dir(run_dir: str) -> str:
  """This process's records folder."""
  return os.path.join(
    run_dir, RECORDS, f"p{jax.process_index()}-of-{jax.process_count()}"
  )


def chunk_paths(directory: str, kind: str) -> list[str]:
  """One folder's ``<kind>_NNNNNN.npz`` files ('chunk' or 'heatmaps')."""
  return sorted(glob.glob(os.path.join(directory, f"{kind}_*.npz")))


def all_chunk_paths(run_dir: str, kind: str) -> list[str]:
  """Every process's chunks (and the single-folder layout of older runs)."""
  return sorted(
    glob.glob(os.path.join(run_dir, RECORDS, "*", f"{kind}_*.npz"))
    + glob.glob(os.path.join(run_dir, RECORDS, f"{kind}_*.npz"))
  )


def chunk_index(path: str) -> int:
  return int(os.path.basename(path).split("_")[1].split(".")[0])


def load(run_dir: str) -> metrics.Accumulator:
  """All per-sample records of a run (every process), in source order."""
  paths = all_chunk_paths(run_dir, "chunk")
  if not paths:
    raise FileNotFoundError(
      f"no records in {os.path.join(run_dir, RECORDS)}; run the evaluation "
      "first."
    )
  parts = [metrics.Accumulator.load(p).arrays() for p in paths]
  names = set().union(*parts)
  for part in parts:
    for name in names.intersection(LATER_SCORES).difference(part):
      part[name] = np.full(len(part["correct"]), np.nan, np.float32)
  merged = metrics.Accumulator.merge(
    metrics.Accumulator.from_arrays(p) for p in parts
  )
  arrays = merged.arrays()
  if "index" in arrays:
    order = np.argsort(arrays["index"], kind="stable")
    merged = metrics.Accumulator.from_arrays(
      {k: v[order] for k, v in arrays.items()}
    )
  return merged


def load_heatmaps(run_dir: str) -> dict[str, np.ndarray]:
  """{id: [S, S] float32 heatmap} of the figure examples of a run."""
  out = {}
  for path in all_chunk_paths(run_dir, "heatmaps"):
    with np.load(path) as arrays:
      out.update(zip(arrays["ids"].tolist(), arrays["heatmaps"]))
  return out


def policies(run_dir: str) -> dict[str, str]:
  """The degenerate-case policies a run is summarised under (its meta.json).

  ``{'empty_mask': ..., 'nonfinite': ...}`` (`metrics.POLICIES`); missing
  entries take the metrics' defaults ('undefined').
  """
  path = os.path.join(run_dir, META)
  if not os.path.exists(path):
    return {}
  return dict(files.read_json(path).get("policies", {}))


def summarise_records(
  records: metrics.Accumulator, threshold: float = 0.5, **policy
) -> dict:
  """Accuracy, PT, IR, counts and means of records already loaded.

  policy: ``empty_mask`` / ``nonfinite`` of `metrics.Accumulator.summary`.
  """
  summary = records.summary(threshold, **policy)
  for name in INT_COLUMNS:
    summary.pop(f"mean_{name}", None)
  return summary


def summarise(run_dir: str, threshold: float = 0.5) -> dict:
  """`summarise_records` of a run's records under the run's policies."""
  return summarise_records(load(run_dir), threshold, **policies(run_dir))


def curve(run_dir: str, thresholds) -> dict[str, list]:
  """PT, IR and counts against the validity threshold (the run's policies)."""
  return {
    k: np.asarray(v).tolist()
    for k, v in load(run_dir).curve(thresholds, **policies(run_dir)).items()
  }
