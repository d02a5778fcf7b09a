r"""Streaming, resumable, multi-host evaluation: per-sample records and a report.

    python -m rationality_jax.main --config=configs/evaluate.py:model=<ckpt> --workdir=DIR
    evaluate.run(config, workdir)            # the same, as a library
    records.summarise(workdir, threshold=0.3)   # from the records, no model

What is evaluated: ``evaluate.train_dir`` (a finished training run), else
the zero-shot head of ``model.path`` (built directly: nothing trains), else
``method`` trained first in ``<workdir>/train``. One jitted step per batch
explains the target class (`explain`), scores the heatmap against the mask
(RMA, RRA, pointing game) and the prediction against the label, and
flags non-finite logits and heatmaps. The records go to the workdir as they
come:

    fingerprint.json            what determines the records (a rerun with
                                another model/heatmap/data is refused)
    meta.json                   model, dataset, method, heatmap, preprocessing
    records/p<i>-of-<n>/chunk_000000.npz    process i's `metrics.Accumulator`
                                columns: ids, index, label, prediction, correct,
                                rma, rra, pointing_game, mask_area,
                                logits_finite, heatmap_finite
    records/p<i>-of-<n>/heatmaps_000000.npz pixel heatmaps of figure examples
    records/p<i>-of-<n>/progress.json       chunks and examples done, the
                                input iterator's state
    summary.json, records.csv, report.md, results.*, pt_ir_threshold.png
    complete.json               written last, listing the outputs above

Multi-host: every process evaluates a disjoint shard of the split on its own
devices (positions i with i % n == process; padding masked), writes its own
records and resumes on its own; process 0 merges them (ordered by the
source index, so n processes give exactly one process's records) into the
summary and report. The workdir must be on storage every host sees.

A killed evaluation resumes where its progress markers say: chunk files
beyond a marker are dropped, the input iterator is restored (or, with
another process count, restarted), and ids already recorded are skipped. A
complete evaluation whose outputs are missing regenerates them from the
records; the records are the truth: `summarise` recomputes accuracy, PT, IR
and the means at any threshold.
"""

from __future__ import annotations

from collections.abc import Callable
import copy
import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rationality_jax import console
from rationality_jax import data
from rationality_jax import explain
from rationality_jax import files
from rationality_jax import metrics
from rationality_jax import models
from rationality_jax import report
from rationality_jax import sharding
from rationality_jax.report import records
from rationality_jax.run import checkpoints
from rationality_jax.run import config as config_lib
from rationality_jax.run import provenance
from rationality_jax.run import resolve
from rationality_jax.run import train

PROGRESS = "progress.json"
META = report.META
SUMMARY = "summary.json"
RECORDS_CSV = "records.csv"
COMPLETE = "complete.json"
FIGURE = "pt_ir_threshold.png"
# Per-sample columns besides the Accumulator's `correct`, `rma`, `ids`,
# `mask_area` and `records.INT_COLUMNS`.
SCORE_COLUMNS = ("rra", "pointing_game")
FLAG_COLUMNS = ("logits_finite", "heatmap_finite")
EVIDENCE_COLUMNS = ("heatmap_mass", *FLAG_COLUMNS)
CSV_COLUMNS = (
  "ids",
  *records.INT_COLUMNS,
  "correct",
  "rma",
  *SCORE_COLUMNS,
  "mask_area",
  "heatmap_mass",
  *FLAG_COLUMNS,
)


# ------------------------------------------------------------------- step ----


@functools.lru_cache(maxsize=16)
def make_eval_step(explain_fn: Callable) -> Callable:
  """Jitted ``step(params, head, images, labels, masks) -> dict`` of [B] arrays.

  Cached per `explain_fn`, so a resumed evaluation in the same process does
  not compile again.

  Returns:
    step returning {'prediction' [B] int32 (-1 where the logits are not
    finite), 'correct' [B] bool, 'rma', 'rra', 'pointing_game' [B]
    float32, 'mask_area' [B] int32, 'logits_finite', 'heatmap_finite' [B]
    bool, 'heatmap' [B, S, S] float32}.
  """

  @jax.jit
  def step(params, head, images, labels, masks):
    out = explain_fn(params, head, images, labels, masks)
    logits, heatmap = out["logits"], out["heatmap"]
    logits_finite = jnp.all(jnp.isfinite(logits), axis=-1)
    prediction = jnp.where(
      logits_finite, jnp.argmax(logits, axis=-1).astype(jnp.int32), -1
    )
    return {
      "prediction": prediction,
      "correct": prediction == labels,
      "logits_finite": logits_finite,
      **metrics.evidence_columns(heatmap, masks),
      "rra": metrics.relevance_rank_accuracy(heatmap, masks),
      "pointing_game": metrics.pointing_game(heatmap, masks),
      "heatmap": heatmap,
    }

  return step


