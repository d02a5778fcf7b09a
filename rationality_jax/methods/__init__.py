r"""Adaptation methods as configuration of one training loop (see docs/training.md).

  method = methods.get("flcp")       # zs, lp, ft, flcp, coop, adapter
  method.trainable(config)           # regex over {'params', 'head'} paths
  method.loss                        # 'cross_entropy' or 'contrastive'
  method.init_head / eval_head       # the head that trains / the head evaluated
  method.classifier(module, images, head) -> logits [B, C]   (inside module.apply)

WiSE-FT is weight interpolation of two finished models (`wise_ft.interpolate`,
`wise_ft.run`), run by `rationality_jax.run.train` with ``config.method='wise_ft'``.

What a training run hands to evaluation (its checkpoint items, and the
`Trained` model whose ``classifier`` is the method's) is the contract of
`rationality_jax.run.checkpoints`.
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
