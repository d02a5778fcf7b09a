"""caltech101_masks: Caltech-101 with object masks from the contour annotations.

manual_dir: either `caltech-101.zip` (the CaltechDATA release, which wraps
`caltech-101/101_ObjectCategories.tar.gz` and `caltech-101/Annotations.tar`)
or those two archives directly.

Classes are the 101 category folders of `101_ObjectCategories` (sorted as
Python sorts strings, so upper case first; BACKGROUND_Google is left out).
Image `<class>/image_NNNN.jpg` is annotated by
`Annotations/<folder>/annotation_NNNN.mat`, where the folder is the class
name except Faces -> Faces_2, Faces_easy -> Faces_3,
airplanes -> Airplanes_Side_2, Motorbikes -> Motorbikes_16 (the study's and
torchvision's remap). Only annotated images are kept (8,677 in the release).

Mask: `box_coord` is [y1, y2, x1, x2] (1-based, inclusive) and `obj_contour`
is [2, K] (x; y) relative to the box corner, so the polygon's vertices are
(x + x1 - 1, y + y1 - 1) in 0-based pixel coordinates; it is filled with PIL
(outline included). `boxes` holds the box as (x1 - 1, y1 - 1, x2, y2).

Splits (config `split_scheme`): 'study' - over the annotated images in order
(classes sorted, then image number), every 5th (positions 0, 5, 10, ...) is
`test` (1,736) and the rest `train` (6,941); 'seeded' - within each class a
random `test_fraction` (rounded) chosen with `split_seed` is `test`.
"""

from __future__ import annotations

import dataclasses
import io
import re

import numpy as np
from PIL import Image
from PIL import ImageDraw
import scipy.io
import tensorflow_datasets as tfds

from rationality_jax.data.builders import common

ANNOTATION_FOLDERS = {
  "Faces": "Faces_2",
  "Faces_easy": "Faces_3",
  "airplanes": "Airplanes_Side_2",
  "Motorbikes": "Motorbikes_16",
}
BACKGROUND = "BACKGROUND_Google"
_SOURCE = (
  "https://data.caltech.edu/records/mzrjq-6wc02 "
  "(caltech-101.zip, which holds both archives)"
)
MANUAL_FILES = {
  "images": common.ManualFile(
    ("caltech-101.zip", "101_ObjectCategories.tar.gz"), _SOURCE
  ),
  "annotations": common.ManualFile(
    ("caltech-101.zip", "Annotations.tar"), _SOURCE
  ),
}
_IMAGE = re.compile(r"(?:^|/)101_ObjectCategories/([^/]+)/image_(\d+)\.jpg$")
_ANNOTATION = re.compile(r"(?:^|/)Annotations/([^/]+)/annotation_(\d+)\.mat$")


@dataclasses.dataclass(eq=False)
class Caltech101Config(common.MaskedBuilderConfig):
  split_scheme: str = "study"
  split_seed: int = 0
  test_fraction: float = 0.2


def contour_mask(height: int, width: int, box_coord, obj_contour) -> np.ndarray:
  """[H, W] uint8 polygon mask from a Caltech-101 annotation (see module doc)."""
  box = np.asarray(box_coord, np.float64).reshape(-1)
  contour = np.asarray(obj_contour, np.float64).reshape(2, -1)
  xs = contour[0] + box[2] - 1
  ys = contour[1] + box[0] - 1
  im = Image.new("L", (width, height), 0)
  ImageDraw.Draw(im).polygon(
    list(zip(xs.tolist(), ys.tolist())), fill=1, outline=1
  )
  return np.asarray(im, np.uint8)


def study_split(items: list) -> dict:
  """items in order -> {item: 'test' | 'train'}; every 5th (0, 5, ...) is test."""
  return {
    item: ("test" if i % 5 == 0 else "train") for i, item in enumerate(items)
  }