def _write_csv(out_dir: str, loaded: metrics.Accumulator) -> None:
  arrays = loaded.arrays()
  columns = [c for c in CSV_COLUMNS if c in arrays]
  lines = [",".join("id" if c == "ids" else c for c in columns)]
  for row in zip(*(arrays[c] for c in columns)):
    cells = []
    for name, value in zip(columns, row):
      if name == "ids":
        cells.append(str(value))
      elif name in records.INT_COLUMNS or name in ("mask_area", "correct"):
        cells.append(str(int(value)))
      elif name in FLAG_COLUMNS:
        cells.append(str(int(bool(value))))
      else:
        cells.append(f"{value:.6g}")
    lines.append(",".join(cells))
  files.write_text(os.path.join(out_dir, RECORDS_CSV), "\n".join(lines) + "\n")


# ------------------------------------------------------------- completion ----


def is_complete(out_dir: str) -> bool:
  """A finished evaluation whose every output exists."""
  path = os.path.join(out_dir, COMPLETE)
  if not os.path.exists(path):
    return False
  outputs = files.read_json(path).get("outputs", [])
  return all(os.path.exists(os.path.join(out_dir, o)) for o in outputs)


def _shard_complete(directory: str) -> bool:
  path = os.path.join(directory, PROGRESS)
  return os.path.exists(path) and files.read_json(path).get("complete", False)


def finalise(
  out_dir: str, threshold: float = 0.5, title: str = "", figures: bool = True
) -> dict:
  """Writes every output of a finished run from its records, then complete.json.

  "complete" is written last, so a run killed in between regenerates the
  outputs on its next start. Process 0 only.
  """
  loaded = records.load(out_dir)
  summary = records.summarise_records(
    loaded, threshold, **records.policies(out_dir)
  )
  files.write_json(os.path.join(out_dir, SUMMARY), summary)
  _write_csv(out_dir, loaded)
  outputs = [SUMMARY, RECORDS_CSV]
  rows = report.collect([out_dir], threshold, loaded={out_dir: loaded})
  figure_paths = []
  if figures:
    figure_paths.append(
      report.figure_threshold_curves([out_dir], os.path.join(out_dir, FIGURE))
    )
    outputs.append(FIGURE)
  meta = files.read_json(os.path.join(out_dir, META))
  paths = report.write(
    rows,
    out_dir,
    title=title or f"Run {meta.get('name', '')}",
    figures=figure_paths,
  )
  outputs += [os.path.basename(p) for p in paths.values()]
  files.write_json(os.path.join(out_dir, COMPLETE), {"outputs": outputs})
  return summary


# -------------------------------------------------------------- evaluation ----


def _after_batch(batches: int) -> None:
  """Called after each batch; tests replace it to simulate a kill."""
  del batches


def _warn_nonfinite(name: str, host: dict, keep: np.ndarray) -> None:
  for flag, what in (
    ("logits_finite", "logits"),
    ("heatmap_finite", "heatmaps"),
  ):
    bad = int(np.sum(keep & ~np.asarray(host[flag])))
    if bad:
      console.warning(
        f"{name}: {bad} sample(s) with non-finite {what}: counted as undefined "
        "(see the report)"
      )


