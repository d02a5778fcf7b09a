r"""Command-line entry point.

    python -m rationality_jax.main --config=configs/<name>.py[:arg] --workdir=DIR \
        [--config.key=value ...]

The config file defines `get_config(arg=None)` returning an
`ml_collections.ConfigDict` (locked: a misspelt override is an error) whose
`mode` names what to run. Output goes to `--workdir`. Modes (docs/driver.md):

  selfcheck  metrics on a problem with a known answer (configs/metrics_selfcheck.py)
  pretrain   the demo's small CLIP, contrastively (configs/demo_pretrain.py)
  train      one adaptation method (configs/train.py, rationality_jax.train)
  evaluate   one trained model: heatmaps, RMA, PT/IR, report (configs/evaluate.py)
  grid       train + evaluate every cell, one report (configs/paper.py, configs/demo.py)
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Experiment config file (python, get_config(arg)).",
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for all outputs.")
flags.mark_flags_as_required(["config", "workdir"])


def _pretrain(config, workdir):
  from rationality_jax import data
  from rationality_jax import pretrain

  data_dir = config.data_dir or os.path.join(workdir, "data")
  with config.unlocked():
    config.data_dir = data_dir
  data.build("synthetic_rationality", data_dir, **config.dataset)
  return pretrain.pretrain(config, os.path.join(workdir, "model"))


def _train(config, workdir):
  from rationality_jax import train

  return train.train_and_evaluate(config, workdir)


def _grid(config, workdir):
  from rationality_jax import grid

  return grid.run(config, workdir)


def _modes():
  from rationality_jax import selfcheck

  # 'evaluate' is a grid of one cell (configs/evaluate.py): same stages, same layout.
  return {
    "selfcheck": selfcheck.run,
    "pretrain": _pretrain,
    "train": _train,
    "evaluate": _grid,
    "grid": _grid,
  }


def run(config, workdir: str):
  """Runs `config.mode` with outputs in `workdir`; returns the mode's result."""
  modes = _modes()
  mode = config.get("mode")
  if mode not in modes:
    raise ValueError(
      f"config.mode={mode!r} is not a mode; choose one of {sorted(modes)}."
    )
  os.makedirs(workdir, exist_ok=True)
  return modes[mode](config, workdir)


def parse_flags(argv):
  """Parses flags; a bad --config file or override exits with one clear line."""
  for arg in argv[1:]:
    if arg.startswith("--config="):
      path = arg[len("--config=") :].split(":", 1)[0]
      if not os.path.isfile(path):
        sys.exit(
          f"error: config file {path!r} not found (working directory "
          f"{os.getcwd()!r}); the configs live in configs/."
        )
  try:
    args = flags.FLAGS(argv)
    _CONFIG.value.get("mode")  # The config file loads lazily: load it now.
  except flags.Error as e:
    sys.exit(
      f"error: {e}\nusage: python -m rationality_jax.main "
      "--config=configs/<name>.py[:arg] --workdir=DIR [--config.key=value]"
    )
  except (KeyError, AttributeError, OSError, ValueError, TypeError) as e:
    config_args = [a for a in argv[1:] if a.startswith("--config")]
    sys.exit(
      f"error: cannot build the config from {' '.join(config_args)}: "
      f"{type(e).__name__}: {e}\n(an override must name an existing key "
      "of the config file; the file must exist and define get_config)"
    )
  return args


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.info("config:\n%s", _CONFIG.value)
  run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
