r"""Streaming, resumable evaluation: per-sample records of right/wrong and RMA.

    state = evaluate.run_evaluation(
        explain_fn, params, head, source, out_dir,
        preprocess="normalize('clip')", batch_size=64,
        meta={"model": "clip_b16", "dataset": "cub", "method": "zs"})
    evaluate.summarise(out_dir, threshold=0.5)   # from the records, no model

One jitted step per batch explains the ground-truth class (`explain`), then
scores the heatmap against the mask (RMA, RRA, pointing game) and the
prediction against the label. The per-sample results go to `out_dir` as they
come:

    out_dir/
      meta.json                 what ran: model, dataset, method, heatmap method, ...
      records/chunk_000000.npz  `metrics.Accumulator` columns of consecutive batches:
                                ids, label, prediction, correct, rma, rra,
                                pointing_game, mask_area (written atomically)
      records/heatmaps_000000.npz  pixel heatmaps of the figure examples in that chunk
      progress.json             chunks done, examples done, the input iterator's
                                state; written (atomically) after each chunk
      summary.json, records.csv written when the evaluation completes

A killed evaluation resumes where the last progress marker says: chunk files
beyond the marker are dropped, the input iterator is restored to the marked
position, and samples whose id is already recorded are skipped. A completed
evaluation is not run again. The records are the truth: `summarise`
recomputes accuracy, PT, IR and the mean scores at any threshold from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import functools
import glob
import json
import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from rationality_jax import metrics
from rationality_jax import sharding
from rationality_jax.data import pipeline

RECORDS = "records"
PROGRESS = "progress.json"
META = "meta.json"
SUMMARY = "summary.json"
RECORDS_CSV = "records.csv"
# Per-sample columns written besides the Accumulator's `correct`, `rma`, `ids`, `mask_area`.
INT_COLUMNS = ("label", "prediction")
SCORE_COLUMNS = ("rra", "pointing_game")


class Interrupted(RuntimeError):
  """Raised by `run_evaluation(stop_after_batches=N)` to simulate a killed run."""


# ------------------------------------------------------------------ files ----


def write_json(path: str, value: Any) -> None:
  """Writes JSON atomically (temp file + rename)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=1, sort_keys=True, default=_jsonable)
  os.replace(tmp, path)


