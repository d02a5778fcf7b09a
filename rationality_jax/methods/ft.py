"""FT: the LP head (`lp`) with the image tower and its projection unfrozen."""

import dataclasses

from rationality_jax.methods import lp

METHOD = dataclasses.replace(
  lp.METHOD,
  name="ft",
  trainable=lambda config, model_config: r"params/vision(_proj)?/.*|head/.*",
  study_lr=1e-5,
)
