"""Preprocessing ops that move image, mask and boxes together (numpy + PIL).

An op is built by a registered factory and called as `op(data, rng) -> data`,
where `data` is one example:

  image:     [H, W, 3] uint8 (float32 after `normalize`)
  mask:      [H, W] uint8, 1 on the object
  soft_mask: [H, W] uint8, 0..255 (CUB's soft segmentation, when present)
  boxes:     [N, 4] float32, (x_min, y_min, x_max, y_max) in pixels of the
             current image, pixel edges (a box covering pixel column 0 only
             is 0..1)

Geometric ops (`resize`, `center_crop`, `random_resized_crop`, `flip_lr`,
`random_flip_lr`, `rotate`) transform every one of `keys` that is present with
the same geometry: the image and the soft mask with `method` (default
bilinear), the mask with nearest neighbour (`mask_method` of `resize` and
`random_resized_crop` can change that), boxes analytically. Image-only ops
(`color_jitter`, `normalize`) take `inkey`/`outkey` as in big_vision.
`mask_from_soft` and `release_box_mask` make the mask the way the study's
release did (see `study_spec(..., mask_order='release')`).

Random ops draw from the `rng` (a `np.random.Generator`) the pipeline seeds
from (seed, epoch, example index), so an example's augmentation is the same on
any number of hosts and after a resume.

A preprocessing spec is a string of ops joined by `|` (or a list of op
strings), each a Python call with literal arguments:

  parse("resize(256)|center_crop(224)|normalize('clip')")

Sizes follow torchvision: `resize(256)` sets the short side to 256 and the
long side to int(256 * long / short); `center_crop` offsets are
round((H - h) / 2) and it zero-pads an image smaller than the crop.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
import math
from typing import Any

import numpy as np
from PIL import Image
from PIL import ImageEnhance

from rationality_jax.data import release

Data = dict[str, Any]
Op = Callable[[Data, "np.random.Generator | None"], Data]

GEOMETRIC_KEYS = ("image", "mask", "soft_mask", "boxes")
IMAGE_KEYS = ("image", "soft_mask")  # resampled with the op's `method`
MASK_KEYS = ("mask",)  # resampled with nearest neighbour (or `mask_method`)

NORMALIZATION = {
  # OpenAI CLIP's pixel statistics (clip/clip.py `_transform`).
  "clip": (
    (0.48145466, 0.4578275, 0.40821073),
    (0.26862954, 0.26130258, 0.27577711),
  ),
  # torchvision's ImageNet statistics (used by the study's release for every model).
  "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

# The study's evaluation geometry per dataset, (resize, crop) at 224 px
# (PAPER.md, "Datasets and masks"); ImageNet-C images are already
# Resize(256) + CenterCrop(224): resize(224) is then the identity.
STUDY_EVAL_SIZES = {
  "cub_200_2011": (256, 224),
  "imagenet2012_val_masks": (256, 224),
  "imagenet2012_train": (256, 224),
  "caltech101_masks": (224, 224),
  "stanford_dogs_masks": (224, 224),
  "imagenet_c_masks": (224, 224),
  "synthetic_rationality": (224, 224),
}
# The release's training augmentation (RandomResizedCrop(224), horizontal flip,
# ColorJitter(0.2, 0.2, 0.2, 0.2), RandomRotation(30)).
STUDY_TRAIN_AUGMENTATION = (
  "random_resized_crop({crop})|random_flip_lr|"
  "color_jitter(0.2, 0.2, 0.2, 0.2)|rotate(30)"
)
MASK_ORDERS = ("ours", "release")

_RESAMPLE = {
  "nearest": Image.NEAREST,
  "bilinear": Image.BILINEAR,
  "bicubic": Image.BICUBIC,
}

_REGISTRY: dict[str, Callable[..., Op]] = {}


def register(name: str):
  """Registers an op factory under `name` for `parse`."""

  def wrap(factory):
    if name in _REGISTRY:
      raise ValueError(f"Preprocessing op {name!r} is already registered.")
    _REGISTRY[name] = factory
    return factory

  return wrap


def registered_ops() -> list[str]:
  return sorted(_REGISTRY)


class Preprocess:
  """A parsed chain of ops; `fn(data, rng=None) -> data` (the input is not mutated)."""

  def __init__(self, ops: Sequence[Op], spec: str):
    self.ops = list(ops)
    self.spec = spec

  def __call__(
    self, data: Data, rng: np.random.Generator | None = None
  ) -> Data:
    data = dict(data)
    for op in self.ops:
      data = op(data, rng)
    return data

  def __repr__(self):
    return f"Preprocess({self.spec!r})"


def _parse_call(text: str) -> tuple[str, tuple, dict]:
  try:
    node = ast.parse(text.strip(), mode="eval").body
  except SyntaxError as e:
    raise ValueError(f"Cannot parse preprocessing op {text!r}: {e}") from None
  if isinstance(node, ast.Name):
    return node.id, (), {}
  if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
    raise ValueError(
      f"Preprocessing op {text!r} must look like name(arg, key=value)."
    )
  try:
    args = tuple(ast.literal_eval(a) for a in node.args)
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
  except ValueError:
    raise ValueError(
      f"Arguments of preprocessing op {text!r} must be Python literals."
    ) from None
  return node.func.id, args, kwargs


def parse(spec: str | Sequence[str] | Preprocess) -> Preprocess:
  """Builds a `Preprocess` from "op1(...)|op2(...)" or a list of op strings."""
  if isinstance(spec, Preprocess):
    return spec
  parts = spec.split("|") if isinstance(spec, str) else list(spec)
  parts = [p for p in (p.strip() for p in parts) if p]
  ops = []
  for part in parts:
    name, args, kwargs = _parse_call(part)
    if name not in _REGISTRY:
      raise ValueError(
        f"Unknown preprocessing op {name!r} in {part!r}; registered: {registered_ops()}."
      )
    ops.append(_REGISTRY[name](*args, **kwargs))
  return Preprocess(ops, "|".join(parts))


def _release_eval_geometry(dataset: str, resize: int, crop: int) -> str:
  """The release's evaluation geometry, masks included, for `dataset`."""
  if dataset == "cub_200_2011":
    # utils/CUB_dataset.py: the soft segmentation goes through the image's
    # Resize + CenterCrop (bilinear); clip_zs_flcp_cub.py keeps only pixels
    # still at 255 (ToTensor, channel mean, uint8 cast).
    return f"resize({resize})|center_crop({crop})|mask_from_soft(255)"
  if dataset in ("caltech101_masks", "stanford_dogs_masks"):
    # utils/caltech101_dataset.py, utils/Stanford_Dogs_dataset.py: the 0/1
    # mask is a PIL image resized by the default (bilinear) Resize.
    return f"resize({resize}, mask_method='bilinear')|center_crop({crop})"
  if dataset == "imagenet2012_val_masks":
    # test_rationale_vlm/clip_zs_flcp_in.py draws the boxes straight into
    # the cropped frame (`release.imagenet_release_box_mask`).
    keys = "keys=('image', 'boxes')"
    return (
      f"release_box_mask({resize}, {crop})|resize({resize}, {keys})|"
      f"center_crop({crop}, {keys})"
    )
  # ImageNet-C: the release's masks are a builder option (mask_style).
  return f"resize({resize})|center_crop({crop})"


