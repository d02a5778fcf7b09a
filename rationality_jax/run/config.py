"""The run config: one schema for train, evaluate and grid (docs/run_config.md).

  config = rationality_jax.run.config.default()     # every field, documented below
  config.model.path = "/ckpt/ViT-B-16.pt"
  rationality_jax.run.config.validate(config)       # before any work; one line per error

A grid is the same schema plus ``models``, ``datasets`` and ``cells``: a cell
is a set of overrides merged into it (`for_cell`), never a second vocabulary.

Sizes and pixel statistics come from the model: ``model.image_size`` 0 means
the checkpoint's native size (OpenAI CLIP 224, ALBEF 256, BLIP 384), and the
preprocessing specs are built from that size (`preprocess_spec`) - no number
of pixels is typed in a config.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import sys
from typing import Any

import ml_collections

from rationality_jax.run import optim

MODES = ("selfcheck", "pretrain", "train", "evaluate", "grid")
NORMALIZATIONS = ("model", "clip", "imagenet")
DTYPES = ("float32", "bfloat16", "float16")
# Values of the options that reproduce the release (ours first).
MASK_ORDERS = ("ours", "release")  # preprocess.mask_order
CLASS_NAME_RULES = ("study", "release")  # head.class_names
CONSTANT_MAPS = ("zero", "nan")  # heatmap.constant_map
# Preprocessing presets; a spec string with `{size}` placeholders also works.
TRAIN_PREPROCESS = {
  # The release's augmentation at the model's size (RandomResizedCrop, flip,
  # ColorJitter 0.2 x4, rotation 30).
  "study": None,
  # Resize + center crop to the model's size, random horizontal flip.
  "flip": "resize({size})|center_crop({size})|random_flip_lr",
}
EVAL_PREPROCESS = {
  # The study's per-dataset Resize + CenterCrop, scaled to the model's size.
  "study": None,
  "resize": "resize({size})|center_crop({size})",
}


def methods() -> tuple[str, ...]:
  """The adaptation methods (`rationality_jax.methods.METHODS`) and wise_ft."""
  from rationality_jax import methods as methods_lib

  return (*methods_lib.METHODS, "wise_ft")


def heatmaps() -> tuple[str, ...]:
  """The heatmap (explanation) methods (`rationality_jax.explain.HEATMAPS`)."""
  from rationality_jax import explain

  return tuple(explain.HEATMAPS)


def heatmap_fields(name: str) -> tuple[str, ...]:
  """The options heatmap method `name` takes (its dataclass fields)."""
  from rationality_jax import explain

  return tuple(f.name for f in dataclasses.fields(explain.HEATMAPS[name]))


def _cd(**fields) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(fields)


def default() -> ml_collections.ConfigDict:
  """The run config with every field and its default.

  mode: what `rationality_jax.main` runs (`MODES`).
  name: the run's name in reports ('' = its method; a grid sets the cell's).
  seed: initialisation, data order, augmentation.

  model: path - a checkpoint path, a hub id or ``random:<arch>`` (required:
      an empty path is an error, never a silent random model); name - display
      name in reports ('' = from the path); image_size - 0 = native, else the
      position embeddings are resized; dtype / param_dtype - compute and
      parameter dtypes (`DTYPES`); accelerator_dtype - '' (ours: ``dtype``
      everywhere) or a `DTYPES` name that replaces ``dtype`` on GPU and TPU
      only, a no-op on CPU. The release's 'float16': ``clip.load`` keeps
      CLIP in float16 on CUDA and casts it to float32 only on CPU
      (utils/chefer_clip/clip.py and clip/clip.py, ``load``: ``if str(device)
      == "cpu": model.float()``), so its ZS/FLCP numbers are float16 ones
      (LP/FT are float32: utils/lp_model.py ``LP_Net`` casts every float16
      parameter to float32).
  data: dir - prepared datasets ('' = <workdir>/data); manual_dir - the
      original archives, to build a dataset that is not prepared yet.
  train_data, eval_data: name (a `rationality_jax.data.BUILDERS` key; ''
      for eval_data = train_data's), split, builder_kwargs.
  preprocess: train / eval - a preset (`TRAIN_PREPROCESS`, `EVAL_PREPROCESS`)
      or a spec with ``{size}``; normalization - 'model' (the family's) or a
      `data.preprocess.NORMALIZATION` key (the release: 'imagenet' for every
      model, utils/CUB_dataset.py, utils/IN_dataset.py, ... ``Normalize``);
      mask_order - how the ``study`` eval preset makes the mask: 'ours'
      (the stored binary mask moved with the image, nearest neighbour) or
      'release' (`data.preprocess.study_spec`: CUB's soft segmentation
      resized bilinearly then kept where still 255, utils/CUB_dataset.py
      ``seg_transform`` + test_rationale_vlm/clip_zs_flcp_cub.py lines
      52-53; Caltech/Dogs masks resized bilinearly; ImageNet boxes drawn
      into the crop, test_rationale_vlm/clip_zs_flcp_in.py lines 74-85).
  method: the adaptation method (`methods()`); trainable: '' = the method's
      regex, else a regex over parameter paths; head, lp, flcp, coop,
      adapter, wise_ft: the methods' options. head.class_names - the
      prompt names' rule (`data.class_names`): 'study' (ours) or 'release'
      (Dogs: ``folder.split('-')[1]``, Caltech: '_' -> ' '; the names of
      datasets/Stanford_Dogs/label_dict.json and
      datasets/caltech_101/label_dict.json read by my_util.py
      ``load_sd_dataset`` / ``load_ct_dataset``); the same for CUB,
      ImageNet and the synthetic benchmark.
  train: batch_size, num_epochs, total_steps (-1 = from num_epochs),
      log_every, input_threads, input_prefetch, input_workers (as
      evaluate.input_workers; the batches are the same), eval_accuracy (top-1 on
      eval_data at the end), optim (`rationality_jax.run.optim`), checkpoint;
      release_frozen_head - False (ours) or True: the method's head keeps
      its initial values (LP then trains nothing, FT only the backbone), as
      the release's LP/FT on CUB, Dogs and Caltech: finetune_vlm/lp_ft.py
      builds ``LP_Net``'s new head (lines 40-50) after my_util.py
      ``load_clip_model`` / ``load_albef_model`` / ``load_blip_model``
      made the Adam optimiser over the backbone's parameters only, so the
      head never updates (ImageNet, finetune_vlm/lp_ft_in.py line 55,
      rebuilds it over every parameter and trains its head).
  heatmap: name (`heatmaps()`) and its options (`heatmap_fields(name)`);
      target: 'label' (the study) or 'predicted'; constant_map - what min-max
      normalization makes of a constant map (`explain.make_explainer`):
      'zero' (ours) or 'nan' (the release's 0 / 0, utils/xml_analysis.py
      ``show_image_relevance`` line 101 and utils/xml_analysis_lp.py
      ``generate_visualization`` lines 110-111; with evaluate.nonfinite
      'release' such a sample counts as valid evidence).
  evaluate: batch_size, batches_per_chunk, figure_images, threshold,
      input_threads, input_workers (0: read, decode and preprocess in
      `input_threads` threads of this process; N: in N worker processes, for
      hosts with many cores, where the threads are held back by Python's
      GIL; the records are the same), train_dir (evaluate a finished training run instead of
      ``method``), figures (a PT/IR-threshold figure per run),
      empty_mask / nonfinite: the degenerate-case policies (`metrics.POLICIES`:
      'undefined', ours, or 'release'); max_batches - 0 (ours: every
      example) or N: only the first N x batch_size examples in ImageFolder
      order (by label, then id; per severity on ImageNet-C), as the release's
      ImageNet rationale scripts stop after 5 batches of their
      ``--batchsize_test`` (64 in its README):
      test_rationale_vlm/clip_zs_flcp_in.py lines 54-56,
      clip_lp_ft_in.py lines 53-55. The records, accuracy included, then
      hold those examples only (the release's accuracy is over all of them).
  report: title, published (the study's values beside ours), thresholds,
      notes.
  mesh, sharding, distributed: devices and hosts (`rationality_jax.sharding`).
  """
  c = ml_collections.ConfigDict()
  c.mode = "train"
  c.name = ""
  c.seed = 42
  c.model = _cd(
    path="",
    name="",
    image_size=0,
    dtype="float32",
    param_dtype="float32",
    accelerator_dtype="",
  )
  c.data = _cd(dir="", manual_dir="")
  c.train_data = _cd(
    name="synthetic_rationality",
    split="train",
    builder_kwargs=ml_collections.ConfigDict(),
  )
  c.eval_data = _cd(
    name="", split="test", builder_kwargs=ml_collections.ConfigDict()
  )
  c.preprocess = _cd(
    train="study", eval="study", normalization="model", mask_order="ours"
  )

  c.method = "zs"
  c.trainable = ""
  c.head = _cd(templates="study", cache_dir="", class_names="study")
  c.lp = _cd(feature="auto", init="random")
  c.flcp = _cd(temperature=-1.0, targets="diagonal", temp_range=(0.001, 0.5))
  c.coop = _cd(n_ctx=4, init="", class_specific=False)
  c.adapter = _cd(ratio=0.2, reduction=4)
  c.wise_ft = _cd(finetuned_workdir="", alphas=(0.0, 0.25, 0.5, 0.75, 1.0))
  c.train = _cd(
    batch_size=32,
    num_epochs=10.0,
    total_steps=-1,
    log_every=10,
    input_threads=2,
    input_prefetch=8,
    input_workers=0,
    eval_accuracy=True,
    optim=optim.study_preset(),
    checkpoint=_cd(every_steps=500, keep=3, async_save=True),
    release_frozen_head=False,
  )

  c.heatmap = _cd(
    name="chefer",
    start_layer=0,
    residual=0.5,
    layer=-1,
    site="norm1",
    steps=32,
    baseline=0.0,
    rule="trapezoid",
    target="label",
    constant_map="zero",
  )
  c.evaluate = _cd(
    batch_size=64,
    batches_per_chunk=1,
    figure_images=4,
    threshold=0.5,
    input_threads=2,
    input_workers=0,
    train_dir="",
    figures=True,
    empty_mask="undefined",
    nonfinite="undefined",
    max_batches=0,
  )
  c.report = _cd(
    title="Results",
    published=False,
    thresholds=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    notes="",
  )
  c.mesh = [("data", -1), ("fsdp", 1)]
  c.sharding = _cd(params="fsdp", fsdp_axis="fsdp")
  c.distributed = _cd(
    initialize=False,
    coordinator_address="",
    num_processes=1,
    process_id=0,
    cpu_collectives="",
    barrier_timeout_s=24 * 3600,
  )
  return c


# ------------------------------------------------------------------- grids ----


def grid(run: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A grid config: `run` (the base of every cell) plus models/datasets/cells.

  models: {name: a ``model`` section}; datasets: {name: {train_data,
  eval_data}}; cells: [{name, model, dataset, set}] where ``set`` holds
  dotted overrides of the run config (``{'method': 'lp',
  'train.optim.lr': 1e-3}``). `for_cell` merges one.
  """
  c = copy.deepcopy(run)
  c.mode = "grid"
  c.models = ml_collections.ConfigDict()
  c.datasets = ml_collections.ConfigDict()
  c.cells = []
  c.pretrain = ml_collections.ConfigDict({"enabled": False})
  return c


def cell(name: str, model: str, dataset: str, **overrides) -> dict:
  """A grid cell: named model and dataset sections plus dotted overrides."""
  return {"name": name, "model": model, "dataset": dataset, "set": overrides}


def model_section(path: str = "", **fields) -> ml_collections.ConfigDict:
  section = default().model
  section.update(dict(path=path, **fields))
  return section


def dataset_section(
  name: str,
  *,
  train_split: str = "train",
  eval_split: str = "test",
  eval_name: str = "",
  **builder_kwargs,
) -> ml_collections.ConfigDict:
  """A ``datasets`` entry: its train_data and eval_data sections.

  `builder_kwargs` configure the training builder; evaluating on the same
  builder (`eval_name` '') uses them too (eval_data.builder_kwargs then only
  holds additions), another builder starts from none.
  """
  return _cd(
    train_data=_cd(
      name=name,
      split=train_split,
      builder_kwargs=ml_collections.ConfigDict(builder_kwargs),
    ),
    eval_data=_cd(
      name=eval_name,
      split=eval_split,
      builder_kwargs=ml_collections.ConfigDict(),
    ),
  )


def _base(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The run-config part of a grid config (drops models/datasets/cells)."""
  keys = set(default().keys())
  return ml_collections.ConfigDict(
    {k: copy.deepcopy(v) for k, v in config.items() if k in keys}
  )


def set_path(config: ml_collections.ConfigDict, path: str, value: Any) -> None:
  """``config.a.b = value`` for path 'a.b'; an unknown key is an error.

  Builder options are free-form (each builder checks its own), so
  ``train_data.builder_kwargs.<option>`` may add an option.
  """
  *parents, leaf = path.split(".")
  target = config
  for i, part in enumerate(parents):
    if part not in target:
      raise KeyError(f"{'.'.join(parents[: i + 1])} is not a config key")
    target = target[part]
  free_form = bool(parents) and parents[-1] == "builder_kwargs"
  if leaf not in target and not free_form:
    raise KeyError(f"{path} is not a config key")
  if leaf not in target:  # a new builder option (free_form)
    with target.unlocked():
      target[leaf] = value
  elif isinstance(target[leaf], ml_collections.ConfigDict) and isinstance(
    value, dict
  ):
    target[leaf] = ml_collections.ConfigDict(value)
  else:
    target[leaf] = value


def for_cell(
  config: ml_collections.ConfigDict, cell_spec
) -> ml_collections.ConfigDict:
  """The run config of one grid cell: base <- model <- dataset <- overrides."""
  run = _base(config)
  name = cell_spec["name"]
  with run.unlocked():
    run.mode = "train"
    for key, sections in (
      ("model", config.models),
      ("dataset", config.datasets),
    ):
      choice = cell_spec[key]
      if choice not in sections:
        raise KeyError(
          f"cell {name!r}: {key} {choice!r} is not among config."
          f"{key}s ({sorted(sections)})"
        )
      if key == "model":
        run.model = copy.deepcopy(sections[choice])
        run.model.name = run.model.name or choice
      else:
        run.train_data = copy.deepcopy(sections[choice].train_data)
        run.eval_data = copy.deepcopy(sections[choice].eval_data)
    for path, value in dict(cell_spec.get("set", {})).items():
      try:
        set_path(run, path, value)
      except (KeyError, TypeError) as e:
        raise KeyError(f"cell {name!r}: override {path}={value!r}: {e}") from e
  return run


# ------------------------------------------------------------- validation ----


class ConfigError(ValueError):
  """A config value out of range or inconsistent: names the key."""


def _check(ok: bool, key: str, message: str) -> None:
  if not ok:
    raise ConfigError(f"config.{key}: {message}")


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks ranges, types and relations before any work (ConfigError)."""
  _check(config.mode in MODES, "mode", f"{config.mode!r} is not one of {MODES}")
  if config.mode in ("selfcheck", "pretrain"):
    return
  if config.mode == "grid":
    _check(bool(config.cells), "cells", "a grid needs at least one cell")
    names = [c["name"] for c in config.cells]
    dup = sorted({n for n in names if names.count(n) > 1})
    _check(not dup, "cells", f"cell names must be unique; repeated: {dup}")
    for cell_spec in config.cells:
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
      run = for_cell(config, cell_spec)
      try:
        validate_run(run)
      except ConfigError as e:
        raise ConfigError(f"cell {cell_spec['name']!r}: {e}") from None
    return
  validate_run(config)


def validate_run(config: ml_collections.ConfigDict) -> None:
  """`validate` of one run (train or evaluate)."""
  m = config.model
  train_dir = config.evaluate.train_dir
  _check(
    bool(m.path) or bool(train_dir),
    "model.path",
    "no model given: set a checkpoint path, a hub id or random:<arch> "
    "(random weights only when asked for by name)",
  )
  _check(m.image_size >= 0, "model.image_size", f"{m.image_size} < 0")
  for key in ("dtype", "param_dtype"):
    _check(m[key] in DTYPES, f"model.{key}", f"{m[key]!r} not in {DTYPES}")
  _check(
    m.accelerator_dtype in ("", *DTYPES),
    "model.accelerator_dtype",
    f"{m.accelerator_dtype!r}: use '' (model.dtype everywhere) or one of "
    f"{DTYPES} (GPU/TPU only)",
  )
  _check(
    config.method in methods(),
    "method",
    f"{config.method!r} is not one of {methods()}",
  )
  _check(
    config.preprocess.normalization in NORMALIZATIONS,
    "preprocess.normalization",
    f"{config.preprocess.normalization!r} is not one of {NORMALIZATIONS}",
  )
  _check(
    config.preprocess.mask_order in MASK_ORDERS,
    "preprocess.mask_order",
    f"{config.preprocess.mask_order!r}: use 'ours' or 'release'",
  )
  _check(
    config.preprocess.mask_order == "ours" or config.preprocess.eval == "study",
    "preprocess.mask_order",
    "'release' is a way of the 'study' eval preset; preprocess.eval is "
    f"{config.preprocess.eval!r}",
  )
  _check(
    config.head.class_names in CLASS_NAME_RULES,
    "head.class_names",
    f"{config.head.class_names!r}: use 'study' (ours) or 'release'",
  )
  for key, presets in (("train", TRAIN_PREPROCESS), ("eval", EVAL_PREPROCESS)):
    spec = config.preprocess[key]
    _check(
      spec in presets or "(" in spec,
      f"preprocess.{key}",
      f"{spec!r} is neither a preset {sorted(presets)} nor a spec",
    )
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
  h = config.heatmap
  _check(
    h.name in heatmaps(), "heatmap.name", f"{h.name!r} not in {heatmaps()}"
  )
  _check(
    h.target in ("label", "predicted"),
    "heatmap.target",
    f"{h.target!r}: use 'label' or 'predicted'",
  )
  _check(h.steps >= 1, "heatmap.steps", f"{h.steps} < 1")
  _check(
    h.constant_map in CONSTANT_MAPS,
    "heatmap.constant_map",
    f"{h.constant_map!r}: use 'zero' (ours) or 'nan' (the release's 0 / 0)",
  )
  e = config.evaluate
  _check(e.batch_size >= 1, "evaluate.batch_size", f"{e.batch_size} < 1")
  _check(e.batches_per_chunk >= 1, "evaluate.batches_per_chunk", "must be >= 1")
  _check(e.figure_images >= 0, "evaluate.figure_images", "must be >= 0")
  _check(e.input_threads >= 1, "evaluate.input_threads", "must be >= 1")
  _check(e.input_workers >= 0, "evaluate.input_workers", "must be >= 0")
  _check(
    e.max_batches >= 0,
    "evaluate.max_batches",
    f"{e.max_batches}: use 0 (every example) or a number of batches",
  )
  d = config.distributed
  _check(
    d.barrier_timeout_s >= 1,
    "distributed.barrier_timeout_s",
    f"{d.barrier_timeout_s} < 1 (seconds a host waits for the others)",
  )
  for key in ("empty_mask", "nonfinite"):
    _check(
      e[key] in ("undefined", "release"),
      f"evaluate.{key}",
      f"{e[key]!r}: use 'undefined' (ours) or 'release'",
    )
  for key, value in [("evaluate.threshold", e.threshold)] + [
    (f"report.thresholds[{i}]", v)
    for i, v in enumerate(config.report.thresholds)
  ]:
    _check(0.0 <= value <= 1.0, key, f"{value} is outside [0, 1]")


# ------------------------------------------------------------ preprocessing ----


def normalization(config: ml_collections.ConfigDict, family) -> str:
  """The pixel statistics: the family's own unless the config names some."""
  name = config.preprocess.normalization
  return family.normalization if name == "model" else name


def preprocess_spec(
  config: ml_collections.ConfigDict,
  dataset: str,
  image_size: int,
  normalization_name: str,
  *,
  train: bool,
  keep: tuple[str, ...],
) -> str:
  """The preprocessing spec of `dataset` for a model taking `image_size` px."""
  from rationality_jax.data import preprocess

  key = "train" if train else "eval"
  choice = config.preprocess[key]
  presets = TRAIN_PREPROCESS if train else EVAL_PREPROCESS
  if choice == "study":
    spec = preprocess.study_spec(
      dataset,
      train=train,
      normalization=normalization_name,
      size=image_size,
      mask_order=config.preprocess.mask_order,
    )
  else:
    spec = presets.get(choice, choice).format(size=image_size)
    spec += f"|normalize({normalization_name!r})"
  return spec + f"|keep({', '.join(repr(k) for k in keep)})"


# -------------------------------------------------------------- provenance ----


def fingerprint_digest(fingerprint: Any) -> str:
  """A short stable hash of a JSON-able fingerprint."""
  blob = json.dumps(fingerprint, sort_keys=True, default=str).encode()
  return hashlib.sha256(blob).hexdigest()[:12]


def from_file(path: str | os.PathLike, arg: str | None = None):
  """``get_config(arg)`` of a config file, loaded as `rationality_jax.main`
  loads it: with the file's folder on ``sys.path``, so that configs import
  their shared pieces (``import common``). For scripts and tests; a run
  takes ``--config=<path>[:arg]``."""
  path = os.path.abspath(os.fspath(path))
  folder = os.path.dirname(path)
  if folder not in sys.path:
    sys.path.insert(0, folder)
  name = "config_file_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def to_dict(config: ml_collections.ConfigDict) -> dict:
  """Plain JSON-able dict (tuples as lists)."""
  return json.loads(config.to_json_best_effort())