def _jsonable(value):
  if isinstance(value, (np.integer, np.floating, np.bool_)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  return str(value)


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


def _chunk_path(out_dir: str, kind: str, index: int) -> str:
  return os.path.join(out_dir, RECORDS, f"{kind}_{index:06d}.npz")


def _chunk_paths(out_dir: str, kind: str) -> list[str]:
  return sorted(glob.glob(os.path.join(out_dir, RECORDS, f"{kind}_*.npz")))


def _chunk_index(path: str) -> int:
  return int(os.path.basename(path).split("_")[1].split(".")[0])


def is_complete(out_dir: str) -> bool:
  """True when `out_dir` holds a finished evaluation."""
  path = os.path.join(out_dir, PROGRESS)
  return os.path.exists(path) and read_json(path).get("complete", False)


# ------------------------------------------------------------------- step ----


@functools.lru_cache(maxsize=16)
def make_eval_step(explain_fn: Callable) -> Callable:
  """Jitted ``step(params, head, images, labels, masks) -> dict`` of [B] arrays.

  Cached per `explain_fn`, so a resumed evaluation in the same process does
  not compile again.

  Args:
    explain_fn: ``explain(params, head, images, labels, masks)`` from
      `rationality_jax.explain.make_explainer` (built with ``jit=False`` or not).

  Returns:
    step returning {'prediction' [B] int32, 'correct' [B] bool, 'rma',
    'rra', 'pointing_game' [B] float32, 'mask_area' [B] int32,
    'heatmap' [B, S, S] float32 in [0, 1]}.
  """

  @jax.jit
  def step(params, head, images, labels, masks):
    out = explain_fn(params, head, images, labels, masks)
    prediction = jnp.argmax(out["logits"], axis=-1).astype(jnp.int32)
    heatmap = out["heatmap"]
    return {
      "prediction": prediction,
      "correct": prediction == labels,
      "rma": out["rma"],
      "rra": metrics.relevance_rank_accuracy(heatmap, masks),
      "pointing_game": metrics.pointing_game(heatmap, masks),
      "mask_area": jnp.sum(masks > 0, axis=(-2, -1)).astype(jnp.int32),
      "heatmap": heatmap,
    }

  return step


# ---------------------------------------------------------------- progress ----


class Progress:
  """Logs examples done, rate and time left at most every `every_s` seconds.

  The rate is measured from the end of the first batch on, so the one-off
  compilation does not distort the time left.
  """

  def __init__(self, name: str, total: int, done: int, every_s: float = 10.0):
    self.name, self.total, self.start_done = name, total, done
    self.every_s = every_s
    self.start = self.last = time.perf_counter()
    self.first = True

  def update(self, done: int, force: bool = False) -> str | None:
    now = time.perf_counter()
    if self.first:
      self.first = False
      line = (
        f"{self.name}: first batch (with compilation) in {now - self.start:.1f}s, "
        f"{done}/{self.total} examples"
      )
      self.start, self.start_done, self.last = now, done, now
      logging.info(line)
      return line
    if not force and now - self.last < self.every_s:
      return None
    self.last = now
    elapsed = max(now - self.start, 1e-9)
    rate = (done - self.start_done) / elapsed
    left = (self.total - done) / rate if rate > 0 else float("nan")
    line = (
      f"{self.name}: {done}/{self.total} examples ({100 * done / max(self.total, 1):.0f}%), "
      f"{rate:.1f} ex/s, ~{left:.0f}s left"
    )
    logging.info(line)
    return line


# -------------------------------------------------------------- evaluation ----


def run_evaluation(
  explain_fn: Callable,
  params,
  head,
  source,
  out_dir: str,
  *,
  preprocess: str,
  batch_size: int,
  meta: Mapping[str, Any] | None = None,
  figure_ids: Sequence[str] = (),
  batches_per_chunk: int = 1,
  num_threads: int = 2,
  stop_after_batches: int | None = None,
  progress_every_s: float = 10.0,
) -> dict:
  """Evaluates every example of `source`, streaming records to `out_dir`.

  Args:
    explain_fn: ``explain(params, head, images, labels, masks) -> dict`` (see
      `make_eval_step`).
    params, head: the model's params and the classifier head.
    source: random access examples ({image, mask, label, id}; len/getitem).
    out_dir: the run's directory (created); an unfinished run there resumes.
    preprocess: the evaluation preprocessing spec (`rationality_jax.data.preprocess`).
    batch_size: global batch size (the last batch is padded, padding dropped).
    meta: JSON-able description of the run, written to meta.json; a resumed
      run must have the same meta.
    figure_ids: ids whose pixel heatmaps are kept (for overlay figures).
    batches_per_chunk: batches per records file.
    num_threads: input threads.
    stop_after_batches: raise `Interrupted` after this many batches of this
      call (simulates a kill; for tests).
    progress_every_s: seconds between progress lines.

  Returns:
    The summary at threshold 0.5 (see `summarise`).
  """
  meta = dict(meta or {})
  os.makedirs(os.path.join(out_dir, RECORDS), exist_ok=True)
  meta_path = os.path.join(out_dir, META)
  if os.path.exists(meta_path):
    old = read_json(meta_path)
    if old != json.loads(json.dumps(meta, sort_keys=True, default=_jsonable)):
      raise ValueError(
        f"{out_dir} holds records of another evaluation ({old}); this one is "
        f"{meta}. Use another directory or delete it to start over."
      )
  else:
    write_json(meta_path, meta)
  if is_complete(out_dir):
    logging.info("evaluation in %s is complete; not running it again", out_dir)
    return summarise(out_dir)

  batch_sharding = sharding.batch_sharding(sharding.make_mesh([("data", -1)]))
  it = pipeline.make_iterator(
    source,
    preprocess,
    batch_size,
    mesh=None,
    shuffle=False,
    num_epochs=1,
    drop_remainder=False,
    num_threads=num_threads,
    prefetch=2 * batch_size,
  )
  progress_path = os.path.join(out_dir, PROGRESS)
  state = read_json(progress_path) if os.path.exists(progress_path) else None
  chunk, done_ids = 0, set()
  if state is not None:
    chunk = state["chunks"]
    it.set_state(state["iterator"])
    for kind in ("chunk", "heatmaps"):
      for path in _chunk_paths(out_dir, kind):
        if _chunk_index(path) >= chunk:  # written after the last marker
          os.remove(path)
    for path in _chunk_paths(out_dir, "chunk"):
      done_ids.update(metrics.Accumulator.load(path).arrays()["ids"].tolist())
    logging.info(
      "resuming %s at chunk %d (%d examples done)",
      out_dir,
      chunk,
      len(done_ids),
    )
  total = len(source)
  progress = Progress(
    meta.get("name", out_dir), total, len(done_ids), progress_every_s
  )
  step = make_eval_step(explain_fn)
  figure_ids = set(figure_ids)
  acc, figures = metrics.Accumulator(), {}
  for batches, local in enumerate(it, start=1):
    ids = np.asarray(
      [i.decode() if isinstance(i, bytes) else str(i) for i in local["id"]]
    )
    batch = sharding.global_batch(local, batch_sharding)
    out = step(params, head, batch["image"], batch["label"], batch["mask"])
    host = jax.device_get({k: v for k, v in out.items() if k != "heatmap"})
    keep = np.asarray(local["valid"]) & np.asarray(
      [i not in done_ids for i in ids]
    )
    acc.add(
      correct=host["correct"],
      rma=host["rma"],
      ids=ids,
      mask_area=host["mask_area"],
      where=keep,
      label=np.asarray(local["label"]),
      prediction=host["prediction"],
      **{k: host[k] for k in SCORE_COLUMNS},
    )
    rows = [j for j, i in enumerate(ids) if keep[j] and i in figure_ids]
    if rows:
      heatmaps = np.asarray(jax.device_get(out["heatmap"][np.asarray(rows)]))
      figures.update(zip(ids[rows].tolist(), heatmaps))
    done_ids.update(ids[keep].tolist())
    if batches % batches_per_chunk == 0:
      chunk = _write_chunk(out_dir, chunk, acc, figures, it, len(done_ids))
      acc, figures = metrics.Accumulator(), {}
    progress.update(len(done_ids))
    if stop_after_batches is not None and batches >= stop_after_batches:
      raise Interrupted(f"stopped after {batches} batches (stop_after_batches)")
  if len(acc) or figures:
    chunk = _write_chunk(out_dir, chunk, acc, figures, it, len(done_ids))
  progress.update(len(done_ids), force=True)
  write_json(
    progress_path,
    {
      "chunks": chunk,
      "examples": len(done_ids),
      "iterator": it.get_state(),
      "complete": True,
    },
  )
  return finalise(out_dir)


def _write_chunk(out_dir, chunk, acc, figures, it, done: int) -> int:
  """Writes records (and heatmaps) of `chunk`, then the progress marker."""
  if len(acc):
    acc.save(_chunk_path(out_dir, "chunk", chunk))
  if figures:
    path = _chunk_path(out_dir, "heatmaps", chunk)
    tmp = path + ".tmp.npz"
    np.savez(
      tmp,
      ids=np.asarray(list(figures)),
      heatmaps=np.stack(list(figures.values())),
    )
    os.replace(tmp, path)
  write_json(
    os.path.join(out_dir, PROGRESS),
    {
      "chunks": chunk + 1,
      "examples": done,
      "iterator": it.get_state(),
      "complete": False,
    },
  )
  return chunk + 1


# ----------------------------------------------------------------- records ----


def load_records(out_dir: str) -> metrics.Accumulator:
  """All per-sample records of a run, in evaluation order."""
  paths = _chunk_paths(out_dir, "chunk")
  if not paths:
    raise FileNotFoundError(
      f"no records in {os.path.join(out_dir, RECORDS)}; run "
      "the evaluation first."
    )
  return metrics.Accumulator.merge(metrics.Accumulator.load(p) for p in paths)


def load_heatmaps(out_dir: str) -> dict[str, np.ndarray]:
  """{id: [S, S] float32 heatmap} of the figure examples of a run."""
  out = {}
  for path in _chunk_paths(out_dir, "heatmaps"):
    with np.load(path) as data:
      out.update(zip(data["ids"].tolist(), data["heatmaps"]))
  return out


def summarise(out_dir: str, threshold: float = 0.5) -> dict:
  """Accuracy, PT, IR, counts and mean RMA/RRA/pointing game from the records.

  Needs no model: any threshold can be asked for after the fact.
  """
  return summarise_records(load_records(out_dir), threshold)


def summarise_records(
  records: metrics.Accumulator, threshold: float = 0.5
) -> dict:
  """`summarise` of records already loaded (or a subset of them)."""
  summary = records.summary(threshold)
  for name in INT_COLUMNS:
    summary.pop(f"mean_{name}", None)
  return summary


def curve(out_dir: str, thresholds: Sequence[float]) -> dict[str, list]:
  """PT, IR and counts against the validity threshold, from the records."""
  return {
    k: np.asarray(v).tolist()
    for k, v in load_records(out_dir).curve(thresholds).items()
  }


def finalise(out_dir: str, threshold: float = 0.5) -> dict:
  """Writes summary.json and records.csv of a finished run; returns the summary."""
  summary = summarise(out_dir, threshold)
  write_json(os.path.join(out_dir, SUMMARY), summary)
  arrays = load_records(out_dir).arrays()
  columns = ["ids", *INT_COLUMNS, "correct", "rma", *SCORE_COLUMNS, "mask_area"]
  tmp = os.path.join(out_dir, RECORDS_CSV + ".tmp")
  with open(tmp, "w") as f:
    f.write("id,label,prediction,correct,rma,rra,pointing_game,mask_area\n")
    for row in zip(*(arrays[c] for c in columns)):
      i, label, pred, correct, *scores, area = row
      f.write(
        f"{i},{int(label)},{int(pred)},{int(correct)},"
        + ",".join(f"{s:.6g}" for s in scores)
        + f",{int(area)}\n"
      )
  os.replace(tmp, os.path.join(out_dir, RECORDS_CSV))
  return summary
