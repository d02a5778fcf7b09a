r"""A grid of experiments: train each cell's method, evaluate it, report them all.

    grid.run(config, workdir)     # configs/demo.py, configs/paper.py

A cell names a model, a (training) dataset, a method and a heatmap method;
optionally an evaluation dataset of its own (ImageNet-C: the ImageNet model
evaluated on a corruption and severity) and training overrides (ablations:
optimiser, learning rate). Every stage keeps its output and is skipped when it
is already complete, so a killed grid resumes where it stopped:

    <workdir>/data/                       datasets built here (unless config.data_dir)
    <workdir>/pretrain/model/             the pretrained model (config.pretrain)
    <workdir>/train/<model>-<dataset>-<method>[-<variant>]/   rationality_jax.train
    <workdir>/eval/<cell name>/           rationality_jax.evaluate records + per-run report
    <workdir>/report.md, results.csv, results.json, figures/*.png

Config fields (see configs/demo.py for a complete one):
  data_dir: where datasets live ("" = <workdir>/data).
  pretrain: ConfigDict of `rationality_jax.pretrain` with `enabled` (demo only).
  models: {name: checkpoint path for `models.load`; "pretrain" = the pretrained one}.
  datasets: {name: {builder, builder_kwargs, build, train_split, eval_split,
            pp_train, pp_eval}}.
  train: a configs/train.py config; each cell's copy gets its method, model
         path, dataset and the cell's `train` overrides.
  cells: [{name, model, dataset, method, heatmap, heatmap_args, variant, train,
           eval_dataset, eval_builder_kwargs, corruption, severity}].
  eval: {batch_size, batches_per_chunk, figure_images, threshold, input_threads,
         run_figures (a PT/IR-threshold figure per run, default True)}.
  report: {title, published (the study's values beside ours), thresholds}.
"""

from __future__ import annotations

import copy
import json
import os
import time

from absl import logging
import jax
import ml_collections
import numpy as np

from rationality_jax import data
from rationality_jax import evaluate
from rationality_jax import explain
from rationality_jax import report

FIGURES = "figures"


def _resolve_model(config, name: str, workdir: str) -> str:
  path = config.models[name]
  if path == "pretrain":
    return os.path.join(workdir, "pretrain", "model")
  return path


def data_dir(config, workdir: str) -> str:
  return config.data_dir or os.path.join(workdir, "data")


def ensure_pretrained(config, workdir: str) -> str | None:
  """Runs `rationality_jax.pretrain` unless its model exists; returns its path."""
  if not config.get("pretrain") or not config.pretrain.enabled:
    return None
  out = os.path.join(workdir, "pretrain", "model")
  if os.path.exists(os.path.join(out, "rationality_jax_model.json")):
    logging.info("pretrained model found at %s", out)
    return out
  from rationality_jax import pretrain

  pcfg = copy.deepcopy(config.pretrain)
  with pcfg.unlocked():
    pcfg.data_dir = pcfg.data_dir or data_dir(config, workdir)
  data.build("synthetic_rationality", pcfg.data_dir, **pcfg.dataset)
  start = time.perf_counter()
  pretrain.pretrain(pcfg, out)
  logging.info("pretrained %s in %.0fs", out, time.perf_counter() - start)
  return out


def cell_value(cell, key: str, default=None):
  value = cell.get(key, default)
  return default if value is None else value


def train_dir(cell, workdir: str) -> str:
  parts = [cell.model, cell.dataset, cell.method] + (
    [cell.variant] if cell_value(cell, "variant", "") else []
  )
  return os.path.join(workdir, "train", "-".join(parts))


def train_config(config, cell, workdir: str) -> ml_collections.ConfigDict:
  """The cell's copy of `config.train` (method, model, dataset, overrides)."""
  tc = copy.deepcopy(config.train)
  ds = config.datasets[cell.dataset]
  with tc.unlocked():
    tc.method = cell.method
    tc.model.path = _resolve_model(config, cell.model, workdir)
    tc.dataset.name = ds.builder
    tc.dataset.data_dir = data_dir(config, workdir)
    tc.dataset.build = ds.build
    tc.dataset.train_split = ds.train_split
    tc.dataset.builder_kwargs = ml_collections.ConfigDict(
      ds.builder_kwargs.to_dict()
    )
    tc.pp_train = ds.pp_train
    tc.pp_eval = ds.pp_eval
    tc.eval_split = ""  # accuracy comes from the rationality evaluation
    if cell.method == "zs":
      tc.total_steps = (
        0  # nothing trains: the run only stores the zero-shot head
      )
    overrides = cell_value(cell, "train", {})
    if overrides:
      tc.update(
        overrides.to_dict() if hasattr(overrides, "to_dict") else overrides
      )
  return tc


