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

import copy
import os
import time
import traceback

from absl import logging
import ml_collections
import numpy as np

from rationality_jax import console
from rationality_jax import data
from rationality_jax import files
from rationality_jax import report
from rationality_jax.report import records as records_lib
from rationality_jax.run import config as config_lib
from rationality_jax.run import evaluate
from rationality_jax.run import pretrain
from rationality_jax.run import resolve
from rationality_jax.run import train

FIGURES = "figures"
PRETRAINED = "pretrain"  # model.path of a grid model: the pretrain stage's


class GridFailed(RuntimeError):
  """Some cells failed; the report lists them."""


def cell_config(
  config: ml_collections.ConfigDict, cell, workdir: str
) -> ml_collections.ConfigDict:
  """The run config of `cell`, with the grid's pretrained model resolved."""
  run_config = config_lib.for_cell(config, cell)
  with run_config.unlocked():
    run_config.name = cell["name"]
    if run_config.model.path == PRETRAINED:
      run_config.model.path = os.path.join(workdir, PRETRAINED, "model")
    if not run_config.data.dir:
      run_config.data.dir = os.path.join(workdir, "data")
    run_config.train.eval_accuracy = False
  return run_config


def train_dir(run_config: ml_collections.ConfigDict, workdir: str) -> str:
  """``train/<method>-<model>-<hash>``: keyed by what determines the run."""
  digest = config_lib.fingerprint_digest(resolve.train_fingerprint(run_config))
  name = f"{run_config.method}-{resolve.model_name(run_config)}-{digest}"
  return os.path.join(workdir, "train", name)


def ensure_trained(run_config, workdir: str) -> None:
  """Trains the cell's method unless its run finished; sets evaluate.train_dir."""
  if run_config.method == "zs" or run_config.evaluate.train_dir:
    return
  directory = train_dir(run_config, workdir)
  if not os.path.exists(os.path.join(directory, train.RESULT)):
    console.stage(f"{run_config.name}: train {run_config.method}")
    train.train_and_evaluate(run_config, directory)
  run_config.evaluate.train_dir = directory


def evaluate_cell(run_config, workdir: str, fresh: bool) -> str:
  """Evaluates one (trained) cell into eval/<name>; returns that directory."""
  out = os.path.join(workdir, "eval", run_config.name)
  console.stage(
    f"{run_config.name}: evaluate ({resolve.heatmap_label(run_config)})"
  )
  evaluate.run(run_config, out, fresh=fresh, announce=False)
  return out


def run(config: ml_collections.ConfigDict, workdir: str, fresh: bool = False):
  """Pretrains (if asked), trains and evaluates every cell, writes the report.

  Returns:
    {'rows': the report rows, 'paths': the report files, 'seconds': {stage:
    s}, 'failed': [{name, stage, error}]}; raises GridFailed after writing
    the report if a cell failed.
  """
  start = time.perf_counter()
  seconds = {}
  if config.pretrain.enabled:
    pretrain.ensure(config.pretrain, os.path.join(workdir, PRETRAINED), workdir)
  seconds["pretrain"] = time.perf_counter() - start
  eval_dirs, done, failures = [], [], []
  for i, cell in enumerate(config.cells, start=1):
    name = cell["name"]
    console.stage(f"cell {i}/{len(config.cells)}: {name}")
    t, stage = time.perf_counter(), "train"
    run_config = cell_config(config, cell, workdir)
    try:
      ensure_trained(run_config, workdir)
      seconds[f"train {name}"] = time.perf_counter() - t
      stage = "evaluate"
      eval_dirs.append(evaluate_cell(run_config, workdir, fresh))
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
  paths = write_report(config, done, eval_dirs, workdir, failures)
  seconds["report"] = time.perf_counter() - t
  seconds["total"] = time.perf_counter() - start
  files.write_json(os.path.join(workdir, "timings.json"), seconds)
  rows = report.collect(eval_dirs, config.evaluate.threshold)
  console.table(report.console_table(rows, failures))
  console.stage(f"report: {paths['report.md']}")
  result = {
    "rows": rows,
    "paths": paths,
    "seconds": seconds,
    "failed": failures,
  }
  if failures:
    raise GridFailed(
      f"{len(failures)} of {len(config.cells)} cells failed "
      f"({', '.join(f['name'] for f in failures)}); see {paths['report.md']} "
      "and log.txt"
    )
  return result


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


