"""WiSE-FT (Wortsman et al. 2022): weight-space interpolation zero-shot <-> fine-tuned.

  params_alpha = (1 - alpha) * params_zero_shot + alpha * params_fine_tuned

for every parameter of the model and of the head (heads with the same
structure; FLCP's head is rebuilt from the interpolated text tower instead).
alpha 0 is the zero-shot model, 1 the fine-tuned one. `run` (``config.method
= 'wise_ft'`` in `rationality_jax.run.train`) reads a finished run
(``config.wise_ft.finetuned_workdir``), rebuilds its starting point from the
same config, and writes one evaluation checkpoint per alpha.
"""

import os
from typing import Any

import jax
import jax.numpy as jnp


def interpolate(zero_shot: Any, fine_tuned: Any, alpha: float) -> Any:
  """Leafwise (1 - alpha) * zero_shot + alpha * fine_tuned, in each leaf's dtype."""
  if jax.tree.structure(zero_shot) != jax.tree.structure(fine_tuned):
    raise ValueError(
      "WiSE-FT needs the same parameter structure on both ends; got "
      f"{jax.tree.structure(zero_shot)} and {jax.tree.structure(fine_tuned)}."
    )
  return jax.tree.map(
    lambda a, b: (
      (1.0 - alpha) * jnp.asarray(a, jnp.float32)
      + alpha * jnp.asarray(b, jnp.float32)
    ).astype(jnp.asarray(b).dtype),
    zero_shot,
    fine_tuned,
  )


def run(config, workdir: str) -> dict:
  """Interpolates a finished run with its start at ``config.wise_ft.alphas``.

  Reads ``config.wise_ft.finetuned_workdir`` (its saved run config rebuilds
  the zero-shot end: same model file or seed, same head init) and writes
  ``<workdir>/alpha_<alpha>/checkpoints/<step>/`` in the training layout, so
  `checkpoints.load_trained(<workdir>/alpha_<alpha>)` reads each like any
  trained model.

  Returns:
    {alpha: checkpoint directory}.
  """
  # Imported here: the training setup imports the methods package.
  import ml_collections
  import numpy as np
  import orbax.checkpoint as ocp

  from rationality_jax.run import checkpoints
  from rationality_jax.run import train

  source = config.wise_ft.finetuned_workdir
  finetuned = checkpoints.read(source, items=("state", "meta"))
  ft_config = ml_collections.ConfigDict(finetuned["meta"]["config"])
  s = train.setup(ft_config, source)
  ft_state = finetuned["state"]
  out = {}
  for alpha in config.wise_ft.alphas:
    params = interpolate(s.params, ft_state["params"], alpha)
    head = interpolate(s.head, ft_state["head"], alpha)
    eval_head = jax.tree.map(
      np.asarray,
      jax.device_get(s.method.eval_head(s.module, params, head, s.task)),
    )
    target = os.path.join(
      os.path.abspath(workdir), f"alpha_{alpha:g}", checkpoints.CHECKPOINTS
    )
    meta = dict(
      finetuned["meta"],
      method="wise_ft",
      finetuned_method=s.method.name,
      alpha=alpha,
      finetuned_workdir=os.path.abspath(source),
    )
    with ocp.CheckpointManager(
      target, item_names=checkpoints.ITEMS[:3]
    ) as manager:
      manager.save(
        finetuned["step"],
        args=ocp.args.Composite(
          state=ocp.args.StandardSave(
            {
              "step": np.int32(finetuned["step"]),
              "params": params,
              "head": head,
            }
          ),
          eval_head=ocp.args.StandardSave(eval_head),
          meta=ocp.args.JsonSave(dict(meta, step=finetuned["step"])),
        ),
      )
      manager.wait_until_finished()
    out[alpha] = target
  return out
