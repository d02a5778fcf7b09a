"""A grid's config: the run config plus named models, datasets and cells.

  config = cells.grid(run_config)          # mode 'grid', no cells yet
  config.models.clip_b16 = cells.model_section("/ckpt/ViT-B-16.pt")
  config.datasets.cub = cells.dataset_section("cub_200_2011")
  config.cells = [cells.cell("zs", "clip_b16", "cub", method="zs")]
  run = cells.for_cell(config, config.cells[0])   # an ordinary run config

A cell names a model and a dataset section and holds dotted overrides of
the run config (`config.set_path`); ``seeds`` repeats every trained cell
per seed (`expand_seeds`).
"""

from __future__ import annotations

import copy

import ml_collections

from rationality_jax.run import config as config_lib


def grid(run: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A grid config: `run` (the base of every cell) plus models/datasets/cells.

  models: {name: a ``model`` section}; datasets: {name: {train_data,
  eval_data}}; cells: [{name, model, dataset, set}] where ``set`` holds
  dotted overrides of the run config (``{'method': 'lp',
  'train.optim.lr': 1e-3}``). `for_cell` merges one. seeds: () (every
  cell once, at ``seed``) or seeds to train every trained cell with
  (`expand_seeds`: a cell per seed, reported as one with its spread).
  """
  c = copy.deepcopy(run)
  c.mode = "grid"
  c.models = ml_collections.ConfigDict()
  c.datasets = ml_collections.ConfigDict()
  c.cells = []
  c.seeds = ()
  c.pretrain = ml_collections.ConfigDict({"enabled": False})
  return c


def cell(name: str, model: str, dataset: str, **overrides) -> dict:
  """A grid cell: named model and dataset sections plus dotted overrides."""
  return {"name": name, "model": model, "dataset": dataset, "set": overrides}


def model_section(path: str = "", **fields) -> ml_collections.ConfigDict:
  section = config_lib.default().model
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
  return config_lib.section(
    train_data=config_lib.section(
      name=name,
      split=train_split,
      builder_kwargs=ml_collections.ConfigDict(builder_kwargs),
    ),
    eval_data=config_lib.section(
      name=eval_name,
      split=eval_split,
      builder_kwargs=ml_collections.ConfigDict(),
    ),
  )


def expand_seeds(config: ml_collections.ConfigDict) -> list[dict]:
  """The grid's cells with every trained cell once per ``config.seeds``
  (named ``<cell>-s<seed>``, with ``group`` the cell's name and ``seed``);
  a zero-shot cell trains nothing and stays one cell."""
  seeds = tuple(config.get("seeds", ()))
  out = []
  for spec in config.cells:
    method = dict(spec.get("set", {})).get("method", config.method)
    if not seeds or method == "zs":
      out.append(spec)
      continue
    for seed in seeds:
      seeded = copy.deepcopy(dict(spec))
      seeded.update(
        name=f"{spec['name']}-s{seed}",
        group=spec["name"],
        set={**dict(spec.get("set", {})), "seed": int(seed)},
      )
      out.append(seeded)
  return out


def for_cell(
  config: ml_collections.ConfigDict, cell_spec
) -> ml_collections.ConfigDict:
  """The run config of one grid cell: base <- model <- dataset <- overrides."""
  run = config_lib.run_part(config)
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
        config_lib.set_path(run, path, value)
      except (KeyError, TypeError) as e:
        raise KeyError(f"cell {name!r}: override {path}={value!r}: {e}") from e
  return run
