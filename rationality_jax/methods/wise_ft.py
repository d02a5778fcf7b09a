"""WiSE-FT (Wortsman et al. 2022): weight-space interpolation zero-shot <-> fine-tuned.

  params_alpha = (1 - alpha) * params_zero_shot + alpha * params_fine_tuned

for every parameter of the model and of the head (heads with the same
structure; FLCP's head is rebuilt from the interpolated text tower instead).
alpha 0 is the zero-shot model, 1 the fine-tuned one. The stage that reads a
finished run and writes one run directory per alpha is the driver's
(`rationality_jax.run.wise_ft`).
"""

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
