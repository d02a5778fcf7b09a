r"""Thumbnails of the samples report.html shows, kept while evaluating.

  plan = gallery.Plan(images=50, num_examples=n, threshold=0.5, spec=spec)
  keeper = plan.keeper()                 # one per process of an evaluation
  keeper.take(ids, index, local, host, where, heatmaps)   # after each batch
  keeper.save(path)                      # with each records chunk
  keeper.resume(paths)                   # after a kill: what is kept so far
  for chunk in gallery.chunks(run_dir): ...   # the page's writer

Which samples (``evaluate.gallery_images`` = N): N samples spread evenly
over the split (positions ``floor(k * n / N)``: the same under every method
evaluated on the split, so a row of the page shows every method's heatmap
of one image, and every class of a split sorted by class), and any sample
whose cell (RR, RW, WR, WW or undefined at ``evaluate.threshold``) has had
fewer than N samples kept before it in this process's order: the first N of
each cell, rare cells included. N = -1 keeps every sample, 0 none. Which
samples move between cells from one method to another is known only once
both are evaluated: report.md and the page count every such transition from
the records; the page shows a transition sample's thumbnail where a rule
above kept it (every one with -1).

Cost: a kept sample is 20 KB uncompressed (T = 64: image, mask, heatmap),
16 KB at most in the compressed chunk (noise images and maps), 2 KB on the
demo's shapes; the default keeps at most 5 N per run (4 MB at most for
N = 50), -1 up to 0.8 GB per run of 50,000 samples. The records stay the
truth: a page is written from them alone.

Layout: ``records/p<i>-of-<n>/gallery_NNNNNN.npz`` beside the records chunk
of the same number: ids [k], index [k] (the split position), cell [k] int8
(`CELLS`, at the evaluation's threshold), image [k, T, T, 3] uint8 (display
colours: the normalization undone), mask [k, T, T] bool, heatmap [k, T, T]
uint8 (the heatmap's [0, 1] x 255).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
import dataclasses
import glob
import os

import jax
import numpy as np
from PIL import Image

from rationality_jax import data
from rationality_jax import files

SIZE = 64  # T: thumbnails are T x T pixels.
KIND = "gallery"  # records/p*/gallery_NNNNNN.npz
CELLS = ("RR", "RW", "WR", "WW", "undefined")
UNDEFINED = 4


def cell_codes(correct, valid) -> np.ndarray:
  """[N] int8 index into `CELLS` from `correct` [N] bool and `valid` [N]
  (1 valid, 0 invalid, NaN undefined: `metrics.Accumulator.evidence`)."""
  correct = np.asarray(correct, bool)
  valid = np.asarray(valid, np.float64)
  codes = np.where(correct, 0, 2) + np.where(valid == 1, 0, 1)
  return np.where(np.isnan(valid), UNDEFINED, codes).astype(np.int8)


@dataclasses.dataclass(frozen=True)
class Plan:
  """What an evaluation keeps thumbnails of (module docstring).

  images: N (-1 every sample, 0 none); num_examples: the split's size;
  threshold: the validity threshold of the cells; spec: the preprocessing
  spec the images went through (its ``normalize`` is undone for display).
  """

  images: int
  num_examples: int
  threshold: float
  spec: str

  def keeper(self) -> Keeper | None:
    return Keeper(self) if self.images else None


class Keeper:
  """One process's thumbnails of one evaluation, chunk by chunk."""

  def __init__(self, plan: Plan):
    self.plan = plan
    n, k = plan.num_examples, plan.images
    self.spread = (
      set() if k < 0 else {int(i) * n // k for i in range(min(k, n))}
    )
    self.counts = np.zeros(len(CELLS), np.int64)
    self.normalization = normalization(plan.spec)
    self.pending: list[dict[str, np.ndarray]] = []

  def _cells(self, host: dict) -> np.ndarray:
    """The record-time cell of a batch's samples (the default policies)."""
    rma = np.asarray(host["rma"], np.float32)
    defined = np.isfinite(rma)
    for flag in ("logits_finite", "heatmap_finite"):
      defined &= np.asarray(host.get(flag, True), bool)
    defined &= np.asarray(host.get("mask_area", 1)) > 0
    valid = np.where(defined, rma >= self.plan.threshold, np.nan)
    return cell_codes(host["correct"], valid)

  def select(self, index, host: dict, where) -> tuple[np.ndarray, np.ndarray]:
    """(rows of the batch to keep, every row's cell), in the batch's order."""
    cells = self._cells(host)
    rows = []
    for j in np.flatnonzero(np.asarray(where, bool)):
      cell = cells[j]
      if (
        self.plan.images < 0
        or int(index[j]) in self.spread
        or self.counts[cell] < self.plan.images
      ):
        rows.append(j)
        self.counts[cell] += 1
    return np.asarray(rows, np.int64), cells

  def take(self, ids, index, local: dict, host: dict, where, heatmaps) -> int:
    """Thumbnails of the batch's samples to keep (`select`); `heatmaps` [B,
    S, S] may be on the devices (only the kept rows are fetched). Returns
    how many were kept."""
    index = np.asarray(index)
    rows, cells = self.select(index, host, where)
    if not rows.size:
      return 0
    maps = np.asarray(jax.device_get(heatmaps[rows]), np.float32)
    images = display(np.asarray(local["image"])[rows], self.normalization)
    self.pending.append(
      {
        "ids": np.asarray(ids)[rows].astype(str),
        "index": index[rows].astype(np.int64),
        "cell": cells[rows],
        "image": np.stack([_resize(i, SIZE) for i in images]),
        "mask": np.stack(
          [_resize(m > 0, SIZE) for m in np.asarray(local["mask"])[rows]]
        ),
        "heatmap": np.stack([_resize(h, SIZE) for h in maps]),
      }
    )
    return int(rows.size)

  def save(self, path: str) -> None:
    """The pending thumbnails as one compressed chunk (nothing if none)."""
    if not self.pending:
      return
    arrays = {
      k: np.concatenate([p[k] for p in self.pending]) for k in self.pending[0]
    }
    with files.atomic(path) as tmp:
      np.savez_compressed(tmp, **arrays)
    self.pending = []

  def resume(self, paths: Sequence[str]) -> None:
    """Counts what the chunks already written (before the marker) kept."""
    self.counts[:] = 0
    for path in paths:
      with np.load(path) as chunk:
        self.counts += np.bincount(chunk["cell"], minlength=len(CELLS))
    self.pending = []


def normalization(spec: str) -> tuple[np.ndarray, np.ndarray] | None:
  """(mean, std) of a spec's ``normalize`` op (its preset or its own), or None."""
  for part in spec.split("|"):
    try:
      call = ast.parse(part.strip(), mode="eval").body
    except SyntaxError:
      continue
    name = getattr(getattr(call, "func", None), "id", "")
    if name != "normalize":
      continue
    args = dict(zip(("preset", "mean", "std"), call.args))
    args.update({k.arg: k.value for k in call.keywords})
    value = {k: ast.literal_eval(v) for k, v in args.items()}
    if value.get("mean") is None or value.get("std") is None:
      mean, std = data.preprocess.NORMALIZATION[value.get("preset", "clip")]
    else:
      mean, std = value["mean"], value["std"]
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)
  return None


