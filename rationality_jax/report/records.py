"""The per-sample records of an evaluation on disk, and summaries from them.

  records = records.load(run_dir)          # metrics.Accumulator, source order
  records.summarise(run_dir, threshold=0.3)   # accuracy, PT, IR, counts, means
  records.curve(run_dir, [0.3, 0.5, 0.7])     # against the validity threshold

Layout (written by `rationality_jax.run.evaluate`): ``<run>/records/p<i>-of-<n>/
chunk_NNNNNN.npz`` per process (`metrics.Accumulator` columns) and
``heatmaps_NNNNNN.npz`` (pixel heatmaps of the figure examples). No model is
needed to read them: any threshold can be asked for after the fact.

Only a finished run is read: `load` and `load_heatmaps` first check the run's
manifest (`rationality_jax.manifest`): its status must be ``complete`` and
every records file must be the one it listed (digest), none missing, none
added; otherwise `IncompleteRunError` names the run and the file. The driver
reads its own records while it writes the outputs that complete the run,
inside ``with records.unverified(run_dir)``.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import glob
import os

import jax
import numpy as np

from rationality_jax import files
from rationality_jax import manifest as manifest_lib
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


def chunk_files(run_dir: str) -> list[str]:
  """Every records file (chunks, heatmaps, gallery), relative to `run_dir`:
  every file `load` and `load_heatmaps` could read."""
  paths = glob.glob(os.path.join(run_dir, RECORDS, "*", "*.npz"))
  paths += glob.glob(os.path.join(run_dir, RECORDS, "*.npz"))
  return sorted(os.path.relpath(p, run_dir) for p in paths)


def records_manifest(run_dir: str) -> dict[str, dict]:
  """{records file: {bytes, sha256[, examples]}} of every records file of a
  run (a chunk's entry with its number of examples): the manifest's
  ``records``."""
  entries = {}
  for name in chunk_files(run_dir):
    entry = manifest_lib.file_entry(run_dir, name)
    if os.path.basename(name).startswith("chunk_"):
      path = os.path.join(run_dir, name)
      entry["examples"] = len(metrics.Accumulator.load(path))
    entries[name] = entry
  return entries


def check(run_dir: str, manifest: dict) -> dict[str, str]:
  """{records file: 'missing' | 'changed' | 'unexpected'} of a complete run
  against its manifest (empty when every file is as it was recorded)."""
  listed = manifest.get("records", {})
  problems = manifest_lib.verify(run_dir, listed)
  for name in chunk_files(run_dir):
    if name not in listed:
      problems[name] = "unexpected"
  return problems


class IncompleteRunError(ValueError):
  """A run's records are not those of a complete run (`require_complete`)."""


_UNVERIFIED: set[str] = set()
_VERIFIED: dict[str, tuple] = {}


@contextlib.contextmanager
def unverified(run_dir: str) -> Iterator[None]:
  """Reads `run_dir`'s records without the manifest's check inside the block:
  the driver's own run, before it completes (or records made by hand)."""
  key = os.path.abspath(run_dir)
  _UNVERIFIED.add(key)
  try:
    yield
  finally:
    _UNVERIFIED.discard(key)


def _state(run_dir: str) -> tuple:
  """What a check depends on: the manifest's and the records' sizes and
  modification times (a check is redone when any of them moves)."""
  names = [manifest_lib.MANIFEST, *chunk_files(run_dir)]
  stats = [os.stat(os.path.join(run_dir, n)) for n in names]
  return tuple((n, s.st_size, s.st_mtime_ns) for n, s in zip(names, stats))


def require_complete(run_dir: str) -> None:
  """Refuses the records of a run that is not complete, or whose records
  differ from those its manifest lists (`IncompleteRunError`, one line
  naming the run and what is wrong). A check that passed is remembered in
  this process until a file's size or modification time changes."""
  key = os.path.abspath(run_dir)
  if key in _UNVERIFIED:
    return
  manifest = manifest_lib.read(run_dir)
  if not manifest:
    raise IncompleteRunError(
      f"{run_dir}: no {manifest_lib.MANIFEST}, so nothing says these records "
      "are complete; evaluate into it with the command"
    )
  status = manifest.get("status")
  if status != manifest_lib.COMPLETE or "records" not in manifest:
    raise IncompleteRunError(
      f"{run_dir}: the run is {status!r}, not complete, so its records may "
      "be partial; rerun its command to finish it"
    )
  state = _state(run_dir)
  if _VERIFIED.get(key) == state:
    return
  problems = check(run_dir, manifest)
  if problems:
    raise IncompleteRunError(
      f"{run_dir}: records changed since the run completed "
      f"({manifest_lib.describe(problems)}); rerun its command to evaluate "
      "them again"
    )
  _VERIFIED[key] = state


def load(run_dir: str) -> metrics.Accumulator:
  """All per-sample records of a complete run (every process), in source
  order (`require_complete` first)."""
  require_complete(run_dir)
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
  """{id: [S, S] float32 heatmap} of the figure examples of a complete run."""
  require_complete(run_dir)
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
