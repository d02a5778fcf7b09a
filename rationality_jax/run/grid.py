r"""A grid of experiments: train each cell's method, evaluate it, report them all.

    grid.run(config, workdir)     # configs/demo.py, configs/paper.py

A grid config is the run config (`rationality_jax.run.config`) plus named
``models`` and ``datasets`` sections and ``cells``; a cell names one of each
and a set of dotted overrides, merged into the run config by
`config.for_cell` - the same schema `train` and `evaluate` read. Every stage
keeps its output and is reused when complete, so a killed grid resumes
where it stopped:

    <workdir>/data/                      datasets built here (unless data.dir)
    <workdir>/pretrain/model/            the demo's pretrained model (pretrain)
    <workdir>/train/<method>-<model>-<hash>/   a training run, keyed by what
                                         determines it (`resolve.train_fingerprint`)
    <workdir>/eval/<cell name>/          the cell's records and report
    <workdir>/report.md, results.csv, results.json, figures/*.png

A cell that fails (a missing checkpoint, a bad dataset, NaN) does not stop
the grid: every other cell runs, the failed ones are listed with their
one-line errors in report.md and missing from its tables, and `run` raises
`GridFailed` at the end (the command exits non-zero).
"""

from __future__ import annotations

import os
import time
import traceback

from absl import logging
import ml_collections
import numpy as np

from rationality_jax import console
from rationality_jax import data
from rationality_jax import files
from rationality_jax import manifest as manifest_lib
from rationality_jax import report
from rationality_jax.run import cells as cells_lib
from rationality_jax.run import config as config_lib
from rationality_jax.run import evaluate
from rationality_jax.run import pretrain
from rationality_jax.run import provenance
from rationality_jax.run import record
from rationality_jax.run import resolve
from rationality_jax.run import sanity
from rationality_jax.run import train

PRETRAINED = "pretrain"  # model.path of a grid model: the pretrain stage's
TIMINGS = "timings.json"


class GridFailed(RuntimeError):
  """Some cells failed; the report lists them."""


def cell_config(
  config: ml_collections.ConfigDict, cell, workdir: str
) -> ml_collections.ConfigDict:
  """The run config of `cell`, with the grid's pretrained model resolved."""
  run_config = cells_lib.for_cell(config, cell)
  with run_config.unlocked():
    run_config.name = cell["name"]
    run_config.group = cell.get("group", "")
    if run_config.model.path == PRETRAINED:
      run_config.model.path = os.path.join(workdir, PRETRAINED, "model")
    if not run_config.data.dir:
      run_config.data.dir = os.path.join(workdir, "data")
    run_config.train.eval_accuracy = False
  return run_config


def train_dir(run_config: ml_collections.ConfigDict, workdir: str) -> str:
  """``train/<method>-<model>-<hash>``: keyed by what determines the run."""
  digest = provenance.fingerprint_digest(resolve.train_fingerprint(run_config))
  name = f"{run_config.method}-{resolve.model_name(run_config)}-{digest}"
  return os.path.join(workdir, "train", name)


def ensure_trained(run_config, workdir: str) -> None:
  """Trains the cell's method unless its run finished; sets evaluate.train_dir."""
  if run_config.method == "zs" or run_config.evaluate.train_dir:
    return
  directory = train_dir(run_config, workdir)
  if not record.training_progress(directory)["finished"]:
    console.stage(f"{run_config.name}: train {run_config.method}")
    train.train_and_evaluate(run_config, directory)
  run_config.evaluate.train_dir = directory


def evaluate_cell(run_config, workdir: str) -> str:
  """Evaluates one (trained) cell into eval/<name>; returns that directory."""
  out = os.path.join(workdir, "eval", run_config.name)
  console.stage(
    f"{run_config.name}: evaluate ({resolve.heatmap_label(run_config)})"
  )
  evaluate.run(run_config, out, announce=False)
  return out