def evaluate_records(
  explain_fn: Callable,
  trained: checkpoints.Trained,
  source,
  out_dir: str,
  *,
  spec: str,
  batch_size: int,
  name: str,
  figure_ids=(),
  batches_per_chunk: int = 1,
  num_threads: int = 2,
  num_workers: int = 0,
) -> None:
  """This process's shard of `source` -> records in ``out_dir/records``.

  Resumes from this process's progress marker; skips ids already recorded
  by any process.
  """
  process, count = jax.process_index(), jax.process_count()
  if batch_size % count:
    raise config_lib.ConfigError(
      f"config.evaluate.batch_size: {batch_size} is not divisible by the "
      f"{count} processes"
    )
  directory = records.process_dir(out_dir)
  os.makedirs(directory, exist_ok=True)
  progress_path = os.path.join(directory, PROGRESS)
  if _shard_complete(directory):
    return
  it = data.make_iterator(
    source,
    spec,
    batch_size,
    mesh=None,
    shuffle=False,
    num_epochs=1,
    drop_remainder=False,
    process_index=process,
    process_count=count,
    num_threads=num_threads,
    prefetch=2 * batch_size,
    num_workers=num_workers,
  )
  try:
    state = (
      files.read_json(progress_path) if os.path.exists(progress_path) else None
    )
    chunk = 0
    if state is not None:
      chunk = state["chunks"]
      mismatch = it.worker_mismatch(state["iterator"])
      if mismatch is None:
        it.set_state(state["iterator"])
      else:  # the input state is per worker; the recorded ids are skipped
        console.warning(
          f"{name}: {mismatch}: reading from the start, the examples already "
          "recorded are not evaluated again"
        )
      for kind in ("chunk", "heatmaps"):
        for path in records.chunk_paths(directory, kind):
          # Written after the last marker: recomputed.
          if records.chunk_index(path) >= chunk:
            os.remove(path)
    done_ids = set()
    for path in records.all_chunk_paths(out_dir, "chunk"):
      done_ids.update(metrics.Accumulator.load(path).arrays()["ids"].tolist())
    if done_ids:
      console.stage(f"{name}: resuming ({len(done_ids)} examples recorded)")

    local_mesh = sharding.local_mesh()
    batch_sharding = sharding.batch_sharding(local_mesh)
    params = jax.device_put(trained.params, sharding.replicated(local_mesh))
    head = jax.device_put(trained.head, sharding.replicated(local_mesh))
    step = make_eval_step(explain_fn)
    figure_ids = set(figure_ids)
    shard_total = len(range(process, len(source), count))
    acc, figures = metrics.Accumulator(), {}

    def record(batches: int, local: dict, out: dict, state: dict) -> None:
      """Host side of one finished batch: records, figures, chunk, progress."""
      nonlocal acc, figures, chunk
      ids = np.asarray(
        [i.decode() if isinstance(i, bytes) else str(i) for i in local["id"]]
      )
      host = jax.device_get({k: v for k, v in out.items() if k != "heatmap"})
      keep = np.asarray(local["valid"]) & np.asarray(
        [i not in done_ids for i in ids]
      )
      _warn_nonfinite(name, host, keep)
      acc.add(
        correct=host["correct"],
        rma=host["rma"],
        ids=ids,
        mask_area=host["mask_area"],
        where=keep,
        index=np.asarray(local["index"]),
        label=np.asarray(local["label"]),
        prediction=host["prediction"],
        **{k: host[k] for k in SCORE_COLUMNS + EVIDENCE_COLUMNS},
      )
      rows = [j for j, i in enumerate(ids) if keep[j] and i in figure_ids]
      if rows:
        heatmaps = np.asarray(jax.device_get(out["heatmap"][np.asarray(rows)]))
        figures.update(zip(ids[rows].tolist(), heatmaps))
      done_ids.update(ids[keep].tolist())
      bar.update(int(keep.sum()) * count)
      if batches % batches_per_chunk == 0:
        chunk = _write_chunk(directory, chunk, acc, figures, state)
        acc, figures = metrics.Accumulator(), {}
      _after_batch(batches)

    # One batch in flight: the next batch is put on the devices and its step
    # dispatched (asynchronously) before the previous one's results are read,
    # so reading, decoding and recording overlap the device's work.
    pending = None
    with console.progress(
      len(source), name, "img", initial=len(done_ids)
    ) as bar:
      for batches, local in enumerate(it, start=1):
        state = it.get_state()  # the position after this batch
        if batches == 1:
          resolve.check_images(local["image"].shape, trained.module, "eval")
        batch = {
          k: jax.device_put(np.asarray(local[k]), batch_sharding)
          for k in ("image", "label", "mask")
        }
        out = step(params, head, batch["image"], batch["label"], batch["mask"])
        if pending is not None:
          record(*pending)
        pending = (batches, local, out, state)
      if pending is not None:
        record(*pending)
    if len(acc) or figures:
      chunk = _write_chunk(directory, chunk, acc, figures, it.get_state())
    files.write_json(
      progress_path,
      {
        "chunks": chunk,
        "examples": shard_total,
        "iterator": it.get_state(),
        "complete": True,
      },
    )
  finally:
    it.close()  # ends the input's worker processes, if any


def _write_chunk(directory, chunk, acc, figures, iterator_state) -> int:
  """Writes records (and heatmaps) of `chunk`, then the progress marker."""
  if len(acc):
    acc.save(os.path.join(directory, f"chunk_{chunk:06d}.npz"))
  if figures:
    files.write_npz(
      os.path.join(directory, f"heatmaps_{chunk:06d}.npz"),
      ids=np.asarray(list(figures)),
      heatmaps=np.stack(list(figures.values())),
    )
  files.write_json(
    os.path.join(directory, PROGRESS),
    {
      "chunks": chunk + 1,
      "iterator": iterator_state,
      "complete": False,
    },
  )
  return chunk + 1


# ------------------------------------------------------------------ a run ----


