"""caltech101_masks: Caltech-101 with object masks from the contour annotations.

manual_dir: either `caltech-101.zip` (the CaltechDATA release, which wraps
`caltech-101/101_ObjectCategories.tar.gz` and `caltech-101/Annotations.tar`)
or those two archives directly (`.tar`, `.tar.gz` or `.tgz` each, also
inside the zip).

Classes are the 101 category folders of `101_ObjectCategories` (sorted as
Python sorts strings, so upper case first); BACKGROUND_Google is left out,
unless `background_class=True`: then it is class 0 (it sorts first), without
examples, and the others move up by one - the release's 102-class label
space (utils/caltech101_dataset.py runs ImageFolder over all 102 folders,
and its zero-shot head includes "background google").
Image `<class>/image_NNNN.jpg` is annotated by
`Annotations/<folder>/annotation_NNNN.mat`, where the folder is the class
name except Faces -> Faces_2, Faces_easy -> Faces_3,
airplanes -> Airplanes_Side_2, Motorbikes -> Motorbikes_16 (the study's and
torchvision's remap). The dataset is the annotated images (all 8,677
non-background images in the release); an image without annotation, or an
annotation without image, fails the build (on_missing='skip' leaves it out,
counted in `Source.skipped`); so does an annotation that cannot be read, or
whose box or contour has a coordinate that is not a number, or whose box is
inverted (y2 < y1 or x2 < x1), naming the .mat and the box
(on_bad_annotation='skip' leaves its image out, counted by reason).

Mask (config `contour`): 'ours' - `box_coord` is [y1, y2, x1, x2] (1-based,
inclusive) and `obj_contour` is [2, K] (x; y) relative to the box corner, so
the polygon's vertices are (x + x1 - 1, y + y1 - 1) in 0-based pixel
coordinates, filled with PIL (outline included). 'release' - as
utils/caltech101_dataset.py: vertices (int(x) + x1, int(y) + y1) (truncated,
one pixel right of and below ours), filled by OpenCV's fillPoly rule
(`release.fill_polygon_opencv`). `boxes` holds the box as
(x1 - 1, y1 - 1, x2, y2) either way.

Splits (config `split_scheme`), over the annotated images in order (classes
sorted, then image number):
  'study'   - every 5th from the first (positions 0, 5, 10, ...) is `test`
              (1,736) and the rest `train` (6,941): the paper's words;
  'release' - what the release's code did (get_CT101_train_val):
              positions 1, 1 + step, ... with step = n // int(n *
              test_fraction) (5 for 8,677 and 0.2): also 1,736 test images,
              none of them in 'study''s test set;
  'seeded'  - within each class a random `test_fraction` (rounded) chosen
              with `split_seed` is `test`.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re

import numpy as np
from PIL import Image
from PIL import ImageDraw
import scipy.io
import tensorflow_datasets as tfds

from rationality_jax.data import release
from rationality_jax.data.builders import base
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
IMAGES_ARCHIVES = common.archive_names(
  "101_ObjectCategories", ".tar.gz", ".tgz", ".tar"
)
ANNOTATIONS_ARCHIVES = common.archive_names(
  "Annotations", ".tar", ".tar.gz", ".tgz"
)
MANUAL_FILES = {
  "images": common.ManualFile(("caltech-101.zip", *IMAGES_ARCHIVES), _SOURCE),
  "annotations": common.ManualFile(
    ("caltech-101.zip", *ANNOTATIONS_ARCHIVES), _SOURCE
  ),
}
_IMAGE = re.compile(r"(?:^|/)101_ObjectCategories/([^/]+)/image_(\d+)\.jpg$")
_ANNOTATION = re.compile(r"(?:^|/)Annotations/([^/]+)/annotation_(\d+)\.mat$")
SPLIT_SCHEMES = ("study", "release", "seeded")
CONTOURS = ("ours", "release")


@dataclasses.dataclass(eq=False)
class Caltech101Config(base.MaskedBuilderConfig):
  """`split_scheme` ('study', 'release', 'seeded'), `split_seed` and
  `test_fraction`; `contour` ('ours', 'release'); `background_class`."""

  split_scheme: str = "study"
  split_seed: int = 0
  test_fraction: float = 0.2
  contour: str = "ours"
  background_class: bool = False


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


def read_annotation(mat_bytes: bytes):
  """({'box_coord': [4], 'obj_contour': [2, K]}, None) of an annotation
  .mat, or (None, (reason, problem)) when it cannot be read, a coordinate
  is not a number, or the box is inverted (y2 < y1 or x2 < x1)."""
  try:
    mat = scipy.io.loadmat(io.BytesIO(mat_bytes))
    box = np.asarray(mat["box_coord"], np.float64).reshape(4)
    contour = np.asarray(mat["obj_contour"], np.float64).reshape(2, -1)
  except (KeyError, TypeError, ValueError, OSError) as error:
    message = " ".join(str(error).split()) or type(error).__name__
    return None, (common.UNREADABLE_ANNOTATION, f"cannot be read ({message})")
  if not np.isfinite(contour).all():
    return None, (
      common.NON_FINITE_BOX,
      "obj_contour has a coordinate that is not a number",
    )
  problem = common.box_problem([[box[2] - 1, box[0] - 1, box[3], box[1]]])
  if problem:
    reason, text = problem
    return None, (
      reason,
      f"box_coord [y1, y2, x1, x2] = {box.tolist()}: {text}",
    )
  return {"box_coord": box, "obj_contour": contour}, None


def study_split(items: list) -> dict:
  """items in order -> {item: 'test' | 'train'}; every 5th (0, 5, ...) is test."""
  return {
    item: ("test" if i % 5 == 0 else "train") for i, item in enumerate(items)
  }


def release_split(items: list, test_fraction: float) -> dict:
  """items in order -> {item: 'test' | 'train'} as the release's code split
  them (`release.caltech_release_test_positions`)."""
  test = set(release.caltech_release_test_positions(len(items), test_fraction))
  return {
    item: ("test" if i in test else "train") for i, item in enumerate(items)
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


class Caltech101Masks(base.MaskedImageBuilder):
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

  REPORT_KEY = "caltech101"
  STUDY = base.StudyDataset()
  # Resize(224) + CenterCrop(224) (PAPER.md, "Datasets and masks").
  STUDY_EVAL_SIZE = (224, 224)
  # utils/caltech101_dataset.py, utils/Stanford_Dogs_dataset.py: the 0/1
  # mask is a PIL image resized by the default (bilinear) Resize.
  RELEASE_MASK_RESIZE = "bilinear"

  @classmethod
  def prompt_names(cls, names=None, readable=False, rule="study"):
    """Study: the folder names lowercased ("Faces_easy" -> "faces_easy";
    `readable`: "faces easy"). Release (datasets/caltech_101/label_dict.json,
    made by utils/caltech101_dataset.py): '_' -> ' ', lowercased
    ("background google" too, with background_class=True)."""
    names = cls._label_names(names)
    if rule == "release":
      return [n.replace("_", " ").lower() for n in names]
    out = [n.lower() for n in names]
    return [n.replace("_", " ") for n in out] if readable else out

  def _info_features(self):
    return common.features(None)

  def _archive(self, path, inner_names):
    """A readable file object for the inner archive (directly, or inside
    caltech-101.zip)."""
    if path.endswith(".zip"):
      return common.open_in_zip(path, inner_names)
    return path

  def _make_splits(self, dl_manager):
    c = self.builder_config
    if c.split_scheme not in SPLIT_SCHEMES:
      raise ValueError(
        f"split_scheme must be one of {SPLIT_SCHEMES}, got {c.split_scheme!r}."
      )
    if c.contour not in CONTOURS:
      raise ValueError(f"contour must be one of {CONTOURS}, got {c.contour!r}.")
    files = self._manual(dl_manager)
    annotations = {}
    for name, data in common.iter_tar(
      self._archive(files["annotations"], ANNOTATIONS_ARCHIVES),
      _ANNOTATION.search,
      expect="Annotations/<folder>/annotation_NNNN.mat",
    ):
      folder, number = _ANNOTATION.search(name).groups()
      annotations[(folder, int(number))] = data
    found = set()
    for name in common.tar_names(
      self._archive(files["images"], IMAGES_ARCHIVES),
      lambda n: _IMAGE.search(n) is not None,
      expect="101_ObjectCategories/<class>/image_NNNN.jpg",
    ):
      cls, number = _IMAGE.search(name).groups()
      found.add((cls, int(number)))
    before = self._skips(base.BEFORE_SPLIT)

    def key(item):
      return ANNOTATION_FOLDERS.get(item[0], item[0]), item[1]

    candidates = {item for item in found if item[0] != BACKGROUND}
    unannotated = [item for item in candidates if key(item) not in annotations]
    before.missing(
      "annotation missing",
      [f"{cls}/image_{n:04d}" for cls, n in unannotated],
      "no Annotations/<folder>/annotation_NNNN.mat for these images",
    )
    images = sorted(candidates - set(unannotated))
    keys = {key(item) for item in images}
    before.missing(
      "image missing",
      [f"{f}/annotation_{n:04d}" for f, n in annotations if (f, n) not in keys],
      "no 101_ObjectCategories/<class>/image_NNNN.jpg for these annotations",
    )
    classes = sorted({cls for cls, _ in images})
    label_names = (
      sorted([*classes, BACKGROUND]) if c.background_class else classes
    )
    self.info.features["label"].names = label_names
    images.sort(key=lambda item: (classes.index(item[0]), item[1]))
    if c.split_scheme == "study":
      assignment = study_split(images)
    elif c.split_scheme == "release":
      assignment = release_split(images, c.test_fraction)
    else:
      assignment = seeded_split(images, c.split_seed, c.test_fraction)
    return {
      s: self._generate_examples(files, annotations, label_names, assignment, s)
      for s in ("train", "test")
    }

  def _mask(self, h, w, mat) -> np.ndarray:
    if self.builder_config.contour == "release":
      vertices = release.caltech_release_vertices(
        mat["box_coord"], mat["obj_contour"]
      )
      return release.fill_polygon_opencv(h, w, vertices)
    return contour_mask(h, w, mat["box_coord"], mat["obj_contour"])

  def _read_annotations(self, files, annotations, assignment, split, skips):
    """{item: annotation} of the split's images, bad annotations through
    `skips.bad_annotation` (their images are left out)."""
    mats = {}
    for cls, number in sorted(i for i, s in assignment.items() if s == split):
      folder = ANNOTATION_FOLDERS.get(cls, cls)
      mat, problem = read_annotation(annotations[(folder, number)])
      if problem:
        reason, text = problem
        skips.bad_annotation(
          reason,
          f"Annotations/{folder}/annotation_{number:04d}.mat",
          text,
          os.path.basename(files["annotations"]),
        )
      else:
        mats[(cls, number)] = mat
    return mats

  def _generate_examples(self, files, annotations, classes, assignment, split):
    skips = self._skips(split)
    mats = self._read_annotations(files, annotations, assignment, split, skips)

    def wanted(name):
      m = _IMAGE.search(name)
      return m is not None and (m.group(1), int(m.group(2))) in mats

    for name, data in common.iter_tar(
      self._archive(files["images"], IMAGES_ARCHIVES), wanted
    ):
      cls, number = _IMAGE.search(name).groups()
      number = int(number)
      try:
        image, h, w = common.read_image(data, name)
      except Exception as e:
        skips.bad_image(name, e)
        continue
      mat = mats[(cls, number)]
      box = mat["box_coord"]
      key = f"{cls}/image_{number:04d}"
      yield (
        key,
        {
          "image": image,
          "mask": common.mask_feature(self._mask(h, w, mat)),
          "label": classes.index(cls),
          "id": key,
          "boxes": np.array(
            [[box[2] - 1, box[0] - 1, box[3], box[1]]], np.float32
          ),
        },
      )


# The dataset this module registers (`rationality_jax.data.DATASETS`).
DATASET = Caltech101Masks