def cell_claims(config, workdir: str) -> list[tuple]:
  """(eval/<cell>, its evaluation's fingerprint, what, ('trained.step',)) of
  every cell whose fingerprint is known before it runs (a cell whose model
  cannot be read yet fails in its cell, named there)."""
  claims = []
  for cell in cells_lib.expand_seeds(config):
    run_config = cell_config(config, cell, workdir)
    try:
      trained, _ = evaluate.model_fingerprint(run_config)
      fingerprint = resolve.eval_fingerprint(run_config, trained)
    except Exception as e:
      logging.info(
        "cell %s: no fingerprint before it runs: %s", cell["name"], e
      )
      continue
    claims.append(
      (
        os.path.join("eval", cell["name"]),
        fingerprint,
        f"cell {cell['name']}'s evaluation records",
        ("trained.step",),
      )
    )
  return claims


def run(config: ml_collections.ConfigDict, workdir: str, fresh: bool = False):
  """Pretrains (if asked), trains and evaluates every cell, writes the report.

  Plans first: a cell directory holding another configuration's records
  refuses the whole grid before anything is written (or, with `fresh`, the
  grid runs in ``<workdir>/fresh-<digest>``).

  Returns:
    {'rows': the report rows, 'paths': the report files, 'seconds': {stage:
    s}, 'failed': [{name, stage, error}]}; raises GridFailed after writing
    the report if a cell failed.
  """
  claims = cell_claims(config, workdir)
  fingerprint = {"stage": "grid", "cells": {c[0]: c[1] for c in claims}}
  directory = record.plan(
    workdir, fingerprint, "a grid", fresh, claims, container=True
  )
  if directory != os.path.abspath(workdir):
    claims = cell_claims(config, directory)
    fingerprint = {"stage": "grid", "cells": {c[0]: c[1] for c in claims}}
  with record.open_run(
    directory, fingerprint, config, "grid", container=True
  ) as run_record:
    run_record.start()
    result = _run_cells(config, directory)
    outputs = [os.path.relpath(p, directory) for p in result["paths"].values()]
    failed = [f["name"] for f in result["failed"]]
    run_record.complete(
      outputs=[*outputs, TIMINGS],
      status="failed" if failed else manifest_lib.COMPLETE,
      failed=failed,
    )
  if failed:
    raise GridFailed(
      f"{len(failed)} of {len(cells_lib.expand_seeds(config))} cells failed "
      f"({', '.join(failed)}); see {result['paths']['report.md']} and log.txt"
    )
  return result


def _run_cells(config, workdir: str) -> dict:
  """Every cell in turn (a failed one is reported, the others run), then the
  report and the console's table."""
  start = time.perf_counter()
  seconds = {}
  if config.pretrain.enabled:
    pretrain.ensure(config.pretrain, os.path.join(workdir, PRETRAINED), workdir)
  seconds["pretrain"] = time.perf_counter() - start
  eval_dirs, done, failures = [], [], []
  cells = cells_lib.expand_seeds(config)
  for i, cell in enumerate(cells, start=1):
    name = cell["name"]
    console.stage(f"cell {i}/{len(cells)}: {name}")
    t, stage = time.perf_counter(), "train"
    run_config = cell_config(config, cell, workdir)
    try:
      ensure_trained(run_config, workdir)
      seconds[f"train {name}"] = time.perf_counter() - t
      stage = "evaluate"
      eval_dirs.append(evaluate_cell(run_config, workdir))
      done.append(cell)
    except Exception as e:  # A failed cell is reported; the others still run.
      logging.error("cell %s failed:\n%s", name, traceback.format_exc())
      error = f"{type(e).__name__}: {e}".splitlines()[0]
      console.warning(f"cell {name} failed in {stage}: {error}")
      failures.append(
        {
          "name": name,
          "stage": stage,
          "error": error,
          "method": run_config.method,
          "model": run_config.model.name or cell["model"],
          "dataset": data.report_key(resolve.dataset(run_config, "eval")[0]),
        }
      )
    seconds[f"cell {name}"] = time.perf_counter() - t
  t = time.perf_counter()
  checks = sanity_checks(config, done, workdir)
  seconds["sanity"] = time.perf_counter() - t
  t = time.perf_counter()
  rows = report.collect(eval_dirs, config.evaluate.threshold)
  paths = write_report(config, done, eval_dirs, rows, workdir, failures, checks)
  seconds["report"] = time.perf_counter() - t
  seconds["total"] = time.perf_counter() - start
  files.write_json(os.path.join(workdir, TIMINGS), seconds)
  evaluate.warn(rows)
  console.table(report.console_table(rows, failures))
  console.stage(f"report: {paths['report.md']}")
  return {"rows": rows, "paths": paths, "seconds": seconds, "failed": failures}