def study_spec(
  dataset: str,
  train: bool = False,
  normalization: str = "clip",
  size: int = 224,
  mask_order: str = "ours",
) -> str:
  """The study's preprocessing for `dataset` as a spec string.

  Evaluation: the dataset's resize + center crop; training: the release's
  augmentation. `normalization`: 'clip' (right for CLIP) or 'imagenet' (what
  the release used for every model). `size` != 224 scales the geometry.

  `mask_order` (evaluation only): 'ours' moves the stored mask with the
  image (nearest neighbour, so it stays binary and aligned); 'release'
  makes the mask as the release did, per dataset:
    cub_200_2011: the soft segmentation resized and cropped bilinearly like
      the image, then `mask_from_soft(255)`: only pixels still 255 count
      (thin and soft-edged parts shrink or vanish);
    caltech101_masks, stanford_dogs_masks: the 0/1 mask resized bilinearly
      (PIL rounding, so roughly where the interpolated mask is >= 0.5);
    imagenet2012_val_masks: `release_box_mask`, the boxes drawn into the
      224 crop with the release's float arithmetic and inclusive corners;
    imagenet_c_masks, synthetic_rationality: as 'ours' (build ImageNet-C
      with mask_style='release' for its release masks).
  The builders' own release options (CUB split_order, Caltech
  split_scheme / contour / background_class, Dogs boxes / box_fill) are
  separate: see docs/data.md.
  """
  if dataset not in STUDY_EVAL_SIZES:
    raise ValueError(
      f"No study preprocessing for {dataset!r}; known: {sorted(STUDY_EVAL_SIZES)}."
    )
  if mask_order not in MASK_ORDERS:
    raise ValueError(
      f"mask_order must be one of {MASK_ORDERS}, got {mask_order!r}."
    )
  resize, crop = STUDY_EVAL_SIZES[dataset]
  resize, crop = round(size * resize / 224), size
  if train:
    geometry = STUDY_TRAIN_AUGMENTATION.format(crop=crop)
  elif mask_order == "release":
    geometry = _release_eval_geometry(dataset, resize, crop)
  else:
    geometry = f"resize({resize})|center_crop({crop})"
  if dataset == "cub_200_2011" and "mask_from_soft" not in geometry:
    geometry = "drop('soft_mask')|" + geometry  # no work on an unused field
  return f"{geometry}|normalize({normalization!r})"


def _need_rng(rng, name):
  if rng is None:
    raise ValueError(
      f"Op {name} is random: call the preprocessing with rng=np.random.default_rng(...)."
    )
  return rng


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
    rng = _need_rng(rng, "random_resized_crop")
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
    if _need_rng(rng, "random_flip_lr").uniform() < p:
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
    angle = float(_need_rng(rng, "rotate").uniform(lo, hi))
    return _rotate_all(data, keys, angle, method)

  return op


@register("rotate_fixed")
def get_rotate_fixed(
  angle: float, method: str = "nearest", keys: Sequence[str] = GEOMETRIC_KEYS
) -> Op:
  """Rotates by exactly `angle` degrees counter-clockwise."""
  return lambda data, rng=None: _rotate_all(data, keys, angle, method)


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
    rng = _need_rng(rng, "color_jitter")
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