def ensure_trained(config, cell, workdir: str) -> str:
  """Trains the cell's method unless its run finished; returns the run's directory.

  A cell with `train_dir` set evaluates that finished training run instead.
  """
  if cell_value(cell, "train_dir", ""):
    return cell.train_dir
  out = train_dir(cell, workdir)
  if os.path.exists(os.path.join(out, "train_result.json")):
    return out
  from rationality_jax import train

  start = time.perf_counter()
  result = train.train_and_evaluate(train_config(config, cell, workdir), out)
  logging.info(
    "trained %s in %.0fs (last loss %s)",
    out,
    time.perf_counter() - start,
    result.get("loss"),
  )
  return out


def heatmap_name(cell) -> str:
  args = dict(cell_value(cell, "heatmap_args", {}))
  return (
    f"{cell.heatmap}("
    + ", ".join(f"{k}={v}" for k, v in sorted(args.items()))
    + ")"
  )


def eval_source(config, cell, workdir: str):
  """(source, eval preprocessing spec) of the cell's evaluation data."""
  ds = config.datasets[cell_value(cell, "eval_dataset", "") or cell.dataset]
  extra = cell_value(cell, "eval_builder_kwargs", {})
  kwargs = dict(
    ds.builder_kwargs.to_dict(), **(extra.to_dict() if extra else {})
  )
  if ds.build:
    data.build(ds.builder, data_dir(config, workdir), **kwargs)
  split = cell_value(cell, "eval_split", "") or ds.eval_split
  return data.get_source(
    ds.builder, split, data_dir(config, workdir), **kwargs
  ), ds.pp_eval


def figure_ids(source, count: int) -> list[str]:
  return [source[i]["id"] for i in range(min(count, len(source)))]


def evaluate_cell(config, cell, workdir: str, **kwargs) -> str:
  """Evaluates a trained cell into <workdir>/eval/<cell.name>; returns that directory."""
  out = os.path.join(workdir, "eval", cell.name)
  if evaluate.is_complete(out):
    return out
  trained = ensure_trained(config, cell, workdir)
  from rationality_jax import train

  loaded = train.load_for_evaluation(trained)
  method = explain.get_method(
    cell.heatmap, **dict(cell_value(cell, "heatmap_args", {}))
  )
  explain_fn = explain.make_explainer(
    loaded["module"], loaded["classifier"], method, target="label", jit=False
  )
  source, preprocess = eval_source(config, cell, workdir)
  meta = {
    "name": cell.name,
    "model": cell.model,
    "dataset": cell_value(cell, "eval_dataset", "") or cell.dataset,
    "method": loaded["method"],
    "heatmap": heatmap_name(cell),
    "corruption": cell_value(cell, "corruption", ""),
    "severity": cell_value(cell, "severity", 0),
    "train_dir": os.path.relpath(trained, workdir),
    "train_step": int(loaded["step"]),
    "preprocess": preprocess,
    "num_examples": len(source),
  }
  params = jax.device_put(loaded["params"])
  head = jax.device_put(loaded["head"])
  evaluate.run_evaluation(
    explain_fn,
    params,
    head,
    source,
    out,
    preprocess=preprocess,
    batch_size=config.eval.batch_size,
    meta=meta,
    figure_ids=figure_ids(source, config.eval.figure_images),
    batches_per_chunk=config.eval.batches_per_chunk,
    num_threads=config.eval.input_threads,
    **kwargs,
  )
  rows = report.collect([out], config.eval.threshold)
  figures = []
  if config.eval.get("run_figures", True):
    figures.append(
      report.figure_threshold_curves(
        [out], os.path.join(out, "pt_ir_threshold.png")
      )
    )
  report.write(rows, out, title=f"Run {cell.name}", figures=figures)
  return out


