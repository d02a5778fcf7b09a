"""The authors' release's data arithmetic, reimplemented as named options.

The study's PyTorch release (deep-real/vlm-pred-rationality, folder
`prediction_rationality/`) makes data choices that the paper does not state
and that change the numbers. Each function here reproduces one of them from
its description (no code of the release is copied); the builders and
`preprocess` expose them as options, and docs/data.md lists them:

  cub_release_split          utils/CUB_dataset.py (split flags by position)
  caltech_release_test_positions   utils/caltech101_dataset.py (test indices)
  caltech_release_vertices   utils/caltech101_dataset.py (contour offset)
  fill_polygon_opencv        cv2.fillPoly, as the Caltech masks are filled
  fill_rectangles_inclusive  cv2.rectangle(thickness=-1), Dogs and ImageNet
  imagenet_release_box_mask  test_rationale_vlm/clip_zs_flcp_in.py
  imagefolder_first          test_rationale_vlm/clip_*_in.py (5 batches)

OpenCV itself is not a dependency: the rasterisation rules were checked
against it once, offline (see tests/data/test_data_release.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def imagefolder_order(paths: Sequence[str]) -> list[str]:
  """`class/file` paths in torchvision ImageFolder's order: class folders
  sorted, then file names sorted within each folder."""
  return sorted(paths, key=lambda p: tuple(p.split("/")))


def imagefolder_first(labels, ids, count: int, groups=None) -> np.ndarray:
  """Positions of the first `count` examples in ImageFolder order.

  The release's ImageNet rationale scripts (test_rationale_vlm/
  clip_zs_flcp_in.py lines 54-56, clip_lp_ft_in.py lines 53-55) stop after
  5 batches of a ``DataLoader(shuffle=False)`` over ``ImageFolder(val/)``:
  the examples sorted by class folder (the label, in sorted-wnid order)
  and then by file name (the id's last '/'-part), so the first 320 images
  of 64-image batches are those of the first few classes.

  Args:
    labels: [N] int labels, in the source's order.
    ids: [N] example ids (their last '/'-separated part is the file name).
    count: how many examples per group (the release: batches x batch size).
    groups: optional [N] group keys, each group cut on its own (ImageNet-C:
      the release runs one corruption and severity at a time).

  Returns:
    [M] int64 positions into the source, by group and then ImageFolder order.
  """
  labels = np.asarray(labels).reshape(-1)
  names = [str(i).rsplit("/", 1)[-1] for i in np.asarray(ids).reshape(-1)]
  if len(names) != len(labels):
    raise ValueError(f"{len(labels)} labels for {len(names)} ids.")
  if count < 1:
    raise ValueError(f"count={count}: need at least one example.")
  keys = [""] * len(names) if groups is None else [str(g) for g in groups]
  order = sorted(
    range(len(names)), key=lambda i: (keys[i], labels[i], names[i])
  )
  taken: dict[str, int] = {}
  out = []
  for i in order:
    if taken.get(keys[i], 0) < count:
      taken[keys[i]] = taken.get(keys[i], 0) + 1
      out.append(i)
  return np.asarray(out, np.int64)


def cub_release_split(
  paths: Sequence[str], flags: Sequence[bool]
) -> dict[str, bool]:
  """{path: is_train} as utils/CUB_dataset.py builds it.

  The release reads the second column of `train_test_split.txt` line by
  line and applies the flags by position to ImageFolder's sorted file list;
  it never reads `images.txt`, whose order (CUB's image ids) is not the
  sorted order, so its "test" images are not the official test split.

  Args:
    paths: every `class/file.jpg` of the dataset (any order).
    flags: is_train per line of `train_test_split.txt`, in file order.
  """
  ordered = imagefolder_order(paths)
  if len(ordered) != len(flags):
    raise ValueError(
      f"train_test_split.txt has {len(flags)} lines for {len(ordered)} "
      "images: the release's positional split needs one line per image."
    )
  return dict(zip(ordered, (bool(f) for f in flags)))


def caltech_release_test_positions(n: int, test_fraction: float) -> list[int]:
  """Positions (into the annotated images in ImageFolder order) that
  utils/caltech101_dataset.py `get_CT101_train_val` makes the test set.

  step = n // int(n * test_fraction); the release takes positions
  i + 1 for i in range(0, n, step): 1, 6, 11, ... for 8,677 images and 0.2
  (1,736 test images). A last position equal to n (an IndexError in the
  release) is dropped.
  """
  sample = int(n * test_fraction)
  if sample < 1:
    raise ValueError(
      f"test_fraction={test_fraction} of {n} images selects none."
    )
  step = n // sample
  return [i + 1 for i in range(0, n, step) if i + 1 < n]


def caltech_release_vertices(box_coord, obj_contour) -> np.ndarray:
  """[K, 2] int64 (x, y) polygon vertices as utils/caltech101_dataset.py
  computes them: the contour truncated to integers plus the box corner
  (x1, y1) as stored (1-based, without the -1 that makes it 0-based), so the
  release's masks sit one pixel right of and below the annotation."""
  box = np.asarray(box_coord, np.float64).reshape(-1)
  contour = np.asarray(obj_contour, np.float64).reshape(2, -1)
  corner = np.array([box[2], box[0]]).astype(np.int32)
  return (contour.astype(np.int32).T + corner).astype(np.int64)


def _line_pixels(x0, y0, x1, y1) -> tuple[np.ndarray, np.ndarray]:
  """8-connected Bresenham pixels of one segment, as OpenCV draws it
  (traversed left to right; error term starts at major - 2 * minor)."""
  if x0 > x1:
    x0, y0, x1, y1 = x1, y1, x0, y0
  dx, dy = x1 - x0, abs(y1 - y0)
  sy = -1 if y1 < y0 else 1
  major, minor = max(dx, dy), min(dx, dy)
  i = np.arange(major + 1)
  k = (2 * minor * i + major - 1) // (2 * major) if major else i
  if dx >= dy:
    return x0 + i, y0 + sy * k
  return x0 + k, y0 + sy * i


def fill_polygon_opencv(height: int, width: int, vertices) -> np.ndarray:
  """[H, W] uint8: cv2.fillPoly(mask, [vertices], 1) for integer vertices.

  OpenCV's rule: on every row y, each non-horizontal edge with
  y_low <= y < y_high crosses at x = x0 + (y - y0) (x1 - x0) / (y1 - y0);
  the sorted crossings pair up (even-odd) and pixels ceil(left) ..
  floor(right) are filled; every edge is also drawn as an 8-connected
  Bresenham line. Identical to OpenCV 5.0 on random simple and
  self-intersecting polygons inside the image; OpenCV clips edges that leave
  the image before drawing them, which can move pixels along the border.
  """
  v = np.asarray(vertices, np.int64).reshape(-1, 2)
  mask = np.zeros((height, width), np.uint8)
  a, b = v, np.roll(v, -1, axis=0)
  slanted = a[:, 1] != b[:, 1]
  lo = np.where((a[:, 1] < b[:, 1])[:, None], a, b)[slanted]
  hi = np.where((a[:, 1] < b[:, 1])[:, None], b, a)[slanted]
  for y in range(max(int(v[:, 1].min()), 0), min(int(v[:, 1].max()), height)):
    on = (lo[:, 1] <= y) & (y < hi[:, 1])
    num = (y - lo[on, 1]) * (hi[on, 0] - lo[on, 0])
    den = hi[on, 1] - lo[on, 1]
    order = np.argsort(lo[on, 0] + num / den, kind="stable")
    num, den, x0 = num[order], den[order], lo[on, 0][order]
    left = x0[0::2] - (-num[0::2] // den[0::2])  # ceil, in integers
    right = x0[1::2] + num[1::2] // den[1::2]  # floor
    for c0, c1 in zip(np.maximum(left, 0), np.minimum(right, width - 1)):
      if c0 <= c1:
        mask[y, c0 : c1 + 1] = 1
  for (x0, y0), (x1, y1) in zip(a.tolist(), b.tolist()):
    xs, ys = _line_pixels(x0, y0, x1, y1)
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    mask[ys[inside], xs[inside]] = 1
  return mask


def fill_rectangles_inclusive(height: int, width: int, corners) -> np.ndarray:
  """[H, W] uint8 with 1 on every rectangle, as cv2.rectangle(mask, (x0, y0),
  (x1, y1), 1, thickness=-1) fills it: integer corners, both included, any
  corner order, clipped to the image.

  Args:
    corners: [N, 4] integers (x0, y0, x1, y1).
  """
  mask = np.zeros((height, width), np.uint8)
  for x0, y0, x1, y1 in np.asarray(corners, np.int64).reshape(-1, 4).tolist():
    c0, c1 = max(min(x0, x1), 0), min(max(x0, x1), width - 1)
    r0, r1 = max(min(y0, y1), 0), min(max(y0, y1), height - 1)
    if c1 >= c0 and r1 >= r0:
      mask[r0 : r1 + 1, c0 : c1 + 1] = 1
  return mask


def imagenet_release_box_mask(
  boxes, height: int, width: int, resize: int = 256, crop: int = 224
) -> np.ndarray:
  """[crop, crop] uint8: test_rationale_vlm/clip_zs_flcp_in.py's box mask.

  The release draws every box straight into the cropped frame: with
  ratio = short side / resize (the height when H < W, else the width), the
  resized size is (H / ratio, W / ratio) in floats (not torchvision's
  int(resize * long / short)), the crop offsets are
  ((H / ratio - crop) / 2, (W / ratio - crop) / 2) unrounded (not
  round(...)), each corner is int(x / ratio - left), int(y / ratio - top)
  (truncated toward zero) and the rectangle is filled with both corners
  included (cv2.rectangle). ImageNet-C's masks are made the same way from
  the original validation image's size.

  Args:
    boxes: [N, 4] (x_min, y_min, x_max, y_max) in original pixels.
    height, width: the original image's size.
  """
  ratio = height / resize if height < width else width / resize
  top = (height / ratio - crop) / 2
  left = (width / ratio - crop) / 2
  corners = [
    (
      int(x0 / ratio - left),
      int(y0 / ratio - top),
      int(x1 / ratio - left),
      int(y1 / ratio - top),
    )
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4).tolist()
  ]
  return fill_rectangles_inclusive(crop, crop, corners)
