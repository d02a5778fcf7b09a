"""What `rationality_jax.main` runs: ``config.mode`` -> its stage.

Every stage takes ``(config, workdir, fresh)`` (`fresh`: start anew in a
subdirectory when the workdir holds another configuration's results) and is
imported only when its mode runs.
"""

from __future__ import annotations

import os
from typing import Any


def _recorded(kind: str, config, workdir: str, fresh: bool, work) -> Any:
  """Runs ``work(directory)`` in a planned, claimed and recorded directory
  whose fingerprint is the whole config (`record`)."""
  from rationality_jax.run import config as config_lib
  from rationality_jax.run import record

  fingerprint = {"stage": kind, "config": config_lib.to_dict(config)}
  directory = record.plan(workdir, fingerprint, f"a {kind} run", fresh)
  with record.open_run(directory, fingerprint, config, kind) as run:
    run.start()
    result, outputs = work(directory)
    run.complete(outputs=outputs)
  return result


def _selfcheck(config, workdir, fresh):
  from rationality_jax.run import selfcheck

  def work(directory):
    return selfcheck.run(config, directory), [selfcheck.RESULT]

  return _recorded("selfcheck", config, workdir, fresh, work)


def _pretrain(config, workdir, fresh):
  from rationality_jax.run import pretrain

  def work(directory):
    model = os.path.join(directory, "model")
    return pretrain.ensure(config, model, directory), []

  return _recorded("pretrain", config, workdir, fresh, work)


def _train(config, workdir, fresh):
  from rationality_jax.run import train

  return train.train_and_evaluate(config, workdir, fresh=fresh)


def _wise_ft(config, workdir, fresh):
  from rationality_jax.run import wise_ft

  return wise_ft.run(config, workdir, fresh=fresh)


def _sanity(config, workdir, fresh):
  from rationality_jax.run import sanity

  return sanity.run(config, workdir, fresh=fresh)


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
  "sanity": _sanity,
  "grid": _grid,
}
