"""Geometric ops: one geometry for the image, its masks and its boxes.

`resize`, `center_crop`, `crop`, `random_resized_crop`, `flip_lr`,
`random_flip_lr`, `rotate` and `rotate_fixed` transform every one of `keys`
that is present with the same geometry: the image and the soft mask with
`method` (default bilinear), the mask with nearest neighbour (`mask_method`
of `resize` and `random_resized_crop` can change that), boxes analytically.
Sizes follow torchvision: `resize(256)` sets the short side to 256 and the
long side to int(256 * long / short); `center_crop` offsets are
round((H - h) / 2) and it zero-pads an image smaller than the crop.
"""

from __future__ import annotations

from collections.abc import Sequence
import math

import numpy as np
from PIL import Image

from rationality_jax.data.preprocess.spec import Data
from rationality_jax.data.preprocess.spec import Op
from rationality_jax.data.preprocess.spec import need_rng
from rationality_jax.data.preprocess.spec import register

GEOMETRIC_KEYS = ("image", "mask", "soft_mask", "boxes")
IMAGE_KEYS = ("image", "soft_mask")  # resampled with the op's `method`
MASK_KEYS = ("mask",)  # resampled with nearest neighbour (or `mask_method`)

_RESAMPLE = {
  "nearest": Image.NEAREST,
  "bilinear": Image.BILINEAR,
  "bicubic": Image.BICUBIC,
}


def _hw(data: Data, keys) -> tuple[int, int]:
  for k in ("image", "mask", "soft_mask"):
    if k in keys and k in data:
      return data[k].shape[0], data[k].shape[1]
  raise KeyError(
    f"A geometric op needs 'image', 'mask' or 'soft_mask' among keys {keys}; "
    f"example has {sorted(data)}."
  )


def _pil_resize(a: np.ndarray, size_hw, resample, box=None) -> np.ndarray:
  """Resizes a [H, W] or [H, W, C] uint8 array (optionally a crop `box` of it)."""
  h, w = size_hw
  if a.dtype != np.uint8:
    raise TypeError(
      f"Geometric ops run before normalize: expected uint8, got {a.dtype}."
    )
  out = Image.fromarray(a).resize((w, h), resample=resample, box=box)
  return np.asarray(out)


def _transform_boxes(boxes, fn):
  boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
  return fn(boxes).astype(np.float32)


def _crop_boxes(boxes, top, left, h, w):
  def f(b):
    b = b - np.array([left, top, left, top], np.float32)
    return np.clip(b, 0, [w, h, w, h])

  return _transform_boxes(boxes, f)


def _resize_all(data, keys, out_hw, method, box=None, mask_method="nearest"):
  """Resizes the (crop `box` = (left, top, right, bottom) of the)
  image/masks/boxes to out_hw."""
  h, w = _hw(data, keys)
  left, top, right, bottom = box if box is not None else (0, 0, w, h)
  oh, ow = out_hw
  for k in keys:
    if k in data and (k in IMAGE_KEYS or k in MASK_KEYS):
      resample = _RESAMPLE[method if k in IMAGE_KEYS else mask_method]
      data[k] = _pil_resize(
        data[k], out_hw, resample, (left, top, right, bottom)
      )
  if "boxes" in keys and "boxes" in data:
    sx, sy = ow / (right - left), oh / (bottom - top)

    def f(bx):
      bx = (bx - np.array([left, top, left, top], np.float32)) * np.array(
        [sx, sy, sx, sy], np.float32
      )
      return np.clip(bx, 0, [ow, oh, ow, oh])

    data["boxes"] = _transform_boxes(data["boxes"], f)
  return data


def resized_shape(h: int, w: int, size) -> tuple[int, int]:
  """torchvision Resize semantics: int -> short side, (h, w) -> exact."""
  if isinstance(size, (tuple, list)):
    return int(size[0]), int(size[1])
  size = int(size)
  if h <= w:
    return size, int(size * w / h)
  return int(size * h / w), size


@register("resize")
def get_resize(
  size,
  method: str = "bilinear",
  keys: Sequence[str] = GEOMETRIC_KEYS,
  mask_method: str = "nearest",
) -> Op:
  """Resizes: `size` int -> short side to `size`; (h, w) -> exactly (h, w).

  `mask_method='bilinear'` resizes the 0/1 mask as a PIL image with
  bilinear weights (it stays 0/1: PIL rounds), as the release did for
  Caltech-101 and Stanford Dogs.
  """

  def op(data, rng=None):
    h, w = _hw(data, keys)
    return _resize_all(
      data, keys, resized_shape(h, w, size), method, mask_method=mask_method
    )

  return op


def _crop_all(data, keys, top, left, ch, cw):
  """Crops [top, top+ch) x [left, left+cw); parts outside the image are zero."""
  h, w = _hw(data, keys)
  for k in (*IMAGE_KEYS, *MASK_KEYS):
    if k in keys and k in data:
      a = data[k]
      out = np.zeros((ch, cw, *a.shape[2:]), a.dtype)
      y0, x0 = max(top, 0), max(left, 0)
      y1, x1 = min(top + ch, h), min(left + cw, w)
      if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = a[y0:y1, x0:x1]
      data[k] = out
  if "boxes" in keys and "boxes" in data:
    data["boxes"] = _crop_boxes(data["boxes"], top, left, ch, cw)
  return data


