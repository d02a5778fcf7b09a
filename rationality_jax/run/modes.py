"""What `rationality_jax.main` runs: ``config.mode`` -> its stage.

Every stage takes ``(config, workdir, fresh)`` (`fresh`: start anew in a
subdirectory when the workdir holds another configuration's results) and is
imported only when its mode runs.
"""

from __future__ import annotations

import os


def _selfcheck(config, workdir, fresh):
  del fresh
  from rationality_jax.run import selfcheck

  return selfcheck.run(config, workdir)


def _pretrain(config, workdir, fresh):
  del fresh
  from rationality_jax.run import pretrain

  return pretrain.ensure(config, os.path.join(workdir, "model"), workdir)


def _train(config, workdir, fresh):
  from rationality_jax.run import train

  return train.train_and_evaluate(config, workdir, fresh=fresh)


def _wise_ft(config, workdir, fresh):
  from rationality_jax.run import wise_ft

  return wise_ft.run(config, workdir, fresh=fresh)


def _evaluate(config, workdir, fresh):
  from rationality_jax.run import evaluate

  return evaluate.run(config, workdir, fresh=fresh)


def _grid(config, workdir, fresh):
  from rationality_jax.run import grid

  return grid.run(config, workdir, fresh=fresh)


MODES = {
  "selfcheck": _selfcheck,
  "pretrain": _pretrain,
  "train": _train,
  "wise_ft": _wise_ft,
  "evaluate": _evaluate,
  "grid": _grid,
}