def seeded_split(items: list, seed: int, test_fraction: float) -> dict:
  by_class: dict = {}
  for item in items:
    by_class.setdefault(item[0], []).append(item)
  out = {}
  for c, members in sorted(by_class.items()):
    rng = np.random.default_rng([seed, sorted(by_class).index(c)])
    test = set(
      rng.permutation(len(members))[
        : round(len(members) * test_fraction)
      ].tolist()
    )
    out.update(
      {m: ("test" if j in test else "train") for j, m in enumerate(members)}
    )
  return out


class Caltech101Masks(common.MaskedImageBuilder):
  """Caltech-101 annotated images with filled contour masks."""

  name = "caltech101_masks"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  BUILDER_CONFIG_CLASS = Caltech101Config
  BUILDER_CONFIGS = [Caltech101Config(name="default")]
  MANUAL_FILES = MANUAL_FILES
  MANUAL_DOWNLOAD_INSTRUCTIONS = common.manual_instructions(MANUAL_FILES)
  DESCRIPTION = __doc__
  HOMEPAGE = "https://data.caltech.edu/records/mzrjq-6wc02"

  def _info_features(self):
    return common.features(None)

  def _archive(self, path, inner):
    """A readable file object for `inner` (directly, or inside caltech-101.zip)."""
    if path.endswith(".zip"):
      return common.open_in_zip(path, inner)
    return path

  def _split_generators(self, dl_manager):
    files = self._manual(dl_manager)
    annotations = {}
    for name, data in common.iter_tar(
      self._archive(files["annotations"], "Annotations.tar"), _ANNOTATION.search
    ):
      folder, number = _ANNOTATION.search(name).groups()
      annotations[(folder, int(number))] = data
    images = []
    for name, _ in common.iter_tar(
      self._archive(files["images"], "101_ObjectCategories.tar.gz"),
      lambda n: _IMAGE.search(n) is not None,
    ):
      cls, number = _IMAGE.search(name).groups()
      if (
        cls != BACKGROUND
        and (ANNOTATION_FOLDERS.get(cls, cls), int(number)) in annotations
      ):
        images.append((cls, int(number)))
    classes = sorted({c for c, _ in images})
    images.sort(key=lambda item: (classes.index(item[0]), item[1]))
    self.info.features["label"].names = classes
    c = self.builder_config
    if c.split_scheme == "study":
      assignment = study_split(images)
    elif c.split_scheme == "seeded":
      assignment = seeded_split(images, c.split_seed, c.test_fraction)
    else:
      raise ValueError(
        f"split_scheme must be 'study' or 'seeded', got {c.split_scheme!r}."
      )
    return {
      s: self._generate_examples(files, annotations, classes, assignment, s)
      for s in ("train", "test")
    }

  def _generate_examples(self, files, annotations, classes, assignment, split):
    bad = self._bad_images(split)

    def wanted(name):
      m = _IMAGE.search(name)
      return (
        m is not None and assignment.get((m.group(1), int(m.group(2)))) == split
      )

    for name, data in common.iter_tar(
      self._archive(files["images"], "101_ObjectCategories.tar.gz"), wanted
    ):
      cls, number = _IMAGE.search(name).groups()
      number = int(number)
      try:
        image, h, w = common.read_image(data, name)
      except Exception as e:
        bad.handle(name, e)
        continue
      mat = scipy.io.loadmat(
        io.BytesIO(annotations[(ANNOTATION_FOLDERS.get(cls, cls), number)])
      )
      box = np.asarray(mat["box_coord"], np.float64).reshape(-1)
      key = f"{cls}/image_{number:04d}"
      yield (
        key,
        {
          "image": image,
          "mask": common.mask_feature(
            contour_mask(h, w, box, mat["obj_contour"])
          ),
          "label": classes.index(cls),
          "id": key,
          "boxes": np.array(
            [[box[2] - 1, box[0] - 1, box[3], box[1]]], np.float32
          ),
        },
      )
