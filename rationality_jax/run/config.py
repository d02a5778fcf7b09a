r"""The run config: one schema for train, evaluate, WiSE-FT and grid.

  config = rationality_jax.run.config.default()    # every field at its default
  config.model.path = "/ckpt/ViT-B-16.pt"
  rationality_jax.run.validate.validate(config)    # before any work; one line

The fields (docs/run_config.md has the table and the path a command takes):

  mode: what `rationality_jax.main` runs (`rationality_jax.run.modes`).
  name: the run's name in reports ('' = its method; a grid sets the cell's).
  group: the runs a report takes together ('' = the name alone; a grid's
      seeded cells share their cell's name: mean and spread over seeds).
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
  train_data, eval_data: name (a registered dataset; '' for eval_data =
      train_data's), split, builder_kwargs.
  preprocess: train / eval - a preset (`resolve.TRAIN_PREPROCESS`,
      `resolve.EVAL_PREPROCESS`) or a spec with ``{size}``; normalization -
      'model' (the family's) or a `data.preprocess.NORMALIZATION` key (the
      release: 'imagenet' for every model, utils/CUB_dataset.py,
      utils/IN_dataset.py, ... ``Normalize``); mask_order - how the ``study``
      eval preset makes the mask (`data.preprocess.MASK_ORDERS`): 'ours'
      (the stored binary mask moved with the image, nearest neighbour) or
      'release' (`data.preprocess.study_spec`: CUB's soft segmentation
      resized bilinearly then kept where still 255, utils/CUB_dataset.py
      ``seg_transform`` + test_rationale_vlm/clip_zs_flcp_cub.py lines
      52-53; Caltech/Dogs masks resized bilinearly; ImageNet boxes drawn
      into the crop, test_rationale_vlm/clip_zs_flcp_in.py lines 74-85).
  method: the adaptation method (`rationality_jax.methods.METHODS`);
      trainable: '' = the method's regex, else a regex over parameter
      paths. Each method's options are the section its `Method` declares
      (``lp``, ``flcp``, ``coop``, ``adapter``, ...), with its defaults.
  head: the class prompts every head uses (`methods.heads.OPTIONS`);
      class_names - the prompt names' rule: 'study' (ours) or 'release'
      (Dogs: ``folder.split('-')[1]``, Caltech: '_' -> ' '; the names of
      datasets/Stanford_Dogs/label_dict.json and
      datasets/caltech_101/label_dict.json read by my_util.py
      ``load_sd_dataset`` / ``load_ct_dataset``); the same for CUB,
      ImageNet and the synthetic benchmark.
  wise_ft: the WiSE-FT stage's options (`run.wise_ft.OPTIONS`).
  sanity: the sanity checks' options (`run.sanity.OPTIONS`): heatmaps
      ('+'-joined, '' = every registered one), images (how many evaluation
      images; in a grid, 0 = no checks), similar (the Spearman or SSIM at
      which a heatmap still similar with every block re-initialised is
      flagged), seed (the re-initialisation's).
  train: batch_size, num_epochs, total_steps (-1 = from num_epochs),
      log_every, input_threads, input_prefetch, input_workers (as
      evaluate.input_workers; the batches are the same), eval_accuracy
      (top-1 on eval_data at the end), optim (`rationality_jax.run.optim`),
      checkpoint; release_frozen_head - False (ours) or True: the method's
      head keeps its initial values (LP then trains nothing, FT only the
      backbone), as the release's LP/FT on CUB, Dogs and Caltech:
      finetune_vlm/lp_ft.py builds ``LP_Net``'s new head (lines 40-50)
      after my_util.py ``load_clip_model`` / ``load_albef_model`` /
      ``load_blip_model`` made the Adam optimiser over the backbone's
      parameters only, so the head never updates (ImageNet,
      finetune_vlm/lp_ft_in.py line 55, rebuilds it over every parameter
      and trains its head).
  heatmap: name (`rationality_jax.explain.HEATMAPS`) and the options of
      every heatmap with their defaults (each heatmap's dataclass fields);
      target (`explain.targets.TARGETS`): 'label' (the study) or
      'predicted'; constant_map (`explain.postprocess.CONSTANT_MAPS`) - what
      min-max normalization makes of a constant map: 'zero' (ours) or 'nan'
      (the release's 0 / 0, utils/xml_analysis.py ``show_image_relevance``
      line 101 and utils/xml_analysis_lp.py ``generate_visualization`` lines
      110-111; with evaluate.nonfinite 'release' such a sample counts as
      valid evidence); signed (`explain.postprocess.SIGNED_MAPS`) - what of
      a signed map (gradient x input, integrated gradients) is relevance:
      'positive' (ours: its positive part, as Quantus and the RMA paper
      treat relevance) or 'minmax' (the release's min-max of the raw map,
      which puts the background near 0.5).
  evaluate: batch_size, batches_per_chunk, figure_images, gallery_images
      (report.html's thumbnails: `report.gallery`), threshold,
      input_threads, input_workers (0: read, decode and preprocess in
      `input_threads` threads of this process; N: in N worker processes, for
      hosts with many cores, where the threads are held back by Python's
      GIL; the records are the same), train_dir (evaluate a finished
      training run instead of ``method``), figures (a PT/IR-threshold figure
      per run), empty_mask / nonfinite: the degenerate-case policies
      (`metrics.POLICIES`: 'undefined', ours, or 'release'); max_batches - 0
      (ours: every example) or N: only the first N x batch_size examples in
      ImageFolder order (by label, then id; per severity on ImageNet-C), as
      the release's ImageNet rationale scripts stop after 5 batches of their
      ``--batchsize_test`` (64 in its README):
      test_rationale_vlm/clip_zs_flcp_in.py lines 54-56, clip_lp_ft_in.py
      lines 53-55. The records, accuracy included, then hold those examples
      only (the release's accuracy is over all of them). allow_unfinished -
      evaluate a ``train_dir`` whose training has not reached its last step
      (refused by default; every report then says "trained N of M steps").
      faithfulness - '' (none), 'deletion', 'insertion' or
      'deletion+insertion': per-sample areas under the heatmap's deletion /
      insertion curves (`explain.faithfulness`, RISE), with
      faithfulness_steps + 1 forward passes each; faithfulness_fill - what
      fills the removed pixels (`explain.faithfulness.FILLS`): 'rise'
      (RISE's baselines: zeros for deletion, the blur for insertion) or
      'road' (ROAD's noisy linear imputation for both, Rong et al. 2022).
  report: title, published (the study's values beside ours), thresholds,
      notes.
  mesh, sharding, distributed: devices and hosts (`rationality_jax.sharding`).

A grid is the same schema plus ``models``, ``datasets`` and ``cells``: a cell
is a set of overrides merged into it (`rationality_jax.run.cells`), never a
second vocabulary.
Sizes and pixel statistics come from the model: ``model.image_size`` 0 means
the checkpoint's native size (OpenAI CLIP 224, ALBEF 256, BLIP 384).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import os
import sys
from typing import Any

import ml_collections

from rationality_jax.models import vlm
from rationality_jax.run import optim


class ConfigError(ValueError):
  """A config value out of range or inconsistent: names the key
  (`rationality_jax.run.validate`)."""


# The model's compute and parameter dtypes (`models.with_precision`'s).
DTYPES = tuple(str(p) for p in vlm.PRECISIONS)


def heatmaps() -> dict[str, type]:
  """{name: heatmap dataclass} (`rationality_jax.explain.HEATMAPS`)."""
  from rationality_jax import explain

  return dict(explain.HEATMAPS)


def heatmap_fields(name: str) -> tuple[str, ...]:
  """The options heatmap `name` takes (its dataclass fields)."""
  return tuple(f.name for f in dataclasses.fields(heatmaps()[name]))


def heatmap_options() -> dict[str, Any]:
  """{option: default} of every heatmap's options (their dataclass fields).

  Raises:
    ValueError: two heatmaps give one option name different defaults (a
      config has one ``heatmap.<option>`` for all of them).
  """
  options: dict[str, Any] = {}
  owners: dict[str, str] = {}
  for name, cls in heatmaps().items():
    for field in dataclasses.fields(cls):
      value = field.default
      if value is dataclasses.MISSING:
        raise ValueError(
          f"heatmap {name!r}: option {field.name} has no default"
        )
      if field.name in options and options[field.name] != value:
        raise ValueError(
          f"heatmaps {owners[field.name]!r} and {name!r} give "
          f"heatmap.{field.name} different defaults "
          f"({options[field.name]!r}, {value!r})"
        )
      options[field.name], owners[field.name] = value, name
  return options


def method_sections() -> dict[str, dict[str, Any]]:
  """{section: {option: default}} of the methods' options (each `Method`'s).

  Raises:
    ValueError: two methods declare one section with different options.
  """
  from rationality_jax import methods

  sections: dict[str, dict[str, Any]] = {}
  for method in methods.METHODS.values():
    section = method.options_section
    if not section:
      continue
    if section in sections and sections[section] != method.options:
      raise ValueError(
        f"method {method.name!r} declares config section {section!r} with "
        f"other options than another method: {sections[section]} vs "
        f"{method.options}"
      )
    sections[section] = dict(method.options)
  return sections


def section(**fields) -> ml_collections.ConfigDict:
  """A config section of `fields`."""
  return ml_collections.ConfigDict(fields)


def default() -> ml_collections.ConfigDict:
  """The run config with every field at its default (the module docstring
  says what each is); methods, heatmaps, heads and stages give their own.

  Long because it lists every section in one place, the schema at a glance.
  """
  from rationality_jax.methods import heads
  from rationality_jax.run import sanity
  from rationality_jax.run import wise_ft

  c = ml_collections.ConfigDict()
  c.mode = "train"
  c.name = ""
  c.group = ""
  c.seed = 42
  c.model = section(
    path="",
    name="",
    image_size=0,
    dtype="float32",
    param_dtype="float32",
    accelerator_dtype="",
  )
  c.data = section(dir="", manual_dir="")
  c.train_data = section(
    name="synthetic_rationality",
    split="train",
    builder_kwargs=ml_collections.ConfigDict(),
  )
  c.eval_data = section(
    name="", split="test", builder_kwargs=ml_collections.ConfigDict()
  )
  c.preprocess = section(
    train="study", eval="study", normalization="model", mask_order="ours"
  )
  c.method = "zs"
  c.trainable = ""
  c.head = section(**heads.OPTIONS)
  for name, options in method_sections().items():
    c[name] = section(**options)
  c.wise_ft = section(**wise_ft.OPTIONS)
  c.sanity = section(**sanity.OPTIONS)
  c.train = section(
    batch_size=32,
    num_epochs=10.0,
    total_steps=-1,
    log_every=10,
    input_threads=2,
    input_prefetch=8,
    input_workers=0,
    eval_accuracy=True,
    optim=optim.study_preset(),
    checkpoint=section(every_steps=500, keep=3, async_save=True),
    release_frozen_head=False,
  )
  c.heatmap = section(
    name="chefer",
    **heatmap_options(),
    target="label",
    constant_map="zero",
    signed="positive",
  )
  c.evaluate = section(
    batch_size=64,
    batches_per_chunk=1,
    figure_images=4,
    gallery_images=50,
    threshold=0.5,
    input_threads=2,
    input_workers=0,
    train_dir="",
    figures=True,
    empty_mask="undefined",
    nonfinite="undefined",
    max_batches=0,
    allow_unfinished=False,
    faithfulness="",
    faithfulness_steps=16,
    faithfulness_fill="rise",
  )
  c.report = section(
    title="Results",
    published=False,
    thresholds=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    notes="",
  )
  c.mesh = [("data", -1), ("fsdp", 1)]
  c.sharding = section(params="fsdp", fsdp_axis="fsdp")
  c.distributed = section(
    initialize=False,
    coordinator_address="",
    num_processes=1,
    process_id=0,
    cpu_collectives="",
    barrier_timeout_s=24 * 3600,
  )
  return c


def run_part(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
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


# ------------------------------------------------------------------- files ----


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
