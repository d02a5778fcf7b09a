"""synthetic_rationality: shapes with exact masks on class-correlated backgrounds.

Generated, no download; the default config (64 px, 2,000 train / 500 test)
builds in a few seconds. Each image holds one object whose *shape* is the
class (circle, square, triangle, ...) drawn in a random saturated colour, at a
random position and size, on a textured background (stripes, checks, dots...).

The shortcut knob: background type t is tied to class k (t = k) with
probability `shortcut_prob` in `train` (otherwise one of the other types,
uniformly), and independent of the class in `test` (`test_shortcut_prob=None`,
uniform over all types; set a number to correlate test too). A model can
therefore reach high train accuracy from the background alone; on `test` only
the object (inside the mask) predicts the label, so right-for-the-right-reason
models keep their accuracy and their explanations land inside the mask.

Features: image [S, S, 3] uint8 (lossless PNG), mask [S, S] uint8 (exactly the
object's pixels: image pixels differ from the background only there), label,
id (`<split>_<index>`), boxes ([1, 4], the mask's bounding box), caption
("a photo of a {class}"), background (texture name), shortcut (bool: the
background is the class's own). Examples depend only on (seed, split, index).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image
from PIL import ImageDraw
import tensorflow_datasets as tfds

from rationality_jax.data.builders import base
from rationality_jax.data.builders import common

SHAPES = (
  "circle",
  "square",
  "triangle",
  "cross",
  "ring",
  "diamond",
  "star",
  "hexagon",
)
BACKGROUNDS = (
  "horizontal stripes",
  "vertical stripes",
  "checkerboard",
  "dots",
  "diagonal stripes",
  "gradient",
  "grid",
  "noise",
)
OBJECT_COLOURS = np.array(
  [
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
  ],
  np.uint8,
)
SPLIT_CODES = {"train": 0, "test": 1}


@dataclasses.dataclass(eq=False)
class SyntheticConfig(base.MaskedBuilderConfig):
  num_classes: int = 4
  image_size: int = 64
  train_size: int = 2000
  test_size: int = 500
  shortcut_prob: float = 0.9
  test_shortcut_prob: float | None = None
  seed: int = 0


def _background(rng, kind: int, size: int) -> np.ndarray:
  c0 = rng.integers(40, 120, 3)
  c1 = rng.integers(120, 215, 3)
  yy, xx = np.mgrid[:size, :size]
  period = max(4, size // int(rng.integers(4, 9)))
  name = BACKGROUNDS[kind]
  if name == "horizontal stripes":
    sel = (yy // (period // 2)) % 2
  elif name == "vertical stripes":
    sel = (xx // (period // 2)) % 2
  elif name == "checkerboard":
    sel = ((yy // period) + (xx // period)) % 2
  elif name == "dots":
    sel = (
      ((yy % period) - period / 2) ** 2 + ((xx % period) - period / 2) ** 2
    ) < (period / 4) ** 2
  elif name == "diagonal stripes":
    sel = ((yy + xx) // (period // 2)) % 2
  elif name == "gradient":
    t = (xx / max(size - 1, 1))[..., None]
    return np.round(c0 * (1 - t) + c1 * t).astype(np.uint8)
  elif name == "grid":
    sel = (yy % period == 0) | (xx % period == 0)
  else:
    sel = rng.random((size, size)) < 0.5
  return np.where(np.asarray(sel, bool)[..., None], c1, c0).astype(np.uint8)


def _shape_mask(rng, shape: int, size: int) -> np.ndarray:
  r = rng.uniform(0.15, 0.3) * size
  cx, cy = rng.uniform(r, size - r, 2)
  im = Image.new("L", (size, size), 0)
  draw = ImageDraw.Draw(im)
  name = SHAPES[shape]
  box = [cx - r, cy - r, cx + r, cy + r]
  if name == "circle":
    draw.ellipse(box, fill=1)
  elif name == "square":
    draw.rectangle(
      [cx - 0.8 * r, cy - 0.8 * r, cx + 0.8 * r, cy + 0.8 * r], fill=1
    )
  elif name == "triangle":
    draw.polygon(
      [(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)], fill=1
    )
  elif name == "cross":
    w = 0.3 * r
    draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=1)
    draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=1)
  elif name == "ring":
    draw.ellipse(box, fill=1)
    draw.ellipse(
      [cx - 0.55 * r, cy - 0.55 * r, cx + 0.55 * r, cy + 0.55 * r], fill=0
    )
  elif name == "diamond":
    draw.polygon(
      [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=1
    )
  elif name == "star":
    angles = np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    draw.polygon(
      [(cx + q * np.cos(a), cy - q * np.sin(a)) for a, q in zip(angles, radii)],
      fill=1,
    )
  else:
    angles = np.arange(6) * np.pi / 3
    draw.polygon(
      [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles], fill=1
    )
  return np.asarray(im, np.uint8)


def make_example(config: SyntheticConfig, split: str, index: int) -> dict:
  """The raw example (numpy, before encoding) for (config.seed, split, index)."""
  rng = np.random.default_rng([config.seed, SPLIT_CODES[split], index])
  k = config.num_classes
  label = int(rng.integers(k))
  prob = config.shortcut_prob if split == "train" else config.test_shortcut_prob
  if prob is None:
    background = int(rng.integers(k))
  elif rng.random() < prob:
    background = label
  else:
    background = int((label + 1 + rng.integers(k - 1)) % k)
  size = config.image_size
  image = _background(rng, background, size)
  mask = _shape_mask(rng, label, size)
  colour = OBJECT_COLOURS[rng.integers(len(OBJECT_COLOURS))]
  image = np.where(mask[..., None] == 1, colour, image).astype(np.uint8)
  return {
    "image": image,
    "mask": mask,
    "label": label,
    "id": f"{split}_{index:07d}",
    "boxes": common.mask_box(mask),
    "caption": f"a photo of a {SHAPES[label]}",
    "background": BACKGROUNDS[background],
    "shortcut": background == label,
  }


class SyntheticRationality(base.MaskedImageBuilder):
  """Shapes with exact masks; background type correlated with class in train."""

  name = "synthetic_rationality"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  BUILDER_CONFIG_CLASS = SyntheticConfig
  BUILDER_CONFIGS = [SyntheticConfig(name="default")]
  DESCRIPTION = __doc__

  REPORT_KEY = "synthetic"
  # The study's synthetic benchmark (generated in <workdir>/data): 4 shapes,
  # 64 px, backgrounds tied to the class in 90% of train images,
  # independent in test.
  STUDY = base.StudyDataset(
    builder_kwargs=dict(
      num_classes=4,
      image_size=64,
      train_size=2000,
      test_size=500,
      shortcut_prob=0.9,
    )
  )

  def _info_features(self):
    k = self.builder_config.num_classes
    if not 2 <= k <= len(SHAPES):
      raise ValueError(f"num_classes must be in [2, {len(SHAPES)}], got {k}.")
    return common.features(
      SHAPES[:k],
      caption=tfds.features.Text(),
      background=tfds.features.ClassLabel(names=list(BACKGROUNDS[:k])),
      shortcut=tfds.features.Scalar(dtype=np.bool_),
    )

  def _make_splits(self, dl_manager):
    c = self.builder_config
    self._expected = {"train": c.train_size, "test": c.test_size}
    return {
      "train": self._generate_examples("train", c.train_size),
      "test": self._generate_examples("test", c.test_size),
    }

  def _generate_examples(self, split, n):
    for i in range(n):
      ex = make_example(self.builder_config, split, i)
      ex["image"] = common.encode_png(ex["image"])
      ex["mask"] = common.mask_feature(ex["mask"])
      yield ex["id"], ex


# The dataset this module registers (`rationality_jax.data.DATASETS`).
DATASET = SyntheticRationality
