r"""Adaptation methods as configuration of one training loop (see docs/training.md).

  method = methods.METHODS["flcp"]   # zs, lp, ft, flcp, coop, adapter,
                                     # guided, guided_ft, rrr
  method.trainable(config)           # regex over {'params', 'head'} paths
  method.loss                        # 'cross_entropy' or 'contrastive'
  method.init_head / eval_head       # the head that trains / the head evaluated
  method.classifier(module, images, head) -> logits [B, C]   (inside module.apply)

Each method module declares ``METHOD`` (`Method`: what trains, its loss and
head, its config options and study learning rate) and is listed in `MODULES`
(`rationality_jax.registry`). WiSE-FT is weight interpolation of two finished
models (`wise_ft.interpolate`), a stage of its own in the driver
(`rationality_jax.run.wise_ft`), not a training method.

What a training run hands to evaluation (its checkpoint items, and the
`Trained` model whose ``classifier`` is the method's) is the contract of
`rationality_jax.run.checkpoints`.
"""

from rationality_jax import registry
from rationality_jax.methods import heads
from rationality_jax.methods import losses
from rationality_jax.methods import wise_ft
from rationality_jax.methods.base import HeadInit
from rationality_jax.methods.base import Method
from rationality_jax.methods.base import make_loss_fn

MODULES = (
  "zs",
  "lp",
  "ft",
  "flcp",
  "coop",
  "adapter",
  "guided",
  "guided_ft",
  "rrr",
)
METHODS: registry.Registry = registry.Registry(
  "method", __name__, MODULES, "METHOD"
)


__all__ = [
  "METHODS",
  "MODULES",
  "HeadInit",
  "Method",
  "heads",
  "losses",
  "make_loss_fn",
  "wise_ft",
]
