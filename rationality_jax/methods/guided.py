"""guided: FLCP's contrastive fine-tuning plus RobustViT's relevance loss.

Both towers train (FLCP's regex, temperature and targets: it reads the
``flcp`` section) on ``lambda_acc * contrastive + lambda_seg * relevance``,
the relevance being Chefer's map of each image's own caption logit against
its object mask (`guidance.make_guided_loss`). Evaluated like FLCP: the
zero-shot head rebuilt from the fine-tuned text tower. Options
(``config.guided``, shared with `guided_ft`): ``start_layer`` (Chefer's
first block, 0 = all), ``lambda_seg``, ``lambda_acc``, ``background``,
``foreground`` (RobustViT's 2 and 0.3), ``masks_per_class`` (-1 every image,
k, 0 = plain fine-tuning), ``mask_seed`` (-1 = the run's seed).
"""

import dataclasses

from rationality_jax.methods import flcp
from rationality_jax.methods import guidance

OPTIONS = {
  "start_layer": 0,
  "lambda_seg": 0.8,
  "lambda_acc": 0.2,
  "background": 2.0,
  "foreground": 0.3,
  "masks_per_class": -1,
  "mask_seed": -1,
}

METHOD = dataclasses.replace(
  flcp.METHOD,
  name="guided",
  options=OPTIONS,
  choices={},
  reads=("flcp",),
  make_loss=guidance.make_guided_loss,
  needs_masks=True,
  select_masks=guidance.selector("guided"),
)
