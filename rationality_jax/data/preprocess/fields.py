"""Ops on an example's fields: `keep`, `drop`, and the masks the release made.

`mask_from_soft` (CUB) and `release_box_mask` (ImageNet) make the mask the
way the study's release did (`study_spec(..., mask_order='release')`); the
arithmetic they reproduce is in `rationality_jax.data.release`.
"""

from __future__ import annotations

import numpy as np

from rationality_jax.data import release
from rationality_jax.data.preprocess.spec import Op
from rationality_jax.data.preprocess.spec import register


@register("keep")
def get_keep(*keys) -> Op:
  """Drops every field except `keys`."""
  return lambda data, rng=None: {k: data[k] for k in keys if k in data}


@register("drop")
def get_drop(*keys) -> Op:
  """Drops `keys` (those present)."""
  return lambda data, rng=None: {k: v for k, v in data.items() if k not in keys}


@register("mask_from_soft")
def get_mask_from_soft(
  threshold: int = 255, inkey: str = "soft_mask", outkey: str = "mask"
) -> Op:
  """mask = (soft_mask >= threshold) as uint8; the soft mask is consumed.

  Placed after the geometry, with threshold 255 it is the release's CUB
  mask (utils/CUB_dataset.py, test_rationale_vlm/clip_zs_flcp_cub.py): the
  grayscale segmentation, loaded as RGB (three equal channels), resized and
  cropped bilinearly like the image, ToTensor'd (x / 255 in float32),
  averaged over channels and cast to uint8 is 1 exactly where the resized
  value is 255 (any value below gives a mean < 1, truncated to 0).
  """

  def op(data, rng=None):
    soft = data.pop(inkey)
    data[outkey] = (np.asarray(soft) >= threshold).astype(np.uint8)
    return data

  return op


@register("release_box_mask")
def get_release_box_mask(resize: int = 256, crop: int = 224) -> Op:
  """mask = `release.imagenet_release_box_mask(boxes, H, W, resize, crop)`:
  a [crop, crop] mask drawn from the original boxes and image size, as the
  release's ImageNet scripts did. Put it before the geometry, and keep the
  mask out of the geometric ops that follow (`keys=('image', 'boxes')`)."""

  def op(data, rng=None):
    h, w = data["image"].shape[:2]
    data["mask"] = release.imagenet_release_box_mask(
      data["boxes"], h, w, resize, crop
    )
    return data

  return op
