"""Gradient x input (Shrikumar et al. 2016): ``sum_c x_c * dS/dx_c`` (signed).

In the model's input space (the normalized images), summed over the colour
channels: a [B, H, W] map at pixel resolution. The map is signed (``signed``
True): the explainer keeps its positive part before min-max by default, or
min-max normalizes the raw map (``signed='minmax'``, the release's, whose
most negative pixel maps to 0); see `explain.postprocess.signed_relevance`.
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
  signed: ClassVar[bool] = True

  def pixel_map(self, images, gradient):
    """`base.PixelHeatmap`: one forward + backward."""
    g, logits, classes = gradient(images)
    return logits, classes, gradient_x_input_map(images, g)


def gradient_x_input_map(images: jax.Array, gradients: jax.Array) -> jax.Array:
  """sum_c x * g: [B, H, W, C] (both) -> [B, H, W]."""
  return (images * gradients).sum(axis=-1)


HEATMAP = GradientXInput