def write_report(config, cells, eval_dirs, workdir: str, failures=()):
  """The grid's report.md / results.csv / results.json and figures in `workdir`."""
  rows = report.collect(eval_dirs, config.evaluate.threshold)
  figures_dir = os.path.join(workdir, FIGURES)
  os.makedirs(figures_dir, exist_ok=True)
  clean = [
    (c, d) for c, d in zip(cells, eval_dirs) if not c.get("corruption", "")
  ]
  figures = []
  if clean:
    figures.append(
      report.figure_threshold_curves(
        [d for _, d in clean],
        os.path.join(figures_dir, "pt_ir_threshold.png"),
        thresholds=tuple(config.report.thresholds),
      )
    )
  groups: dict[tuple[str, str], list] = {}
  for c, d in clean:
    meta = files.read_json(os.path.join(d, report.META))
    groups.setdefault((meta["model"], meta["dataset"]), []).append((c, d, meta))
  for (model, dataset), members in groups.items():
    first_config = cell_config(config, members[0][0], workdir)
    source, _ = resolve.source(first_config, workdir, "eval")
    meta = members[0][2]
    count = min(config.evaluate.figure_images, len(source))
    ids = [source[i]["id"] for i in range(count)]
    # Runs on other examples (another split order, a subset) are left out.
    shown = [
      d for _, d, _ in members if set(ids) <= set(records_lib.load_heatmaps(d))
    ]
    if not ids or not shown:
      continue
    images, masks = _display_examples(source, meta["preprocess"], ids)
    figures.append(
      report.figure_heatmaps(
        shown,
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
  sections = []
  pairs = quirk_pairs(config)
  if pairs:
    deltas = report.quirk_deltas(rows, pairs)
    sections = report.quirk_sections(deltas)
    figures.append(
      report.figure_quirks(deltas, os.path.join(figures_dir, "quirks.png"))
    )
  published = report.PUBLISHED if config.report.published else None
  return report.write(
    rows,
    workdir,
    title=config.report.title,
    published=published,
    figures=figures,
    notes=config.report.get("notes", ""),
    failures=failures,
    settings=settings_lines(config),
    sections=sections,
  )


def quirk_pairs(config: ml_collections.ConfigDict) -> list[dict]:
  """{quirk, name, baseline} of the cells that switch a quirk on against a
  baseline cell (a cell's optional ``quirk`` and ``baseline`` keys, set by
  `quirk_cells`)."""
  return [
    {
      "quirk": c["quirk"],
      "name": c["name"],
      "baseline": c["baseline"],
      "source": c.get("quirk_source", ""),
    }
    for c in config.cells
    if c.get("quirk")
  ]


def quirk_cells(
  baseline: dict,
  quirks: dict[str, dict],
  sources: dict[str, str] | None = None,
  separator: str = "+",
) -> list[dict]:
  """The quirk ablation of one cell: `baseline` itself, then one cell per
  quirk with that quirk's overrides on top (named ``<baseline><sep><quirk>``).

  Args:
    baseline: a `config.cell`.
    quirks: {quirk name: dotted overrides}.
    sources: {quirk name: what the release does, and where}, for the report.
  """
  cells = [baseline]
  for quirk, overrides in quirks.items():
    cell = copy.deepcopy(baseline)
    cell["name"] = f"{baseline['name']}{separator}{quirk}"
    cell["set"] = {**baseline["set"], **overrides}
    cell.update(
      quirk=quirk,
      baseline=baseline["name"],
      quirk_source=(sources or {}).get(quirk, ""),
    )
    cells.append(cell)
  return cells


# Cells listed by name in a settings line before "and N more".
SETTINGS_CELLS = 4
# Cell overrides every report table already shows (method, corruption).
CELL_IDENTITY = ("method", "eval_data.split")


def settings_lines(config: ml_collections.ConfigDict) -> list[str]:
  """The preset that ran and every option that differs from the default.

  Lines, in order: the preset; every base run-config option that differs
  from `config.default`; per model section, its fields that differ from an
  empty `config.model_section` (besides path and name); per dataset, the
  builder options that differ from the builder's defaults; per cell
  override that differs from the default and from the grid's own value,
  the cells that set it (``CELL_IDENTITY``, in every table, is not
  repeated).
  """
  lines = []
  preset = config.get("preset", "")
  if preset:
    lines.append(f"preset: {preset}")
  base = config_lib.to_dict(config_lib.default())
  ours = config_lib.to_dict(
    ml_collections.ConfigDict(
      {k: copy.deepcopy(v) for k, v in config.items() if k in base}
    )
  )
  ignore = ("mode", "model", "data", "train_data", "eval_data", "report")
  for key in _flat(ours):
    if key.split(".")[0] in ignore:
      continue
    if _get(base, key) != _get(ours, key):
      lines.append(f"{key} = {_get(ours, key)!r} (default {_get(base, key)!r})")
  default_model = config_lib.to_dict(config_lib.model_section())
  for name, section in config.get("models", {}).items():
    model = config_lib.to_dict(section)
    for key in sorted(model):
      if key not in ("path", "name") and model[key] != default_model.get(key):
        lines.append(
          f"models.{name}.{key} = {model[key]!r} "
          f"(default {default_model.get(key)!r})"
        )
  for name, section in config.get("datasets", {}).items():
    for which in ("train_data", "eval_data"):
      builder = section[which].name or section.train_data.name
      changed = _builder_changes(builder, section[which].builder_kwargs)
      if changed:
        options = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        lines.append(f"datasets.{name}.{which} ({builder}): {options}")
  by_override: dict[tuple[str, str], list[str]] = {}
  for cell in config.get("cells", []):
    for key, value in dict(cell.get("set", {})).items():
      if key in CELL_IDENTITY or value in (_get(base, key), _get(ours, key)):
        continue
      by_override.setdefault((key, repr(value)), []).append(cell["name"])
  for (key, value), names in by_override.items():
    shown = ", ".join(names[:SETTINGS_CELLS])
    more = len(names) - SETTINGS_CELLS
    shown += f" and {more} more" if more > 0 else ""
    lines.append(
      f"{key} = {value} (default {_get(base, key)!r}) in {len(names)} "
      f"cell(s): {shown}"
    )
  return lines


def _builder_changes(builder: str, kwargs) -> dict:
  """The builder options in `kwargs` that differ from the builder's defaults."""
  kwargs = dict(kwargs.to_dict() if hasattr(kwargs, "to_dict") else kwargs)
  try:
    defaults = data.sources.builder_class(builder).BUILDER_CONFIGS[0]
  except ValueError:  # an unknown builder fails in its cell, named there
    return kwargs

  def plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value

  return {
    k: v
    for k, v in sorted(kwargs.items())
    if plain(getattr(defaults, k, None)) != plain(v)
  }


def _flat(tree, prefix=""):
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _flat(v, f"{prefix}{k}.")
  else:
    yield prefix.rstrip(".")


def _get(tree, key):
  for part in key.split("."):
    if not isinstance(tree, dict) or part not in tree:
      return None
    tree = tree[part]
  return tree
