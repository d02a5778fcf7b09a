"""The host side of the evaluation loop: one process's records, chunk by chunk.

  rec = Recorder(out_dir, name, figure_ids, batches_per_chunk)
  rec.resume(iterator)                      # after a kill: where the marker says
  n = rec.record(batches, local, out, state)  # per finished batch: n kept
  rec.finish(iterator.get_state(), shard_total)

Layout (this process's folder, `rationality_jax.report.records.process_dir`):

    chunk_NNNNNN.npz     `metrics.Accumulator` columns of the chunk's samples
    heatmaps_NNNNNN.npz  pixel heatmaps of the figure examples among them
    gallery_NNNNNN.npz   thumbnails of the samples report.html shows
                         (`rationality_jax.report.gallery`)
    progress.json        chunks written, the input iterator's state after
                         them, and ``complete`` once the shard is done

A chunk is written, then the marker that counts it: a kill in between leaves
a chunk the marker does not count, which `resume` deletes and recomputes.
Ids already recorded by any process are never recorded twice.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from rationality_jax import console
from rationality_jax import files
from rationality_jax import metrics
from rationality_jax.report import gallery as gallery_lib
from rationality_jax.report import records

PROGRESS = "progress.json"
# The step's columns `record` passes by name; every other one is recorded
# as it comes (rra, pointing_game, heatmap_mass, heatmap_std, the finite
# flags, the deletion / insertion AUCs).
NAMED_COLUMNS = ("correct", "rma", "mask_area", "prediction")
FLAG_COLUMNS = ("logits_finite", "heatmap_finite")


class Recorder:
  """Records of this process's shard of one evaluation (module docstring)."""

  def __init__(
    self,
    out_dir: str,
    name: str,
    figure_ids=(),
    batches_per_chunk: int = 1,
    positions=None,
    gallery: gallery_lib.Plan | None = None,
  ):
    self.out_dir = out_dir
    self.name = name
    self.figure_ids = set(figure_ids)
    self.batches_per_chunk = batches_per_chunk
    # A subset's position -> the split's (the records' `index`).
    self.positions = None if positions is None else np.asarray(positions)
    self.directory = records.process_dir(out_dir)
    os.makedirs(self.directory, exist_ok=True)
    self.progress_path = os.path.join(self.directory, PROGRESS)
    self.chunk = 0
    self.done_ids: set[str] = set()
    self.acc, self.figures = metrics.Accumulator(), {}
    self.gallery = gallery.keeper() if gallery else None

  def _progress(self) -> dict | None:
    if not os.path.exists(self.progress_path):
      return None
    return files.read_json(self.progress_path)

  def reopen(self) -> None:
    """Makes this shard incomplete again, keeping its chunks, for a repair
    that evaluates missing examples (read anew: no iterator state)."""
    progress = self._progress() or {"chunks": 0}
    files.write_json(
      self.progress_path,
      {"chunks": progress["chunks"], "iterator": None, "complete": False},
    )

  def shard_complete(self) -> bool:
    """This process's shard was finished by an earlier run."""
    progress = self._progress()
    return bool(progress and progress.get("complete", False))

  def resume(self, iterator) -> None:
    """Continues after the last marker: restores `iterator` (or, when its
    workers differ from the saved state's, reads from the start), drops
    chunks the marker does not count and collects every recorded id."""
    progress = self._progress()
    if progress is not None:
      self.chunk = progress["chunks"]
      saved = progress["iterator"]  # None: a repair reads its subset anew
      mismatch = None if saved is None else iterator.worker_mismatch(saved)
      if saved is not None and mismatch is None:
        iterator.set_state(saved)
      elif (
        saved is not None
      ):  # the input state is per worker; the recorded ids are skipped
        console.warning(
          f"{self.name}: {mismatch}: reading from the start, the examples "
          "already recorded are not evaluated again"
        )
      for kind in ("chunk", "heatmaps", gallery_lib.KIND):
        for path in records.chunk_paths(self.directory, kind):
          if records.chunk_index(path) >= self.chunk:  # after the marker
            os.remove(path)
    if self.gallery is not None:
      self.gallery.resume(records.chunk_paths(self.directory, gallery_lib.KIND))
    for path in records.all_chunk_paths(self.out_dir, "chunk"):
      ids = metrics.Accumulator.load(path).arrays()["ids"]
      self.done_ids.update(ids.tolist())
    if self.done_ids:
      console.stage(
        f"{self.name}: resuming ({len(self.done_ids)} examples recorded)"
      )

  def record(self, batches: int, local: dict, out: dict, state: dict) -> int:
    """One finished batch: its new samples' records and figure heatmaps, a
    chunk and marker every ``batches_per_chunk`` batches. Returns how many
    samples it kept (padding and ids already recorded are not)."""
    ids = np.asarray(
      [i.decode() if isinstance(i, bytes) else str(i) for i in local["id"]]
    )
    host = jax.device_get({k: v for k, v in out.items() if k != "heatmap"})
    keep = np.asarray(local["valid"]) & np.asarray(
      [i not in self.done_ids for i in ids]
    )
    self._warn_nonfinite(host, keep)
    # Every per-sample column of the step: scores, flags, evidence, AUCs.
    columns = {k: v for k, v in host.items() if k not in NAMED_COLUMNS}
    index = self._index(np.asarray(local["index"]))
    self.acc.add(
      correct=host["correct"],
      rma=host["rma"],
      ids=ids,
      mask_area=host["mask_area"],
      where=keep,
      index=index,
      label=np.asarray(local["label"]),
      prediction=host["prediction"],
      **columns,
    )
    rows = [j for j, i in enumerate(ids) if keep[j] and i in self.figure_ids]
    if rows:
      heatmaps = np.asarray(jax.device_get(out["heatmap"][np.asarray(rows)]))
      self.figures.update(zip(ids[rows].tolist(), heatmaps))
    if self.gallery is not None:
      self.gallery.take(ids, index, local, host, keep, out["heatmap"])
    self.done_ids.update(ids[keep].tolist())
    if batches % self.batches_per_chunk == 0:
      self._write_chunk(state)
    return int(keep.sum())

  def _index(self, index: np.ndarray) -> np.ndarray:
    if self.positions is None:
      return index
    return self.positions[np.clip(index, 0, len(self.positions) - 1)]

  def finish(self, state: dict, shard_total: int) -> None:
    """Writes what is left and marks the shard complete."""
    if len(self.acc) or self.figures or (self.gallery and self.gallery.pending):
      self._write_chunk(state)
    files.write_json(
      self.progress_path,
      {
        "chunks": self.chunk,
        "examples": shard_total,
        "iterator": state,
        "complete": True,
      },
    )

  def _warn_nonfinite(self, host: dict, keep: np.ndarray) -> None:
    for flag, what in (
      ("logits_finite", "logits"),
      ("heatmap_finite", "heatmaps"),
    ):
      bad = int(np.sum(keep & ~np.asarray(host[flag])))
      if bad:
        console.warning(
          f"{self.name}: {bad} sample(s) with non-finite {what}: counted as "
          "undefined (see the report)"
        )

  def _write_chunk(self, state: dict) -> None:
    """Records (and heatmaps) of the current chunk, then the marker."""
    if len(self.acc):
      self.acc.save(os.path.join(self.directory, f"chunk_{self.chunk:06d}.npz"))
    if self.figures:
      files.write_npz(
        os.path.join(self.directory, f"heatmaps_{self.chunk:06d}.npz"),
        ids=np.asarray(list(self.figures)),
        heatmaps=np.stack(list(self.figures.values())),
      )
    if self.gallery is not None:
      name = f"{gallery_lib.KIND}_{self.chunk:06d}.npz"
      self.gallery.save(os.path.join(self.directory, name))
    self.chunk += 1
    files.write_json(
      self.progress_path,
      {"chunks": self.chunk, "iterator": state, "complete": False},
    )
    self.acc, self.figures = metrics.Accumulator(), {}
