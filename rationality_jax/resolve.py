"""From a run config to the objects a stage needs: model, data, specs, task.

Training (`rationality_jax.train`) and evaluation (`rationality_jax.evaluate`)
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
from jax.experimental import multihost_utils
import ml_collections

from rationality_jax import config as config_lib
from rationality_jax import data
from rationality_jax import explain
from rationality_jax import methods
from rationality_jax import models


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


def precision(config: ml_collections.ConfigDict, module, params):
  """The model computing in ``model.dtype``, params in ``model.param_dtype``."""
  return models.with_precision(
    module, params, config.model.dtype, config.model.param_dtype
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
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"dataset {name} built")
  src = data.get_source(name, split, directory, **kwargs)
  return src, data.class_names(name, src.class_names)


def normalization(config: ml_collections.ConfigDict, family) -> str:
  return config_lib.normalization(config, family)


def spec(config, module, family, which: str) -> str:
  """The preprocessing spec of 'train' or 'eval' data for this model."""
  name, _, _ = dataset(config, which)
  train = which == "train"
  keep = ("image", "label") if train else ("image", "mask", "label", "id")
  return config_lib.preprocess_spec(
    config,
    name,
    image_size(module),
    normalization(config, family),
    train=train,
    keep=keep,
  )


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
  return explain.get_method(h.name, **{f: h[f] for f in fields})


def heatmap_label(config: ml_collections.ConfigDict) -> str:
  h = config.heatmap
  fields = config_lib.heatmap_fields(h.name)
  return f"{h.name}(" + ", ".join(f"{f}={h[f]}" for f in fields) + ")"


# -------------------------------------------------------------- provenance ----


def model_identity(config: ml_collections.ConfigDict) -> dict:
  m = config.model
  return {
    "model": models.identity(m.path, seed=config.seed),
    "image_size": m.image_size,
    "dtype": m.dtype,
    "param_dtype": m.param_dtype,
  }


def data_identity(config: ml_collections.ConfigDict, which: str) -> dict:
  name, split, kwargs = dataset(config, which)
  return {"name": name, "split": split, "builder_kwargs": kwargs}


def train_fingerprint(config: ml_collections.ConfigDict) -> dict:
  """What determines a training run's parameters."""
  method = config.method
  options = {
    k: config_lib.to_dict(config[k])
    for k in ("head", "lp", "flcp", "coop", "adapter", "wise_ft")
  }
  options["head"].pop("cache_dir", None)
  t = config.train
  return {
    "stage": "train",
    **model_identity(config),
    "method": method,
    "trainable": config.trainable,
    "options": options,
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
    },
  }


def eval_fingerprint(config: ml_collections.ConfigDict, trained: dict) -> dict:
  """What determines an evaluation's records (`trained`: the model's)."""
  h = config.heatmap
  return {
    "stage": "evaluate",
    "trained": trained,
    "data": data_identity(config, "eval"),
    "preprocess": {
      "eval": config.preprocess.eval,
      "normalization": config.preprocess.normalization,
    },
    "heatmap": {
      "name": h.name,
      "target": h.target,
      **{f: h[f] for f in config_lib.heatmap_fields(h.name)},
    },
  }