def display(images: np.ndarray, norm) -> np.ndarray:
  """[k, S, S, 3] model inputs -> uint8 display colours."""
  if images.dtype == np.uint8:
    return images
  images = images.astype(np.float32)
  if norm is not None:
    images = images * norm[1] + norm[0]
  else:  # unknown pixel statistics: stretch each image to [0, 1]
    low = images.min(axis=(1, 2, 3), keepdims=True)
    high = images.max(axis=(1, 2, 3), keepdims=True)
    images = (images - low) / np.maximum(high - low, 1e-12)
  return np.clip(np.round(images * 255), 0, 255).astype(np.uint8)


def _resize(array: np.ndarray, size: int) -> np.ndarray:
  """An image (uint8 RGB), mask (bool) or heatmap (float in [0, 1]) at
  size x size (antialiased; a mask stays binary, a heatmap becomes uint8)."""
  if array.dtype == bool:
    image = Image.fromarray(array.astype(np.uint8) * 255)
    return np.asarray(image.resize((size, size), Image.BILINEAR)) >= 128
  if array.dtype == np.uint8:
    return np.asarray(
      Image.fromarray(array).resize((size, size), Image.BILINEAR)
    )
  image = Image.fromarray(np.nan_to_num(array.astype(np.float32)), mode="F")
  value = np.asarray(image.resize((size, size), Image.BILINEAR))
  return np.clip(np.round(value * 255), 0, 255).astype(np.uint8)


def chunks(run_dir: str) -> Iterator[dict[str, np.ndarray]]:
  """Every gallery chunk of a run (every process), one at a time."""
  pattern = os.path.join(run_dir, "records", "*", f"{KIND}_*.npz")
  for path in sorted(glob.glob(pattern)):
    with np.load(path) as chunk:
      yield {k: chunk[k] for k in chunk.files}


# ------------------------------------------------------------- drawing ----


def _jet() -> np.ndarray:
  """[256, 3] float the 'jet' colour map (the figures' heatmap colours)."""
  import matplotlib

  return matplotlib.colormaps["jet"](np.linspace(0, 1, 256))[:, :3]


_JET: list[np.ndarray] = []


def outline(mask: np.ndarray) -> np.ndarray:
  """[T, T] bool: the mask's pixels with a 4-neighbour outside it."""
  mask = np.asarray(mask, bool)
  padded = np.pad(mask, 1, mode="constant", constant_values=False)
  inner = (
    padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
  )
  return mask & ~inner


def draw(image: np.ndarray, mask: np.ndarray, heatmap=None) -> np.ndarray:
  """[T, T, 3] uint8: the image (half the heatmap in 'jet' over it, when
  given) with the mask's outline in white."""
  out = image.astype(np.float32)
  if heatmap is not None:
    if not _JET:
      _JET.append(_jet())
    out = 0.5 * out + 0.5 * 255 * _JET[0][np.asarray(heatmap, np.uint8)]
  out[outline(mask)] = 255
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def write_image(path: str, pixels: np.ndarray) -> None:
  """A thumbnail file (the format from the extension), atomically."""
  with files.atomic(path) as tmp:
    Image.fromarray(pixels).save(tmp)
