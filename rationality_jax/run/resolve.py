"""From a run config to the objects a stage needs: model, data, specs, task.

Training (`rationality_jax.run.train`) and evaluation (`rationality_jax.run.evaluate`)
call these, so the two read a config the same way:

  module, params, family = resolve.model(config)
  source, class_names = resolve.source(config, workdir, "train")
  spec = resolve.spec(config, module, family, "train")      # sizes from the model
  task, tokenizer = resolve.task(config, module, family, class_names)

and `fingerprint(config, stage)` says what determines a stage's result, so a
rerun with another model, method, heatmap or data refuses to reuse it.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections

from rationality_jax import data
from rationality_jax import explain
from rationality_jax import methods
from rationality_jax import models
from rationality_jax import sharding
from rationality_jax.run import config as config_lib

# Preprocessing presets (``preprocess.train`` / ``preprocess.eval``); a spec
# string with `{size}` placeholders also works.
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


def image_size(module) -> int:
  """The pixels the model takes (its native size or the config's override)."""
  return int(module.config.vision.image_size)


def model(config: ml_collections.ConfigDict):
  """(module, host params, family) of ``config.model``.

  The parameters are made on this process's first device (the same on every
  host: same file or same seed) and are sharded by the caller.
  """
  m = config.model
  module, params = models.load(
    m.path, image_size=m.image_size or None, seed=config.seed
  )
  module, params = precision(config, module, params)
  return module, jax.device_get(params), models.family(module.config)


def compute_dtype(config: ml_collections.ConfigDict) -> str:
  """The dtype the model computes in here: ``model.accelerator_dtype`` on a
  GPU or TPU when it is set (the release's float16 CLIP), else
  ``model.dtype``; on CPU always ``model.dtype``."""
  m = config.model
  if m.accelerator_dtype and jax.default_backend() != "cpu":
    return m.accelerator_dtype
  return m.dtype


def precision(config: ml_collections.ConfigDict, module, params):
  """The model computing in `compute_dtype`, params in ``model.param_dtype``."""
  return models.with_precision(
    module, params, compute_dtype(config), config.model.param_dtype
  )


def check_images(shape, module, which: str) -> None:
  """Refuses images the model cannot take, naming the keys that set the size."""
  size = image_size(module)
  if tuple(shape[1:]) != (size, size, 3):
    raise config_lib.ConfigError(
      f"config.preprocess.{which}: the model takes [B, {size}, {size}, 3] "
      f"images (model.image_size, 0 = native) but the {which} preprocessing "
      f"gives {list(shape)}; use a preset or a spec with {{size}}"
    )


def model_name(config: ml_collections.ConfigDict) -> str:
  """Display name: ``model.name`` or the checkpoint's file/directory name."""
  if config.model.name:
    return config.model.name
  path = config.model.path.rstrip("/")
  return os.path.splitext(os.path.basename(path))[0] or path


def data_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  return config.data.dir or os.path.join(workdir, "data")


def dataset(
  config: ml_collections.ConfigDict, which: str
) -> tuple[str, str, dict]:
  """(builder name, split, builder kwargs) of 'train' or 'eval' data."""
  if which == "train":
    d = config.train_data
    return d.name, d.split, d.builder_kwargs.to_dict()
  d = config.eval_data
  if d.name:
    return d.name, d.split, d.builder_kwargs.to_dict()
  # eval_data.name '' = the training dataset, its own split and options.
  kwargs = dict(config.train_data.builder_kwargs.to_dict())
  kwargs.update(d.builder_kwargs.to_dict())
  return config.train_data.name, d.split, kwargs


def split_size(
  config: ml_collections.ConfigDict, workdir: str, which: str
) -> int | None:
  """How many examples 'train' or 'eval' data has, known without building
  or writing anything (a prepared dataset's info, or a generated one's
  configured size), or None; ``evaluate.max_batches`` caps the eval split."""
  name, split, kwargs = dataset(config, which)
  try:
    builder = data.get_builder(name, data_dir(config, workdir), **kwargs)
  except (ValueError, TypeError):  # an unknown dataset or option: named later
    return None
  if builder.is_prepared():
    size = builder.info.splits[split].num_examples
  else:
    size = getattr(builder.builder_config, f"{split}_size", None)
  if size is not None and which == "eval" and config.evaluate.max_batches:
    size = min(size, config.evaluate.max_batches * config.evaluate.batch_size)
  return size


def source(config: ml_collections.ConfigDict, workdir: str, which: str):
  """(source, prompt class names) of 'train' or 'eval' data.

  A dataset not prepared in the data dir is built first (process 0; the
  others wait): from ``data.manual_dir`` for archives, generated for the
  synthetic benchmark.
  """
  name, split, kwargs = dataset(config, which)
  directory = data_dir(config, workdir)
  if jax.process_index() == 0:
    data.build(
      name, directory, manual_dir=config.data.manual_dir or None, **kwargs
    )
  sharding.barrier(f"dataset {name} built")
  src = data.get_source(name, split, directory, **kwargs)
  names = data.class_names(name, src.class_names, rule=config.head.class_names)
  if which == "eval" and config.evaluate.max_batches:
    src = first_batches(config, src, directory)
  return src, names


def first_batches(config: ml_collections.ConfigDict, src, directory: str):
  """The ``evaluate.max_batches`` x ``evaluate.batch_size`` examples the
  release's ImageNet scripts evaluate: the first in ImageFolder order (per
  severity on ImageNet-C, one of its runs each); `data.release.imagefolder_first`."""
  name, split, kwargs = dataset(config, "eval")
  columns = data.read_columns(name, split, directory, **kwargs)
  groups = None
  if name == "imagenet_c_masks":  # ids <corruption>/<severity>/<image>
    groups = [i.rsplit("/", 1)[0] for i in columns["id"]]
  e = config.evaluate
  positions = data.release.imagefolder_first(
    columns["label"], columns["id"], e.max_batches * e.batch_size, groups
  )
  return data.Subset(src, positions)


def normalization(config: ml_collections.ConfigDict, family) -> str:
  """The pixel statistics: the family's own unless the config names some."""
  name = config.preprocess.normalization
  return family.normalization if name == "model" else name


def preprocess_spec(
  config: ml_collections.ConfigDict,
  dataset_name: str,
  size: int,
  normalization_name: str,
  *,
  train: bool,
  keep: tuple[str, ...],
) -> str:
  """The preprocessing spec of `dataset_name` for a model taking `size` px."""
  choice = config.preprocess["train" if train else "eval"]
  presets = TRAIN_PREPROCESS if train else EVAL_PREPROCESS
  if choice == "study":
    spec_text = data.preprocess.study_spec(
      dataset_name,
      train=train,
      normalization=normalization_name,
      size=size,
      mask_order=config.preprocess.mask_order,
    )
  else:
    spec_text = presets.get(choice, choice).format(size=size)
    spec_text += f"|normalize({normalization_name!r})"
  return spec_text + f"|keep({', '.join(repr(k) for k in keep)})"


def spec(config, module, family, which: str) -> str:
  """The preprocessing spec of 'train' or 'eval' data for this model."""
  name, _, _ = dataset(config, which)
  train = which == "train"
  keep = ("image", "label") if train else ("image", "mask", "label", "id")
  if train and methods.METHODS[config.method].needs_masks:
    keep = ("image", "mask", "label")  # the method's loss reads the masks
  return preprocess_spec(
    config,
    name,
    image_size(module),
    normalization(config, family),
    train=train,
    keep=keep,
  )


def mask_selection(config, workdir: str, source, method) -> tuple[dict, dict]:
  """({'mask_selected': [N] bool}, {'masks': facts}) of a method whose loss
  reads the training masks (`Method.select_masks`), else ({}, {}); refuses
  a training split without masks."""
  if not method.needs_masks:
    return {}, {}
  if "mask" not in source.info.features:
    raise config_lib.ConfigError(
      f"method: {config.method} trains on object masks, but "
      f"{config.train_data.name}/{config.train_data.split} has none"
    )
  name, split, kwargs = dataset(config, "train")
  columns = data.read_columns(name, split, data_dir(config, workdir), **kwargs)
  selected, facts = method.select_masks(config, columns)
  return {"mask_selected": selected}, {"masks": facts}


def task(config, module, family, class_names):
  """(task arrays, tokenizer): the class prompts every method's head uses."""
  tokenizer = family.tokenizer(module.config)
  task_arrays = methods.heads.make_task(
    tokenizer, class_names, config.head.templates
  )
  return task_arrays, tokenizer


def zero_shot_head(config, module, params, task_arrays, workdir: str, key: Any):
  """``{'class_embeddings': [C, E]}``, cached in ``head.cache_dir`` per `key`."""
  cache_dir = config.head.cache_dir or os.path.join(workdir, "zero_shot_heads")
  return methods.heads.zero_shot_head(
    module, params, task_arrays, cache_dir, key
  )


def heatmap(config: ml_collections.ConfigDict):
  """The explanation method of ``config.heatmap`` (its own options only)."""
  h = config.heatmap
  fields = config_lib.heatmap_fields(h.name)
  return explain.HEATMAPS[h.name](**{f: h[f] for f in fields})


def curves(config: ml_collections.ConfigDict, module, classifier) -> tuple:
  """((name, curve), ...) of ``evaluate.faithfulness`` (`stream.make_eval_step`)."""
  e = config.evaluate
  return tuple(
    (
      mode,
      explain.make_perturbation_curve(
        module,
        classifier,
        mode=mode,
        steps=e.faithfulness_steps,
        baseline=explain.faithfulness.fill_baseline(e.faithfulness_fill, mode),
        jit=False,
      ),
    )
    for mode in filter(None, e.faithfulness.split("+"))
  )


def heatmap_label(config: ml_collections.ConfigDict) -> str:
  """``chefer(start_layer=-1)``; the release's constant-map rule is named."""
  h = config.heatmap
  fields = [f"{f}={h[f]}" for f in config_lib.heatmap_fields(h.name)]
  if h.constant_map != "zero":
    fields.append(f"constant_map={h.constant_map}")
  if config_lib.heatmaps()[h.name].signed:
    fields.append(f"signed={h.signed}")
  return f"{h.name}(" + ", ".join(fields) + ")"


# -------------------------------------------------------------- provenance ----


def model_identity(config: ml_collections.ConfigDict) -> dict:
  """The model file and how it computes here (`compute_dtype`)."""
  m = config.model
  return {
    "model": models.identity(m.path, seed=config.seed),
    "image_size": m.image_size,
    "dtype": compute_dtype(config),
    "param_dtype": m.param_dtype,
  }


def _unless_default(config: ml_collections.ConfigDict, keys) -> dict:
  """{key: value} of the dotted `keys` whose value is not the default's.

  Options added after a fingerprint's first version enter it only when
  set, so workdirs made before them keep their fingerprints.
  """
  base = config_lib.default()
  out = {}
  for key in keys:
    value, default_value = config, base
    for part in key.split("."):
      value, default_value = value[part], default_value[part]
    if value != default_value:
      out[key] = value
  return out


def data_identity(config: ml_collections.ConfigDict, which: str) -> dict:
  name, split, kwargs = dataset(config, which)
  return {"name": name, "split": split, "builder_kwargs": kwargs}


def method_options(config: ml_collections.ConfigDict) -> dict:
  """The options that shape ``config.method``'s training: the class prompts
  (``head``, but where its heads are cached) and the section its `Method`
  declares (`methods.Method.options_section`), whatever the method."""
  head = config_lib.to_dict(config.head)
  head.pop("cache_dir")
  options = {"head": head}
  method = methods.METHODS[config.method]
  for section in filter(None, (method.options_section, *method.reads)):
    options[section] = config_lib.to_dict(config[section])
  return options


def train_fingerprint(config: ml_collections.ConfigDict) -> dict:
  """What determines a training run's parameters."""
  t = config.train
  return {
    "stage": "train",
    **model_identity(config),
    "method": config.method,
    "trainable": config.trainable,
    "options": method_options(config),
    "seed": config.seed,
    "data": data_identity(config, "train"),
    "preprocess": {
      "train": config.preprocess.train,
      "normalization": config.preprocess.normalization,
    },
    "train": {
      "batch_size": t.batch_size,
      "num_epochs": t.num_epochs,
      "total_steps": t.total_steps,
      "optim": config_lib.to_dict(t.optim),
      "release_frozen_head": t.release_frozen_head,
    },
  }


def eval_fingerprint(config: ml_collections.ConfigDict, trained: dict) -> dict:
  """What determines an evaluation's records (`trained`: the model's)."""
  h = config.heatmap
  fingerprint = {
    "stage": "evaluate",
    "trained": trained,
    "data": data_identity(config, "eval"),
    "preprocess": {
      "eval": config.preprocess.eval,
      "normalization": config.preprocess.normalization,
      **_unless_default(config, ["preprocess.mask_order"]),
    },
    "heatmap": {
      "name": h.name,
      "target": h.target,
      **{f: h[f] for f in config_lib.heatmap_fields(h.name)},
      **_unless_default(config, ["heatmap.constant_map"]),
      **({"signed": h.signed} if config_lib.heatmaps()[h.name].signed else {}),
    },
  }
  # How the model computes here (a trained run's own dtype is in `trained`).
  precision = {
    "dtype": compute_dtype(config),
    "param_dtype": config.model.param_dtype,
  }
  if precision != {"dtype": "float32", "param_dtype": "float32"}:
    fingerprint["precision"] = precision
  # The thumbnails report.html shows are kept with the records.
  fingerprint.update(_unless_default(config, ["evaluate.gallery_images"]))
  if config.evaluate.faithfulness:  # the records gain its columns
    fingerprint["faithfulness"] = {
      "curves": config.evaluate.faithfulness,
      "steps": config.evaluate.faithfulness_steps,
      **_unless_default(config, ["evaluate.faithfulness_fill"]),
    }
  if config.evaluate.max_batches:
    fingerprint["subset"] = {
      "max_batches": config.evaluate.max_batches,
      "batch_size": config.evaluate.batch_size,
    }
  return fingerprint
