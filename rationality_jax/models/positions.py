"""ViT position embeddings resampled to another patch grid.

A checkpoint trained at one image size loads at another (CLIP at 336 px,
ALBEF/BLIP at 384 px, a smaller grid in tests): the CLS position is kept and
the patch positions are resized as a square image with PyTorch's bicubic,
the arithmetic ALBEF/BLIP's ``interpolate_pos_embed`` and HF CLIP/BLIP's
``interpolate_pos_encoding=True`` use (`resize_position_embedding`).
"""

from __future__ import annotations

import numpy as np


def _torch_bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] weights of PyTorch's 1-D bicubic resize.

  ``F.interpolate(mode='bicubic', align_corners=False)`` without antialias:
  Keys' cubic with a = -0.75, source coordinate ``(i + 0.5) * in/out - 0.5``,
  indices clamped at the border.
  """
  a = -0.75

  def cubic(t):
    t = np.abs(t)
    return np.where(
      t <= 1,
      ((a + 2) * t - (a + 3)) * t * t + 1,
      np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0),
    )

  scale = in_size / out_size
  source = (np.arange(out_size) + 0.5) * scale - 0.5
  floor = np.floor(source)
  frac = source - floor
  weights = np.zeros((out_size, in_size), np.float64)
  for offset in (-1, 0, 1, 2):
    index = np.clip(floor + offset, 0, in_size - 1).astype(int)
    np.add.at(weights, (np.arange(out_size), index), cubic(frac - offset))
  return weights


def resize_position_embedding(
  pos_embedding: np.ndarray, grid_size: int
) -> np.ndarray:
  """Resample ViT position embeddings to another patch grid.

  The CLS position is kept; the patch positions are resized as a square image
  with PyTorch's bicubic (align_corners=False, no antialias), which is what
  ALBEF/BLIP's ``interpolate_pos_embed`` and HF CLIP/BLIP's
  ``interpolate_pos_encoding=True`` do.

  Args:
    pos_embedding: [1 + g*g, D] for some square grid g.
    grid_size: the new grid side G.

  Returns:
    [1 + G*G, D] float32 (computed in float64).
  """
  num_patches, width = pos_embedding.shape[0] - 1, pos_embedding.shape[1]
  old_grid = round(num_patches**0.5)
  if old_grid * old_grid != num_patches:
    raise ValueError(
      f"position embedding with {num_patches} patch positions is "
      "not a square grid; cannot resize it."
    )
  if old_grid == grid_size:
    return np.asarray(pos_embedding, np.float32)
  grid = np.asarray(pos_embedding[1:], np.float64).reshape(
    old_grid, old_grid, width
  )
  resize = _torch_bicubic_matrix(old_grid, grid_size)
  grid = np.einsum("ih,jw,hwd->ijd", resize, resize, grid)
  return np.concatenate(
    [np.asarray(pos_embedding[:1], np.float64), grid.reshape(-1, width)]
  ).astype(np.float32)
