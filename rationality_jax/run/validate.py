"""Settings checked before any work: one `ConfigError` naming the key.

  validate.validate(config)        # a run or a grid (every cell)

The allowed values are read from their owners (the modes, the methods'
declared choices, the heatmaps, the metrics' policies, the preprocessing's
normalizations and mask orders), never listed here again.
"""

from __future__ import annotations

import math

import ml_collections

from rationality_jax import data
from rationality_jax import explain
from rationality_jax import methods
from rationality_jax import metrics
from rationality_jax.run import cells as cells_lib
from rationality_jax.run import config as config_lib
from rationality_jax.run import modes
from rationality_jax.run import resolve


def _check(ok: bool, key: str, message: str) -> None:
  if not ok:
    raise config_lib.ConfigError(f"config.{key}: {message}")


def _one_of(config, key: str, allowed) -> None:
  """``config.<key>`` is one of `allowed`."""
  value = config
  for part in key.split("."):
    value = value[part]
  _check(value in allowed, key, f"{value!r} is not one of {tuple(allowed)}")


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks ranges, types and relations before any work (ConfigError)."""
  _one_of(config, "mode", modes.MODES)
  if config.mode in ("selfcheck", "pretrain"):
    return
  if config.mode == "sanity":
    validate_run(config)
    _sanity(config)
    return
  if config.mode == "grid":
    validate_grid(config)
  elif config.mode == "wise_ft":
    _check(
      bool(config.wise_ft.finetuned_workdir),
      "wise_ft.finetuned_workdir",
      "no training run given: set it to a finished training workdir",
    )
    for i, alpha in enumerate(config.wise_ft.alphas):
      _check(
        math.isfinite(alpha), f"wise_ft.alphas[{i}]", f"{alpha} is not finite"
      )
  else:
    validate_run(config)


def validate_grid(config: ml_collections.ConfigDict) -> None:
  """`validate` of a grid: unique cells, each a valid run."""
  _check(bool(config.cells), "cells", "a grid needs at least one cell")
  seeds = list(config.get("seeds", ()))
  _check(
    len(set(seeds)) == len(seeds),
    "seeds",
    f"{seeds}: each seed once (a seed's cells share its directories)",
  )
  cells = cells_lib.expand_seeds(config)
  names = [c["name"] for c in cells]
  dup = sorted({n for n in names if names.count(n) > 1})
  _check(not dup, "cells", f"cell names must be unique; repeated: {dup}")
  for cell_spec in cells:
    model = cell_spec["model"]
    _check(
      model in config.models,
      "cells",
      f"cell {cell_spec['name']!r} names model {model!r}, not among "
      f"config.models ({sorted(config.models)})",
    )
    _check(
      bool(config.models[model].path),
      f"models.{model}.path",
      f"no checkpoint given for {model} (used by cell "
      f"{cell_spec['name']!r}): set --config.models.{model}.path=<checkpoint, "
      "hub id or random:<arch>>",
    )
    run = cells_lib.for_cell(config, cell_spec)
    try:
      validate_run(run)
      _sanity(run)
    except config_lib.ConfigError as e:
      raise config_lib.ConfigError(f"cell {cell_spec['name']!r}: {e}") from None


def validate_run(config: ml_collections.ConfigDict) -> None:
  """`validate` of one run (train or evaluate)."""
  _model(config)
  _one_of(config, "method", methods.METHODS)
  for method in methods.METHODS.values():
    for option, allowed in method.choices.items():
      _one_of(config, f"{method.options_section}.{option}", allowed)
  for option, allowed in methods.heads.CHOICES.items():
    _one_of(config, f"head.{option}", allowed)
  _preprocess(config)
  _train(config)
  _heatmap(config)
  _evaluate(config)
  d = config.distributed
  _check(
    d.barrier_timeout_s >= 1,
    "distributed.barrier_timeout_s",
    f"{d.barrier_timeout_s} < 1 (seconds a host waits for the others)",
  )


def _model(config) -> None:
  m = config.model
  _check(
    bool(m.path) or bool(config.evaluate.train_dir),
    "model.path",
    "no model given: set a checkpoint path, a hub id or random:<arch> "
    "(random weights only when asked for by name)",
  )
  _check(m.image_size >= 0, "model.image_size", f"{m.image_size} < 0")
  _one_of(config, "model.dtype", config_lib.DTYPES)
  _one_of(config, "model.param_dtype", config_lib.DTYPES)
  _check(
    m.accelerator_dtype in ("", *config_lib.DTYPES),
    "model.accelerator_dtype",
    f"{m.accelerator_dtype!r}: use '' (model.dtype everywhere) or one of "
    f"{config_lib.DTYPES} (GPU/TPU only)",
  )


def _preprocess(config) -> None:
  p = config.preprocess
  _one_of(
    config,
    "preprocess.normalization",
    ("model", *data.preprocess.NORMALIZATION),
  )
  _one_of(config, "preprocess.mask_order", data.preprocess.MASK_ORDERS)
  _check(
    p.mask_order == "ours" or p.eval == "study",
    "preprocess.mask_order",
    f"'release' is a way of the 'study' eval preset; preprocess.eval is "
    f"{p.eval!r}",
  )
  for key, presets in (
    ("train", resolve.TRAIN_PREPROCESS),
    ("eval", resolve.EVAL_PREPROCESS),
  ):
    _check(
      p[key] in presets or "(" in p[key],
      f"preprocess.{key}",
      f"{p[key]!r} is neither a preset {sorted(presets)} nor a spec",
    )


def _train(config) -> None:
  t = config.train
  _check(t.batch_size >= 1, "train.batch_size", f"{t.batch_size} < 1")
  _check(
    t.total_steps >= -1,
    "train.total_steps",
    f"{t.total_steps}: use -1 (from num_epochs) or >= 0",
  )
  _check(
    t.total_steps >= 0 or (math.isfinite(t.num_epochs) and t.num_epochs > 0),
    "train.num_epochs",
    f"{t.num_epochs} must be > 0 (or set train.total_steps)",
  )
  _check(t.log_every >= 1, "train.log_every", f"{t.log_every} < 1")
  _check(t.input_threads >= 1, "train.input_threads", "must be >= 1")
  _check(t.input_workers >= 0, "train.input_workers", "must be >= 0")
  lr = t.optim.lr
  _check(
    math.isfinite(lr) and lr >= 0,
    "train.optim.lr",
    f"{lr} must be finite and >= 0 (a negative rate ascends the loss)",
  )
  _check(
    t.checkpoint.every_steps >= 1,
    "train.checkpoint.every_steps",
    f"{t.checkpoint.every_steps} < 1",
  )
  _check(t.checkpoint.keep >= 0, "train.checkpoint.keep", "must be >= 0")


def _heatmap(config) -> None:
  h = config.heatmap
  _one_of(config, "heatmap.name", config_lib.heatmaps())
  _one_of(config, "heatmap.target", explain.targets.TARGETS)
  _one_of(config, "heatmap.constant_map", explain.postprocess.CONSTANT_MAPS)
  _one_of(config, "heatmap.signed", explain.postprocess.SIGNED_MAPS)
  try:  # the heatmap checks its own options
    resolve.heatmap(config)
  except (ValueError, TypeError) as e:
    options = ", ".join(
      f"{f}={h[f]!r}" for f in config_lib.heatmap_fields(h.name)
    )
    raise config_lib.ConfigError(
      f"config.heatmap ({h.name}: {options}): {e}"
    ) from None


def _sanity(config) -> None:
  known = config_lib.heatmaps()
  for name in filter(None, config.sanity.heatmaps.split("+")):
    _check(
      name in known,
      "sanity.heatmaps",
      f"{name!r} is not a heatmap; registered: {sorted(known)}",
    )
  _check(config.sanity.images >= 0, "sanity.images", "must be >= 0")
  _check(
    0.0 <= config.sanity.similar <= 1.0,
    "sanity.similar",
    f"{config.sanity.similar} is outside [0, 1]",
  )


def _evaluate(config) -> None:
  e = config.evaluate
  _check(e.batch_size >= 1, "evaluate.batch_size", f"{e.batch_size} < 1")
  _check(e.batches_per_chunk >= 1, "evaluate.batches_per_chunk", "must be >= 1")
  _check(e.figure_images >= 0, "evaluate.figure_images", "must be >= 0")
  _check(
    e.gallery_images >= -1,
    "evaluate.gallery_images",
    f"{e.gallery_images}: must be >= -1 (-1 keeps every sample, 0 none)",
  )
  _check(e.input_threads >= 1, "evaluate.input_threads", "must be >= 1")
  _check(e.input_workers >= 0, "evaluate.input_workers", "must be >= 0")
  _check(
    e.max_batches >= 0,
    "evaluate.max_batches",
    f"{e.max_batches}: use 0 (every example) or a number of batches",
  )
  for mode in filter(None, e.faithfulness.split("+")):
    _check(
      mode in explain.faithfulness.MODES,
      "evaluate.faithfulness",
      f"{e.faithfulness!r}: use '' or '+'-joined {explain.faithfulness.MODES}",
    )
  _check(
    e.faithfulness_steps >= 1, "evaluate.faithfulness_steps", "must be >= 1"
  )
  _one_of(config, "evaluate.faithfulness_fill", explain.faithfulness.FILLS)
  _one_of(config, "evaluate.empty_mask", metrics.POLICIES)
  _one_of(config, "evaluate.nonfinite", metrics.POLICIES)
  for key, value in [("evaluate.threshold", e.threshold)] + [
    (f"report.thresholds[{i}]", v)
    for i, v in enumerate(config.report.thresholds)
  ]:
    _check(0.0 <= value <= 1.0, key, f"{value} is outside [0, 1]")
