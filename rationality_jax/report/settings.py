"""The settings section of a grid's report: the preset and what differs.

lines = report.settings_lines(config, defaults, model_defaults, builder_defaults)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import copy
import json
from typing import Any

import ml_collections

# Cells listed by name in a settings line before "and N more".
SETTINGS_CELLS = 4
# Cell overrides every report table already shows (method, corruption).
CELL_IDENTITY = ("method", "eval_data.split")


def settings_lines(
  config: ml_collections.ConfigDict,
  defaults: Mapping,
  model_defaults: Mapping,
  builder_defaults: Callable[[str], Any],
) -> list[str]:
  """The preset that ran and every option that differs from the default.

  Args:
    config: the grid config.
    defaults: the default run config as plain JSON values.
    model_defaults: an empty ``model`` section as plain JSON values.
    builder_defaults: builder name -> its default builder config (options
      as attributes), or None for an unknown builder.

  Returns:
    lines, in order: the preset; every base run-config option that differs
    from `defaults`; per model section, its fields that differ from
    `model_defaults` (besides path and name); per dataset, the builder
    options that differ from the builder's defaults; per cell override that
    differs from the default and from the grid's own value, the cells that
    set it (``CELL_IDENTITY``, in every table, is not repeated).
  """
  lines = []
  preset = config.get("preset", "")
  if preset:
    lines.append(f"preset: {preset}")
  base = dict(defaults)
  ours = _plain(
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
  default_model = dict(model_defaults)
  for name, section in config.get("models", {}).items():
    model = _plain(section)
    for key in sorted(model):
      if key not in ("path", "name") and model[key] != default_model.get(key):
        lines.append(
          f"models.{name}.{key} = {model[key]!r} "
          f"(default {default_model.get(key)!r})"
        )
  for name, section in config.get("datasets", {}).items():
    for which in ("train_data", "eval_data"):
      builder = section[which].name or section.train_data.name
      changed = _builder_changes(
        builder_defaults(builder), section[which].builder_kwargs
      )
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


def _plain(config: ml_collections.ConfigDict) -> dict:
  """Plain JSON values (tuples as lists), as a run config is saved."""
  return json.loads(config.to_json_best_effort())


def _builder_changes(defaults, kwargs) -> dict:
  """The builder options in `kwargs` that differ from `defaults` (all of
  them when the builder is unknown: it fails in its cell, named there)."""
  kwargs = dict(kwargs.to_dict() if hasattr(kwargs, "to_dict") else kwargs)
  if defaults is None:
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
