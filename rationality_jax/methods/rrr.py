"""rrr: FLCP's contrastive fine-tuning plus Ross et al.'s input-gradient penalty.

``contrastive + lambda_rrr * sum(((1 - M) d sum_k log p_k / dx)^2)`` over
the batch's caption logits (`guidance.make_rrr_loss`); trains and evaluates
like FLCP (reads its section). Options (``config.rrr``): ``lambda_rrr``,
``masks_per_class`` (-1 every image, k, 0 = plain fine-tuning),
``mask_seed`` (-1 = the run's seed).
"""

import dataclasses

from rationality_jax.methods import flcp
from rationality_jax.methods import guidance

METHOD = dataclasses.replace(
  flcp.METHOD,
  name="rrr",
  options={"lambda_rrr": 3e-4, "masks_per_class": -1, "mask_seed": -1},
  choices={},
  reads=("flcp",),
  make_loss=guidance.make_rrr_loss,
  needs_masks=True,
  select_masks=guidance.selector("rrr"),
)