@register("center_crop")
def get_center_crop(size, keys: Sequence[str] = GEOMETRIC_KEYS) -> Op:
  """Central crop of `size` (int or (h, w)); zero-pads a smaller image."""
  ch, cw = (size, size) if isinstance(size, int) else size

  def op(data, rng=None):
    h, w = _hw(data, keys)
    top = round((h - ch) / 2.0)
    left = round((w - cw) / 2.0)
    return _crop_all(data, keys, top, left, ch, cw)

  return op


@register("crop")
def get_crop(
  top: int,
  left: int,
  height: int,
  width: int,
  keys: Sequence[str] = GEOMETRIC_KEYS,
) -> Op:
  """Fixed crop [top, top+height) x [left, left+width)."""

  def op(data, rng=None):
    return _crop_all(data, keys, top, left, height, width)

  return op


def random_resized_crop_box(
  rng, h, w, scale, ratio
) -> tuple[int, int, int, int]:
  """torchvision RandomResizedCrop.get_params: returns (top, left, height, width)."""
  area = h * w
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target_area = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(*log_ratio))
    cw = round(math.sqrt(target_area * aspect))
    ch = round(math.sqrt(target_area / aspect))
    if 0 < cw <= w and 0 < ch <= h:
      top = int(rng.integers(0, h - ch + 1))
      left = int(rng.integers(0, w - cw + 1))
      return top, left, ch, cw
  in_ratio = w / h
  if in_ratio < min(ratio):
    cw, ch = w, round(w / min(ratio))
  elif in_ratio > max(ratio):
    ch, cw = h, round(h * max(ratio))
  else:
    cw, ch = w, h
  return (h - ch) // 2, (w - cw) // 2, ch, cw


@register("random_resized_crop")
def get_random_resized_crop(
  size,
  scale: Sequence[float] = (0.08, 1.0),
  ratio: Sequence[float] = (3 / 4, 4 / 3),
  method: str = "bilinear",
  keys: Sequence[str] = GEOMETRIC_KEYS,
  mask_method: str = "nearest",
) -> Op:
  """torchvision RandomResizedCrop(size, scale, ratio): random crop, resized to `size`."""
  out_hw = (size, size) if isinstance(size, int) else tuple(size)

  def op(data, rng=None):
    rng = need_rng(rng, "random_resized_crop")
    h, w = _hw(data, keys)
    top, left, ch, cw = random_resized_crop_box(rng, h, w, scale, ratio)
    return _resize_all(
      data,
      keys,
      out_hw,
      method,
      box=(left, top, left + cw, top + ch),
      mask_method=mask_method,
    )

  return op


def _flip_all(data, keys):
  _h, w = _hw(data, keys)
  for k in (*IMAGE_KEYS, *MASK_KEYS):
    if k in keys and k in data:
      data[k] = np.ascontiguousarray(data[k][:, ::-1])
  if "boxes" in keys and "boxes" in data:
    data["boxes"] = _transform_boxes(
      data["boxes"],
      lambda b: np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], -1),
    )
  return data


@register("flip_lr")
def get_flip_lr(keys: Sequence[str] = GEOMETRIC_KEYS) -> Op:
  """Always mirrors left-right."""
  return lambda data, rng=None: _flip_all(data, keys)


@register("random_flip_lr")
def get_random_flip_lr(
  p: float = 0.5, keys: Sequence[str] = GEOMETRIC_KEYS
) -> Op:
  """Mirrors left-right with probability `p` (torchvision RandomHorizontalFlip)."""

  def op(data, rng=None):
    if need_rng(rng, "random_flip_lr").uniform() < p:
      data = _flip_all(data, keys)
    return data

  return op


def _rotate_all(data, keys, angle, method):
  """Rotates counter-clockwise by `angle` degrees about the centre; no expand, zero fill."""
  h, w = _hw(data, keys)
  for k in (*IMAGE_KEYS, *MASK_KEYS):
    if k in keys and k in data:
      resample = _RESAMPLE[method] if k in IMAGE_KEYS else Image.NEAREST
      data[k] = np.asarray(
        Image.fromarray(data[k]).rotate(angle, resample=resample, fillcolor=0)
      )
  if "boxes" in keys and "boxes" in data:
    cx, cy = w / 2.0, h / 2.0
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)

    def f(b):
      xs = b[:, [0, 2, 2, 0]] - cx
      ys = b[:, [1, 1, 3, 3]] - cy
      # Counter-clockwise on screen (y down) is x' = x cos + y sin, y' = -x sin + y cos.
      rx = xs * cos + ys * sin + cx
      ry = -xs * sin + ys * cos + cy
      out = np.stack([rx.min(1), ry.min(1), rx.max(1), ry.max(1)], -1)
      return np.clip(out, 0, [w, h, w, h])

    data["boxes"] = _transform_boxes(data["boxes"], f)
  return data


@register("rotate")
def get_rotate(
  degrees, method: str = "nearest", keys: Sequence[str] = GEOMETRIC_KEYS
) -> Op:
  """torchvision RandomRotation(degrees): angle ~ U(-degrees, degrees) (or U(lo, hi)
  for a pair), counter-clockwise, no expansion, zero fill, nearest by default.
  Boxes become the axis-aligned hull of their rotated corners."""
  lo, hi = (-degrees, degrees) if np.isscalar(degrees) else degrees

  def op(data, rng=None):
    angle = float(need_rng(rng, "rotate").uniform(lo, hi))
    return _rotate_all(data, keys, angle, method)

  return op


@register("rotate_fixed")
def get_rotate_fixed(
  angle: float, method: str = "nearest", keys: Sequence[str] = GEOMETRIC_KEYS
) -> Op:
  """Rotates by exactly `angle` degrees counter-clockwise."""
  return lambda data, rng=None: _rotate_all(data, keys, angle, method)
