"""Pixel ops on the image alone: `color_jitter` and `normalize`.

They read `inkey` and write `outkey` (both 'image' by default), as in
big_vision; the masks and boxes are left as they are.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from PIL import ImageEnhance

from rationality_jax.data.preprocess.spec import Op
from rationality_jax.data.preprocess.spec import need_rng
from rationality_jax.data.preprocess.spec import register

NORMALIZATION = {
  # OpenAI CLIP's pixel statistics (clip/clip.py `_transform`).
  "clip": (
    (0.48145466, 0.4578275, 0.40821073),
    (0.26862954, 0.26130258, 0.27577711),
  ),
  # torchvision's ImageNet statistics (used by the study's release for every model).
  "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def _adjust_hue(im: Image.Image, shift: float) -> Image.Image:
  """torchvision's PIL adjust_hue: rotate the uint8 hue channel by shift * 255."""
  h, s, v = im.convert("HSV").split()
  h = Image.fromarray(
    (np.asarray(h, np.int16) + round(shift * 255)).astype(np.uint8), "L"
  )
  return Image.merge("HSV", (h, s, v)).convert("RGB")


@register("color_jitter")
def get_color_jitter(
  brightness=0.0,
  contrast=0.0,
  saturation=0.0,
  hue=0.0,
  inkey="image",
  outkey="image",
) -> Op:
  """torchvision ColorJitter (PIL backend) on the image only: brightness,
  contrast, saturation factors ~ U(max(0, 1-x), 1+x) via PIL.ImageEnhance,
  hue shift ~ U(-hue, hue) of the HSV hue channel; in a random order;
  uint8 in, uint8 out."""
  enhancers = (
    ImageEnhance.Brightness,
    ImageEnhance.Contrast,
    ImageEnhance.Color,
  )
  amounts = (brightness, contrast, saturation)

  def op(data, rng=None):
    rng = need_rng(rng, "color_jitter")
    order = rng.permutation(4)
    factors = [
      rng.uniform(max(0.0, 1 - x), 1 + x) if x else None for x in amounts
    ]
    factors.append(rng.uniform(-hue, hue) if hue else None)
    im = Image.fromarray(data[inkey])
    for i in order:
      if factors[i] is None:
        continue
      im = (
        _adjust_hue(im, factors[i])
        if i == 3
        else enhancers[i](im).enhance(factors[i])
      )
    data[outkey] = np.asarray(im)
    return data

  return op


@register("normalize")
def get_normalize(
  preset="clip", mean=None, std=None, inkey="image", outkey="image"
) -> Op:
  """uint8 [0, 255] -> float32 (x / 255 - mean) / std; `preset` 'clip' or 'imagenet'
  (or explicit `mean`/`std` per channel)."""
  if mean is None or std is None:
    if preset not in NORMALIZATION:
      raise ValueError(
        f"Unknown normalization preset {preset!r}; choose from {sorted(NORMALIZATION)}."
      )
    mean, std = NORMALIZATION[preset]
  mean = np.asarray(mean, np.float32)
  std = np.asarray(std, np.float32)

  def op(data, rng=None):
    data[outkey] = ((data[inkey].astype(np.float32) / 255.0) - mean) / std
    return data

  return op
