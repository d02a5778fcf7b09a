r"""WiSE-FT as a stage: a finished training run interpolated with its start.

    python -m rationality_jax.main \
        --config=configs/wise_ft.py:train_dir=/tmp/train_ft --workdir=/tmp/wise

Reads ``wise_ft.finetuned_workdir`` (a finished training run), rebuilds its
starting point from the run's own config (same model file or seed, same head
initialisation: `train.setup`) and, for each alpha of ``wise_ft.alphas``,
writes ``<workdir>/alpha_<alpha>/``: a run directory like a training run's
(``config.json``, ``fingerprint.json``, ``checkpoints/<step>/`` written by
`checkpoints.save` with its finite check, ``train_result.json`` and the
manifest ``run.json``), which ``configs/evaluate.py:train_dir=<workdir>/
alpha_<alpha>`` evaluates. A rerun reuses the alphas already written; an
alpha directory holding another run is refused before anything is written.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np

from rationality_jax import console
from rationality_jax import files
from rationality_jax.methods import wise_ft
from rationality_jax.run import checkpoints
from rationality_jax.run import config as config_lib
from rationality_jax.run import record
from rationality_jax.run import train

# The run config's ``wise_ft`` section.
OPTIONS = {"finetuned_workdir": "", "alphas": (0.0, 0.25, 0.5, 0.75, 1.0)}


def alpha_dir(workdir: str, alpha: float) -> str:
  return os.path.join(os.path.abspath(workdir), f"alpha_{alpha:g}")


def run(config, workdir: str, fresh: bool = False) -> dict[float, str]:
  """Writes one run directory per alpha; returns {alpha: its directory}."""
  source = os.path.abspath(config.wise_ft.finetuned_workdir)
  if not record.training_progress(source)["finished"]:
    raise config_lib.ConfigError(
      f"config.wise_ft.finetuned_workdir: {source} holds no finished "
      "training run; train it first"
    )
  finetuned = checkpoints.read(source, items=("state", "meta"))
  step = int(finetuned["step"])
  alphas = {
    alpha: {
      "stage": "wise_ft",
      "finetuned": finetuned["meta"].get("fingerprint"),
      "finetuned_step": step,
      "alpha": float(alpha),
    }
    for alpha in config.wise_ft.alphas
  }
  claims = [(f"alpha_{a:g}", f, "a WiSE-FT run") for a, f in alphas.items()]
  fingerprint = {"stage": "wise_ft", "alphas": {c[0]: c[1] for c in claims}}
  directory = record.plan(
    workdir, fingerprint, "WiSE-FT runs", fresh, claims, container=True
  )
  with record.open_run(
    directory, fingerprint, config, "wise_ft", container=True
  ) as stage:
    stage.start()
    setup = None  # the starting point, rebuilt once if an alpha needs it
    out = {}
    for alpha, alpha_fingerprint in alphas.items():
      out[alpha] = alpha_dir(directory, alpha)
      if record.training_progress(out[alpha])["finished"]:
        continue
      if setup is None:
        setup = train.setup(
          ml_collections.ConfigDict(finetuned["meta"]["config"]), source
        )
      _write_alpha(
        out[alpha], alpha, alpha_fingerprint, setup, finetuned, source
      )
    stage.complete(alphas={f"{a:g}": d for a, d in out.items()})
  for alpha, alpha_directory in out.items():
    console.stage(
      f"wise_ft alpha {alpha:g}: {alpha_directory} (evaluate with "
      f"--config=configs/evaluate.py:train_dir={alpha_directory})"
    )
  return out


def _write_alpha(directory, alpha, fingerprint, setup, finetuned, source):
  """The interpolated model of one alpha, saved as a finished run."""
  made_by = ml_collections.ConfigDict(finetuned["meta"]["config"])
  step = int(finetuned["step"])
  params = wise_ft.interpolate(
    setup.params, finetuned["state"]["params"], alpha
  )
  head = wise_ft.interpolate(setup.head, finetuned["state"]["head"], alpha)
  run_config = ml_collections.ConfigDict(config_lib.to_dict(made_by))
  run_config.name = f"wise_ft-{alpha:g}"
  meta = dict(
    finetuned["meta"],
    method="wise_ft",
    finetuned_method=setup.method.name,
    alpha=alpha,
    finetuned_workdir=source,
  )

  def eval_head(state):
    return jax.tree.map(
      np.asarray,
      jax.device_get(
        setup.method.eval_head(
          setup.module, state["params"], state["head"], setup.task
        )
      ),
    )

  with record.open_run(
    directory, fingerprint, run_config, "wise_ft", what="a WiSE-FT run"
  ) as run:
    run.start(total_steps=step, alpha=alpha, finetuned_workdir=source)
    state = {"step": np.int32(step), "params": params, "head": head}
    manager = checkpoints.manager(directory, run_config)
    try:
      checkpoints.save(manager, step, state, None, meta, eval_head, force=True)
      manager.wait_until_finished()
    finally:
      manager.close()
    if jax.process_index() == 0:
      files.write_json(
        os.path.join(directory, train.RESULT),
        {
          "step": step,
          "total_steps": step,
          "alpha": alpha,
          "checkpoint_dir": os.path.join(directory, checkpoints.CHECKPOINTS),
        },
      )
    run.complete(outputs=[train.RESULT], step=step)
