"""Input gradients (Simonyan et al. 2014, "saliency"): ``max_c |dS/dx_c|``.

The max of the absolute value over the colour channels, as in the paper, of the
gradient of the score with respect to the model's input (the normalized
images): a [B, H, W] map at pixel resolution.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class InputGradients:
  """Saliency: max over channels of |dS/dx| (Simonyan et al. 2014)."""

  name: ClassVar[str] = "input_gradients"
  kind: ClassVar[str] = "pixels"
  signed: ClassVar[bool] = False

  def pixel_map(self, images, gradient):
    """`base.PixelHeatmap`: one forward + backward."""
    g, logits, classes = gradient(images)
    return logits, classes, input_gradient_map(g)


def input_gradient_map(gradients: jax.Array) -> jax.Array:
  """max_c |g|: [B, H, W, C] -> [B, H, W]."""
  return jnp.abs(gradients).max(axis=-1)


HEATMAP = InputGradients