def trained_model(config: ml_collections.ConfigDict, workdir: str):
  """(Trained, its fingerprint): a training run, a checkpoint's ZS, or trained here."""
  train_dir = config.evaluate.train_dir
  if not train_dir and config.method != "zs":
    train_dir = os.path.join(workdir, "train")
    train_config = copy.deepcopy(config)
    with train_config.unlocked():
      train_config.train.eval_accuracy = False
    console.stage(f"train {config.method} in {train_dir}")
    train.train_and_evaluate(train_config, train_dir)
  if train_dir:
    trained = checkpoints.load_trained(train_dir)
    trained.module, trained.params = resolve.precision(
      config, trained.module, trained.params
    )
    fingerprint = trained.meta.get("fingerprint") or {"train_dir": train_dir}
    return trained, dict(fingerprint, step=trained.step)
  module, params, family = resolve.model(config)
  source, class_names = resolve.source(config, workdir, "eval")
  del source
  task, _ = resolve.task(config, module, family, class_names)
  fingerprint = {
    "stage": "zero_shot",
    **resolve.model_identity(config),
    "templates": config.head.templates,
    "class_names": list(class_names),
  }
  head = resolve.zero_shot_head(
    config, module, params, task, workdir, fingerprint
  )
  meta = {"config": config_lib.to_dict(config), "fingerprint": fingerprint}
  return checkpoints.zero_shot(module, params, head, meta), fingerprint


def _run_config_of(trained: checkpoints.Trained, config):
  """The config that made `trained` (its own for a zero-shot model)."""
  saved = trained.meta.get("config")
  if trained.method == "zs" or not saved:
    return config
  return ml_collections.ConfigDict(saved)


def run(
  config: ml_collections.ConfigDict,
  workdir: str,
  fresh: bool = False,
  announce: bool = True,
):
  """Evaluates ``config`` into `workdir`; returns the summary.

  `fresh`: when the workdir holds another configuration's records, evaluate
  in a new subdirectory instead of refusing. `announce`: end with the
  run's table and report path on the console (a grid prints its own).
  """
  config_lib.validate_run(config)
  sharding.initialize_distributed(config.distributed)
  workdir = os.path.abspath(workdir)
  trained, trained_fingerprint = trained_model(config, workdir)
  fingerprint = resolve.eval_fingerprint(config, trained_fingerprint)
  workdir = provenance.claim(workdir, fingerprint, "evaluation records", fresh)
  name = config.model.name or resolve.model_name(config)
  run_name = config.name or trained.method
  e = config.evaluate
  if is_complete(workdir):
    console.stage(f"{run_name}: complete in {workdir}, not run again")
    return files.read_json(os.path.join(workdir, SUMMARY))

  made_by = _run_config_of(trained, config)
  family = models.family(trained.module.config)
  source, class_names = resolve.source(config, workdir, "eval")
  trained_classes = trained.meta.get("class_names", class_names)
  if len(trained_classes) != len(class_names):
    raise config_lib.ConfigError(
      f"config.eval_data: {resolve.dataset(config, 'eval')[0]} has "
      f"{len(class_names)} classes; the model was trained on "
      f"{len(trained_classes)} ({trained.meta.get('dataset')})"
    )
  spec = resolve.spec(config, trained.module, family, "eval")
  method = resolve.heatmap(config)
  explain_fn = explain.make_explainer(
    trained.module,
    trained.classifier,
    method,
    target=config.heatmap.target,
    constant_map=config.heatmap.constant_map,
    jit=False,
  )
  eval_name, split, _ = resolve.dataset(config, "eval")
  meta = {
    "name": run_name,
    "model": name,
    "dataset": data.report_key(eval_name),
    "builder": eval_name,
    "split": split,
    "method": trained.method,
    "heatmap": resolve.heatmap_label(config),
    "corruption": split if eval_name == "imagenet_c_masks" else "",
    "severity": 0,
    "skipped": dict(getattr(source, "skipped", {}) or {}),
    "policies": {"empty_mask": e.empty_mask, "nonfinite": e.nonfinite},
    "train_step": trained.step,
    "preprocess": spec,
    "num_examples": len(source),
    "max_batches": e.max_batches,
    "trained_on": made_by.train_data.name if trained.method != "zs" else "",
  }
  if jax.process_index() == 0:
    files.write_json(os.path.join(workdir, META), meta)
  figure_ids = [
    source[i]["id"] for i in range(min(e.figure_images, len(source)))
  ]
  evaluate_records(
    explain_fn,
    trained,
    source,
    workdir,
    spec=spec,
    batch_size=e.batch_size,
    name=run_name,
    figure_ids=figure_ids,
    batches_per_chunk=e.batches_per_chunk,
    num_threads=e.input_threads,
    num_workers=e.input_workers,
  )
  sharding.barrier(f"evaluated {workdir}")
  if jax.process_index() == 0:
    finalise(workdir, e.threshold, figures=e.figures)
  sharding.barrier(f"finalised {workdir}")
  if announce:
    console.table(report.console_table(report.collect([workdir], e.threshold)))
    console.stage(f"report: {os.path.join(workdir, 'report.md')}")
  return files.read_json(os.path.join(workdir, SUMMARY))
