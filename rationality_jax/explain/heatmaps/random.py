"""Random maps: seeded noise, a control for every metric.

A map that knows nothing about the image or the class: uniform noise in
[0, 1) on a grid of ``cell x cell``-pixel cells (``ceil(S / cell)`` per side),
bilinearly upsampled to the input like the token heatmaps' patch maps (the
default, 16, is a ViT-B/16 patch; ``cell=1`` is per-pixel noise), then
post-processed like every other map (an image no larger than one cell gets
one value, a constant map: all zeros after min-max). Whatever a metric gives it is that
metric's chance level for maps of that smoothness: RMA near the mask's share
of the image (`metrics.uniform_map_rma`), the pointing game near it too, and
the faithfulness curves of an uninformative ordering.

Deterministic per sample: each image's noise is drawn from
``fold_in(key(seed), hash of the image's bits)`` (`seeding.image_keys`, as
ROAD's imputation noise is), so the same image gets the same map in every
run, whatever its batch, its position in the batch, the batch size or the
sharding (a position in the batch would give the first image of every batch
the same map). Identical images share a map; any other
difference, one bit of one pixel, gives an unrelated one. The logits come
from one forward pass (no backward); a sample whose image holds a NaN or an
inf gets an all-NaN map, as with the other heatmaps.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from rationality_jax.explain import postprocess
from rationality_jax.explain import seeding


@dataclasses.dataclass(frozen=True)
class Random:
  """Seeded uniform noise (a control): independent of the model and class.

  seed: the noise's seed (each image's own key is folded from it).
  cell: noise cell side in pixels (16: one value per ViT-B/16 patch,
    bilinearly upsampled; 1: per pixel).
  """

  seed: int = 0
  cell: int = 16
  name: ClassVar[str] = "random"
  kind: ClassVar[str] = "pixels"
  signed: ClassVar[bool] = False

  def __post_init__(self):
    if self.cell < 1:
      raise ValueError(f"random maps need cell >= 1 pixel; got {self.cell}.")

  def pixel_map(self, images, gradient):
    """`base.PixelHeatmap`: one forward for the logits, no backward."""
    logits, classes = gradient.forward(images)
    maps = noise_maps(images, self.seed, self.cell)
    return logits, classes, postprocess.nan_where_nonfinite(maps, [images])


def noise_maps(images: jax.Array, seed: int, cell: int = 16) -> jax.Array:
  """[B, S, S, C] images -> [B, S, S] float32 noise in [0, 1), per image.

  Uniform noise on a ``ceil(S / cell)`` grid (side), bilinearly upsampled
  (`postprocess.upsample`, the identity for ``cell=1``).
  """
  height, width = images.shape[1:3]
  grid = (-(-height // cell), -(-width // cell))
  keys = seeding.image_keys(images, seed)
  noise = jax.vmap(lambda k: jax.random.uniform(k, grid, jnp.float32))(keys)
  return postprocess.upsample(noise, (height, width))


HEATMAP = Random
