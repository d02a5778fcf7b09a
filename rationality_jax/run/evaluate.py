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
                                confidence, rma, rra, pointing_game,
                                mask_area, logits_finite, heatmap_finite
    records/p<i>-of-<n>/heatmaps_000000.npz pixel heatmaps of figure examples
    records/p<i>-of-<n>/gallery_000000.npz  thumbnails report.html shows
                                (``evaluate.gallery_images``)
    records/p<i>-of-<n>/progress.json       chunks and examples done, the
                                input iterator's state
    summary.json, records.csv, report.md, results.*, pt_ir_threshold.png
                                (`outputs`), made from the records
    config.json, run.json       the resolved config; the manifest, complete
                                last: every output and records chunk with
                                its digest (`record`)

Multi-host: every process evaluates a disjoint shard of the split on its own
devices (positions i with i % n == process; padding masked), writes its own
records and resumes on its own; process 0 merges them (ordered by the
source index, so n processes give exactly one process's records) into the
summary and report. The workdir must be on storage every host sees.

A killed evaluation resumes where its progress markers say: chunk files
beyond a marker are dropped, the input iterator is restored (or, with
another process count, restarted), and ids already recorded are skipped.
Complete means verified: a rerun checks every records chunk and output
against the manifest, evaluates again the examples of a missing or changed
chunk, makes changed outputs again from the records, and never reports fewer
examples than the split has. The records are the truth: `summarise`
recomputes accuracy, PT, IR and the means at any threshold.
"""

from __future__ import annotations

import copy
import functools
import os

import jax
import ml_collections

from rationality_jax import console
from rationality_jax import data
from rationality_jax import explain
from rationality_jax import files
from rationality_jax import manifest as manifest_lib
from rationality_jax import metrics
from rationality_jax import models
from rationality_jax import report
from rationality_jax import sharding
from rationality_jax.report import records
from rationality_jax.run import checkpoints
from rationality_jax.run import config as config_lib
from rationality_jax.run import outputs
from rationality_jax.run import record
from rationality_jax.run import recorder
from rationality_jax.run import resolve
from rationality_jax.run import stream
from rationality_jax.run import train
from rationality_jax.run import validate

# ------------------------------------------------------------------ a run ----


def model_fingerprint(config: ml_collections.ConfigDict):
  """(what determines the evaluated model, the training runs made inside the
  evaluation's directory), known before anything is written.

  Refuses an unfinished ``evaluate.train_dir`` (naming the step it reached
  and its total) unless ``evaluate.allow_unfinished``.
  """
  train_dir = config.evaluate.train_dir
  if train_dir:
    progress = record.training_progress(train_dir)
    if progress["step"] is None:
      raise config_lib.ConfigError(
        f"config.evaluate.train_dir: no training run in {train_dir} (no "
        "checkpoint); train it first"
      )
    if not progress["finished"] and not config.evaluate.allow_unfinished:
      total = progress["total_steps"] or "an unknown number of"
      raise config_lib.ConfigError(
        f"config.evaluate.train_dir: {train_dir} is trained {progress['step']}"
        f" of {total} steps (unfinished); rerun its command to finish it, or "
        "set --config.evaluate.allow_unfinished=True to evaluate it as it is"
      )
    meta = checkpoints.read(train_dir, items=("meta",))["meta"]
    fingerprint = meta.get("fingerprint") or {"train_dir": train_dir}
    return dict(fingerprint, step=progress["step"]), []
  if config.method == "zs":
    return {
      "stage": "zero_shot",
      **resolve.model_identity(config),
      "templates": config.head.templates,
      "class_names": config.head.class_names,
    }, []
  fingerprint = resolve.train_fingerprint(_train_config(config))
  return fingerprint, [("train", fingerprint, "a training run")]


def _train_config(config):
  train_config = copy.deepcopy(config)
  with train_config.unlocked():
    train_config.train.eval_accuracy = False
  return train_config


def trained_model(config: ml_collections.ConfigDict, directory: str):
  """The `Trained` model: a training run's, a checkpoint's zero-shot head, or
  ``method`` trained first in ``<directory>/train``."""
  train_dir = config.evaluate.train_dir
  if not train_dir and config.method != "zs":
    train_dir = os.path.join(directory, "train")
    console.stage(f"train {config.method} in {train_dir}")
    train.train_and_evaluate(_train_config(config), train_dir)
  if train_dir:
    trained = checkpoints.load_trained(train_dir)
    trained.module, trained.params = resolve.precision(
      config, trained.module, trained.params
    )
    progress = record.training_progress(train_dir)
    trained.meta = dict(trained.meta, total_steps=progress["total_steps"])
    return trained
  module, params, family = resolve.model(config)
  _, class_names = resolve.source(config, directory, "eval")
  task, _ = resolve.task(config, module, family, class_names)
  key = {
    "stage": "zero_shot",
    **resolve.model_identity(config),
    "templates": config.head.templates,
    "class_names": list(class_names),
  }
  head = resolve.zero_shot_head(config, module, params, task, directory, key)
  meta = {"config": config_lib.to_dict(config), "fingerprint": key}
  return checkpoints.zero_shot(module, params, head, meta)


def _run_config_of(trained: checkpoints.Trained, config):
  """The config that made `trained` (its own for a zero-shot model)."""
  saved = trained.meta.get("config")
  if trained.method == "zs" or not saved:
    return config
  return ml_collections.ConfigDict(saved)


def run_meta(config, trained, source, spec, run_name, class_names) -> dict:
  """``meta.json``: what a report needs to know about the run."""
  e = config.evaluate
  eval_name, split, _ = resolve.dataset(config, "eval")
  made_by = _run_config_of(trained, config)
  return {
    "name": run_name,
    "group": config.group or run_name,
    "seed": config.seed,
    "model": config.model.name or resolve.model_name(config),
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
    "train_total_steps": trained.meta.get("total_steps", trained.step),
    "preprocess": spec,
    "image_pixels": resolve.image_size(trained.module) ** 2,
    "num_examples": len(source),
    "max_batches": e.max_batches,
    "trained_on": made_by.train_data.name if trained.method != "zs" else "",
    "class_names": list(class_names),  # report.html's class column
    # what filled the faithfulness curves' removed pixels (report.md says)
    **({"faithfulness_fill": e.faithfulness_fill} if e.faithfulness else {}),
  }


def fit_batch(config: ml_collections.ConfigDict, num_examples: int):
  """`config` with ``evaluate.batch_size`` cut to the split (rounded up to
  the process count), before anything is allocated, with a warning."""
  count = jax.process_count()
  fitted = -(-num_examples // count) * count
  if config.evaluate.batch_size <= fitted or config.evaluate.max_batches:
    return config
  console.warning(
    f"config.evaluate.batch_size: {config.evaluate.batch_size} is larger "
    f"than the {num_examples} examples to evaluate; using {fitted}"
  )
  config = copy.deepcopy(config)
  config.evaluate.batch_size = fitted
  return config


def run(
  config: ml_collections.ConfigDict,
  workdir: str,
  fresh: bool = False,
  announce: bool = True,
):
  """Evaluates ``config`` into `workdir`; returns the summary.

  Validates, plans and claims `workdir` first (`rationality_jax.run.record`):
  another configuration's records there are refused, or with `fresh`
  evaluated in a new subdirectory. A rerun of a complete evaluation checks
  its records and outputs against its manifest (`Evaluation.resume`).
  `announce`: end with the run's table and report path on the console (a
  grid prints its own).
  """
  validate.validate_run(config)
  sharding.initialize_distributed(config.distributed)
  trained_fingerprint, inner = model_fingerprint(config)
  fingerprint = resolve.eval_fingerprint(config, trained_fingerprint)
  what = "evaluation records"
  directory = record.plan(workdir, fingerprint, what, fresh, inner)
  with record.open_run(
    directory, fingerprint, config, "evaluate", what=what
  ) as run_record:
    evaluation = Evaluation(config, directory, run_record)
    summary = evaluation.run()
  if announce:
    e = evaluation.config.evaluate
    rows = report.collect([directory], e.threshold)
    warn(rows)
    console.table(report.console_table(rows))
    console.stage(f"report: {os.path.join(directory, 'report.md')}")
  return summary


def warn(rows) -> None:
  """The rows' warnings (near-constant maps, RMA at chance) on the console."""
  for row in rows:
    for text in row.get("warnings", []):
      console.warning(f"{row['name']}: {text} (see report.md)")


class Evaluation:
  """One evaluation in its claimed directory: from the model to the outputs."""

  def __init__(self, config, directory: str, run_record: record.Run):
    self.config, self.directory, self.record = config, directory, run_record

  def run(self) -> dict:
    config, directory = self.config, self.directory
    trained = trained_model(config, directory)
    source, class_names = resolve.source(config, directory, "eval")
    trained_classes = trained.meta.get("class_names", class_names)
    if len(trained_classes) != len(class_names):
      raise config_lib.ConfigError(
        f"config.eval_data: {resolve.dataset(config, 'eval')[0]} has "
        f"{len(class_names)} classes; the model was trained on "
        f"{len(trained_classes)} ({trained.meta.get('dataset')})"
      )
    self.config = config = fit_batch(config, len(source))
    e = config.evaluate
    self.record.config = config
    manifest = manifest_lib.read(directory)  # what the last run completed
    self.record.start()
    name = config.name or trained.method
    spec = resolve.spec(
      config, trained.module, models.family(trained.module.config), "eval"
    )
    if jax.process_index() == 0:
      meta = run_meta(config, trained, source, spec, name, class_names)
      files.write_json(os.path.join(directory, outputs.META), meta)
    if self.resume(name, manifest):
      return files.read_json(os.path.join(directory, outputs.SUMMARY))
    explain_fn = explain.make_explainer(
      trained.module,
      trained.classifier,
      resolve.heatmap(config),
      target=config.heatmap.target,
      constant_map=config.heatmap.constant_map,
      signed=config.heatmap.signed,
      jit=False,
    )
    evaluate = functools.partial(
      stream.evaluate_records,
      explain_fn,
      trained,
      out_dir=directory,
      spec=spec,
      batch_size=e.batch_size,
      name=name,
      figure_ids=[
        source[i]["id"] for i in range(min(e.figure_images, len(source)))
      ],
      batches_per_chunk=e.batches_per_chunk,
      num_threads=e.input_threads,
      num_workers=e.input_workers,
      curves=resolve.curves(config, trained.module, trained.classifier),
      gallery=report.gallery.Plan(
        e.gallery_images, len(source), e.threshold, spec
      ),
    )
    evaluate(source)
    sharding.barrier(f"evaluated {directory}")
    self.repair(source, evaluate)
    return self.finish()

  def resume(self, name: str, manifest: dict) -> bool:
    """Whether a complete evaluation is still complete (True: nothing to do).

    Its records are checked against the manifest: a missing, changed or
    unexpected records file is named and its examples evaluated again (a
    changed one is deleted first); changed or missing outputs are named
    and made again from the records, as are outputs of other report
    settings (threshold, figures).
    """
    if (
      manifest.get("status") != manifest_lib.COMPLETE
      or "records" not in manifest
    ):
      return False
    problems = records.check(self.directory, manifest)
    if problems:
      console.warning(
        f"{name}: the records changed since the run completed "
        f"({manifest_lib.describe(problems)}): evaluating those examples again"
      )
      for chunk, state in problems.items():
        if state != "missing" and jax.process_index() == 0:
          os.remove(os.path.join(self.directory, chunk))
      sharding.barrier(f"checked {self.directory}")
      recorder.Recorder(self.directory, name).reopen()
      return False
    changed = manifest_lib.verify(self.directory, manifest.get("outputs", {}))
    changed.pop(outputs.META, None)  # written again at every start
    if changed:
      console.warning(
        f"{name}: outputs changed since the run completed "
        f"({manifest_lib.describe(changed)}): made again from the records"
      )
    elif manifest.get("report_settings") == self._report_settings():
      console.stage(f"{name}: complete in {self.directory}, not run again")
      self.record.complete(**{k: manifest[k] for k in ("outputs", "records")})
      return True
    self.finish()
    return True

  def _report_settings(self) -> dict:
    e = self.config.evaluate
    return {"threshold": e.threshold, "figures": e.figures}

  def repair(self, source, evaluate) -> None:
    """Evaluates the examples the records lack (a chunk lost or deleted),
    then refuses to go on if any is still missing: never a smaller n."""
    for attempt in range(2):
      recorded = set()
      for path in records.all_chunk_paths(self.directory, "chunk"):
        index = metrics.Accumulator.load(path).arrays()["index"]
        recorded.update(index.tolist())
      missing = sorted(set(range(len(source))) - recorded)
      if not missing:
        return
      if attempt:
        raise RuntimeError(
          f"{self.directory}: the records hold {len(recorded)} of "
          f"{len(source)} examples after evaluating the missing ones again"
        )
      console.warning(
        f"{self.config.name or 'evaluation'}: {len(missing)} of {len(source)}"
        " examples are missing from the records (a records file was lost): "
        "evaluating them again"
      )
      recorder.Recorder(self.directory, "").reopen()
      sharding.barrier(f"reopened {self.directory}")
      evaluate(data.Subset(source, missing), positions=missing)
      sharding.barrier(f"repaired {self.directory}")

  def finish(self) -> dict:
    """Outputs from the records, then the manifest says complete."""
    e = self.config.evaluate
    if jax.process_index() == 0:
      summary, names = outputs.finalise(
        self.directory, e.threshold, figures=e.figures
      )
      expected = outputs.expected_examples(self.directory)
      if summary["n"] != expected:
        raise RuntimeError(
          f"{self.directory}: the records hold {summary['n']} of {expected} "
          "examples; not reported"
        )
      self.record.complete(
        outputs=names,
        records=records.records_manifest(self.directory),
        report_settings=self._report_settings(),
        examples=summary["n"],
      )
    sharding.barrier(f"finalised {self.directory}")
    return files.read_json(os.path.join(self.directory, outputs.SUMMARY))