# ------------------------------------------------------------------ report ----


def _display_examples(source, spec: str, ids):
  """{id: image uint8}, {id: mask} at the model's input geometry (no normalization)."""
  geometry = "|".join(
    op
    for op in spec.split("|")
    if not op.strip().startswith(("normalize", "keep"))
  )
  pp = (
    data.preprocess.parse(geometry) if geometry else (lambda ex, rng=None: ex)
  )
  wanted = set(ids)
  images, masks = {}, {}
  for i in range(len(source)):
    ex = source[i]
    if ex["id"] in wanted:
      # Every field the spec may read (the release's masks are made from
      # `soft_mask` or `boxes`).
      out = pp(dict(ex), np.random.default_rng(0))
      images[ex["id"]], masks[ex["id"]] = out["image"], out["mask"]
      if len(images) == len(wanted):
        break
  return images, masks


def _builder_defaults(builder: str):
  """The builder's default config, or None for an unknown builder."""
  try:
    return data.sources.builder_class(builder).BUILDER_CONFIGS[0]
  except ValueError:  # an unknown builder fails in its cell, named there
    return None


def sanity_checks(config, cells, workdir: str) -> list[dict]:
  """With ``sanity.images`` > 0, the randomisation test of every (model,
  heatmap) the evaluated cells used, on the model's zero-shot head
  (``<workdir>/sanity/<model>/<heatmap>/``; reused when there). Returns
  [{'model', 'heatmap' (its label), 'result'}]."""
  if not config.sanity.images:
    return []
  out, seen = [], set()
  for cell in cells:
    run_config = cell_config(config, cell, workdir)
    key = (run_config.model.name, resolve.heatmap_label(run_config))
    if key in seen:
      continue
    seen.add(key)
    with run_config.unlocked():
      run_config.method = "zs"
      run_config.evaluate.train_dir = ""
      run_config.sanity.heatmaps = run_config.heatmap.name
    label = "".join(c if c.isalnum() or c in "-_=." else "_" for c in key[1])
    directory = os.path.join(workdir, "sanity", key[0], label)
    path = os.path.join(directory, sanity.RESULT)
    if os.path.exists(path):
      results = files.read_json(path)
    else:
      console.stage(f"sanity checks: {key[1]} on {key[0]}")
      os.makedirs(directory, exist_ok=True)
      results = sanity.check(run_config, directory)
      sanity.write(directory, results, title=f"Sanity: {key[1]} on {key[0]}")
    out.append(
      {
        "model": key[0],
        "heatmap": key[1],
        "result": results[run_config.heatmap.name],
      }
    )
  return out


def write_report(
  config, cells, eval_dirs, rows, workdir: str, failures=(), checks=()
):
  """The grid's report.md / results.csv / results.json and figures in
  `workdir`, from `rows` (`report.collect` of `eval_dirs`)."""
  cell_of = dict(zip(eval_dirs, cells))

  def examples(run_dir: str):
    """The figure examples of `run_dir`'s model and dataset, as it saw them."""
    run_config = cell_config(config, cell_of[run_dir], workdir)
    source, _ = resolve.source(run_config, workdir, "eval")
    count = min(config.evaluate.figure_images, len(source))
    ids = [source[i]["id"] for i in range(count)]
    meta = files.read_json(os.path.join(run_dir, report.META))
    images, masks = _display_examples(source, meta["preprocess"], ids)
    return ids, images, masks

  return report.write_grid(
    rows,
    eval_dirs,
    workdir,
    examples=examples,
    thresholds=config.report.thresholds,
    quirk_pairs=report.quirk_pairs(config.cells),
    title=config.report.title,
    published=report.PUBLISHED if config.report.published else None,
    notes=config.report.get("notes", ""),
    failures=failures,
    settings=settings(config),
    sanity=checks,
  )


def settings(config) -> list[str]:
  """The report's settings lines of a grid (`report.settings_lines` against
  the run config's defaults and the builders' own)."""
  return report.settings_lines(
    config,
    config_lib.to_dict(config_lib.default()),
    config_lib.to_dict(cells_lib.model_section()),
    _builder_defaults,
  )