def _display_examples(source, preprocess: str, ids):
  """{id: image uint8}, {id: mask} at the model's input geometry (no normalisation)."""
  geometry = "|".join(
    op
    for op in preprocess.split("|")
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
      ex = pp(
        {"image": ex["image"], "mask": ex["mask"]}, np.random.default_rng(0)
      )
      images[source[i]["id"]], masks[source[i]["id"]] = ex["image"], ex["mask"]
      if len(images) == len(wanted):
        break
  return images, masks


def write_report(config, cells, eval_dirs, workdir: str) -> dict[str, str]:
  """The grid's report.md / results.csv / results.json and figures in `workdir`."""
  rows = report.collect(eval_dirs, config.eval.threshold)
  figures_dir = os.path.join(workdir, FIGURES)
  os.makedirs(figures_dir, exist_ok=True)
  figures = [
    report.figure_threshold_curves(
      [
        d
        for d, c in zip(eval_dirs, cells)
        if not cell_value(c, "corruption", "")
      ],
      os.path.join(figures_dir, "pt_ir_threshold.png"),
      thresholds=tuple(config.report.thresholds),
    )
  ]
  clean = [
    (c, d)
    for c, d in zip(cells, eval_dirs)
    if not cell_value(c, "corruption", "")
  ]
  groups: dict[tuple[str, str], list] = {}
  for c, d in clean:
    groups.setdefault((c.model, c.dataset), []).append((c, d))
  for (model, dataset), members in groups.items():
    source, preprocess = eval_source(config, members[0][0], workdir)
    ids = figure_ids(source, config.eval.figure_images)
    images, masks = _display_examples(source, preprocess, ids)
    figures.append(
      report.figure_heatmaps(
        [d for _, d in members],
        images,
        masks,
        os.path.join(figures_dir, f"heatmaps_{model}_{dataset}.png"),
        ids=ids,
      )
    )
  if any(r["corruption"] for r in rows):
    figures.append(
      report.figure_corruptions(
        rows, os.path.join(figures_dir, "corruptions.png")
      )
    )
  published = report.PUBLISHED if config.report.published else None
  return report.write(
    rows,
    workdir,
    title=config.report.title,
    published=published,
    figures=figures,
    notes=config.report.get("notes", ""),
  )


def run(config, workdir: str) -> dict:
  """Pretrains (if asked), trains and evaluates every cell, writes the report.

  Returns:
    {'rows': the report rows, 'paths': the report files, 'seconds': {stage: s}}.
  """
  start = time.perf_counter()
  seconds = {}
  ensure_pretrained(config, workdir)
  seconds["pretrain"] = time.perf_counter() - start
  eval_dirs = []
  for cell in config.cells:
    t = time.perf_counter()
    logging.info(
      "cell %s: %s %s %s, heatmap %s",
      cell.name,
      cell.model,
      cell.dataset,
      cell.method,
      heatmap_name(cell),
    )
    ensure_trained(config, cell, workdir)
    seconds[f"train {cell.name}"] = time.perf_counter() - t
    t = time.perf_counter()
    eval_dirs.append(evaluate_cell(config, cell, workdir))
    seconds[f"evaluate {cell.name}"] = time.perf_counter() - t
  t = time.perf_counter()
  paths = write_report(config, config.cells, eval_dirs, workdir)
  seconds["report"] = time.perf_counter() - t
  seconds["total"] = time.perf_counter() - start
  rows = report.collect(eval_dirs, config.eval.threshold)
  with open(os.path.join(workdir, "timings.json"), "w") as f:
    json.dump(seconds, f, indent=1)
  logging.info("report: %s", paths["report.md"])
  with open(paths["report.md"]) as f:
    print(f.read())
  return {"rows": rows, "paths": paths, "seconds": seconds}


# ------------------------------------------------------- config helpers ----


def config_file(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """`get_config(arg)` of configs/<name>.py (for configs built on other configs)."""
  import importlib.util

  path = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "configs",
    f"{name}.py",
  )
  spec = importlib.util.spec_from_file_location(f"configs_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def dataset(
  builder: str,
  pp_eval: str,
  pp_train: str = "",
  build: bool = False,
  train_split: str = "train",
  eval_split: str = "test",
  **builder_kwargs,
) -> ml_collections.ConfigDict:
  """A `config.datasets` entry."""
  return ml_collections.ConfigDict(
    dict(
      builder=builder,
      pp_eval=pp_eval,
      pp_train=pp_train or pp_eval,
      build=build,
      train_split=train_split,
      eval_split=eval_split,
      builder_kwargs=ml_collections.ConfigDict(builder_kwargs),
    )
  )


def cell(
  name: str,
  model: str,
  dataset: str,
  method: str,
  heatmap: str = "chefer",
  heatmap_args: dict | None = None,
  variant: str = "",
  train: dict | None = None,
  eval_dataset: str = "",
  eval_split: str = "",
  eval_builder_kwargs: dict | None = None,
  corruption: str = "",
  severity: int = 0,
  train_dir: str = "",
) -> dict:
  """A `config.cells` entry (see the module docstring).

  train: nested overrides of the training config, e.g. {'optim': {'lr': 1e-4}}.
  """
  return ml_collections.ConfigDict(
    dict(
      name=name,
      model=model,
      dataset=dataset,
      method=method,
      heatmap=heatmap,
      heatmap_args=dict(heatmap_args or {}),
      variant=variant,
      train=dict(train or {}),
      eval_dataset=eval_dataset,
      eval_split=eval_split,
      eval_builder_kwargs=dict(eval_builder_kwargs or {}),
      corruption=corruption,
      severity=severity,
      train_dir=train_dir,
    )
  )
