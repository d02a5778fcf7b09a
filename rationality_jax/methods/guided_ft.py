"""guided_ft: FT (LP head, image tower) plus RobustViT's relevance loss.

`guided` with the classification objective: ``lambda_acc * CE +
lambda_seg * relevance``, the relevance being Chefer's map of the
ground-truth class's linear-head logit. Reads the ``guided`` options and
LP's head options (``lp``).
"""

import dataclasses

from rationality_jax.methods import ft
from rationality_jax.methods import guidance
from rationality_jax.methods import guided

METHOD = dataclasses.replace(
  ft.METHOD,
  name="guided_ft",
  options=guided.OPTIONS,
  section="guided",
  choices={},
  reads=("lp",),
  make_loss=guidance.make_guided_loss,
  needs_masks=True,
  select_masks=guidance.selector("guided"),
)
