"""Gradient x input (Shrikumar et al. 2016): ``sum_c x_c * dS/dx_c`` (signed).

In the model's input space (the normalized images), summed over the colour
channels: a [B, H, W] map at pixel resolution. The signed map is min-max
normalized like every other map (so the most negative pixel maps to 0); RMA
then sees only the relative ordering the study uses.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax


@dataclasses.dataclass(frozen=True)
class GradientXInput:
  """Gradient x input, summed over channels (signed)."""

  name: ClassVar[str] = "gradient_x_input"
  kind: ClassVar[str] = "pixels"

  def pixel_map(self, images, gradient):
    """`base.PixelHeatmap`: one forward + backward."""
    g, logits, classes = gradient(images)
    return logits, classes, gradient_x_input_map(images, g)


def gradient_x_input_map(images: jax.Array, gradients: jax.Array) -> jax.Array:
  """sum_c x * g: [B, H, W, C] (both) -> [B, H, W]."""
  return (images * gradients).sum(axis=-1)


HEATMAP = GradientXInput
