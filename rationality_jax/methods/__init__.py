r"""Adaptation methods as configuration of one training loop (see docs/training.md).

  method = methods.get("flcp")       # zs, lp, ft, flcp, coop, adapter
  method.trainable(config)           # regex over {'params', 'head'} paths
  method.loss                        # 'cross_entropy' or 'contrastive'
  method.init_head / eval_head       # the head that trains / the head evaluated
  method.classifier(module, images, head) -> logits [B, C]   (inside module.apply)

WiSE-FT is weight interpolation of two finished models (`wise_ft.interpolate`),
run by `rationality_jax.train` with ``config.method='wise_ft'``.

Checkpoint <-> evaluation contract
----------------------------------
A training workdir holds orbax checkpoints ``<workdir>/checkpoints/<step>/``
with the items

  state      {'step', 'params' (the model), 'head' (the training head),
              'opt_state', 'rng'} - for resuming
  eval_head  the head `classifier` takes (identical to the training head for
             zs, lp, ft, adapter; FLCP: the zero-shot head rebuilt from the
             fine-tuned text tower; CoOp: the class embeddings of its prompts)
  meta       JSON: method, step, model config (`models.checkpoint.config_to_dict`),
             class names, dataset, templates, the training config
  data       the input iterator's state (one JSON file per process)

and `rationality_jax.train.load_for_evaluation(workdir, step=None)` returns
``{'module', 'params', 'head', 'method', 'step', 'meta', 'classifier'}`` such that

  logits = module.apply({'params': params}, images, head,
                        method=methods.get(method).classifier)

are the trained model's logits [B, C] (``classifier`` is the same function).
WiSE-FT writes the same layout under ``<workdir>/alpha_<alpha>/checkpoints``.
"""

from rationality_jax.methods import adapter
from rationality_jax.methods import coop
from rationality_jax.methods import flcp
from rationality_jax.methods import ft
from rationality_jax.methods import heads
from rationality_jax.methods import losses
from rationality_jax.methods import lp
from rationality_jax.methods import wise_ft
from rationality_jax.methods import zs
from rationality_jax.methods.base import HeadInit
from rationality_jax.methods.base import Method
from rationality_jax.methods.base import make_loss_fn

METHODS = {
  m.name: m
  for m in (
    zs.METHOD,
    lp.METHOD,
    ft.METHOD,
    flcp.METHOD,
    coop.METHOD,
    adapter.METHOD,
  )
}


def get(name: str) -> Method:
  """The `Method` called `name` (one of `METHODS`)."""
  if name not in METHODS:
    raise ValueError(
      f"unknown method {name!r}; choose one of {sorted(METHODS)} "
      "(or 'wise_ft', which interpolates finished runs)."
    )
  return METHODS[name]


__all__ = [
  "METHODS",
  "HeadInit",
  "Method",
  "get",
  "heads",
  "losses",
  "make_loss_fn",
  "wise_ft",
]
