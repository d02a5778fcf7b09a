"""rrr: FLCP's contrastive fine-tuning plus Ross et al.'s input-gradient penalty.

``contrastive + lambda_rrr * sum(((1 - M) d sum_k log p_k / dx)^2)`` over
the batch's caption logits (`guidance.make_rrr_loss`); trains and evaluates
like FLCP (reads its section). Options (``config.rrr``): ``lambda_rrr``,
``masks_per_class`` (-1 every image, k, 0 = plain fine-tuning),
``mask_seed`` (-1 = the run's seed).
"""

from rationality_jax.explain import targets
from rationality_jax.methods import flcp
from rationality_jax.methods import guidance
from rationality_jax.methods.base import Method

METHOD = Method(
  name="rrr",
  trainable=flcp.trainable,
  init_head=flcp.init_head,
  classifier=targets.zero_shot,
  loss="contrastive",
  eval_head=flcp.eval_head,
  options={"lambda_rrr": 3e-4, "masks_per_class": -1, "mask_seed": -1},
  study_lr=1e-5,
  reads=("flcp",),
  make_loss=guidance.make_rrr_loss,
  needs_masks=True,
  select_masks=guidance.selector("rrr"),
)
