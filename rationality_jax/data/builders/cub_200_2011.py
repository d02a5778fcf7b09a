"""cub_200_2011: CUB-200-2011 birds with the official segmentation masks.

manual_dir: `CUB_200_2011.tgz` (or `.tar.gz`, `.tar`) and `segmentations.tgz`
(or `.tar.gz`, `.tar`) as distributed by Caltech
(https://data.caltech.edu/records/65de6-vp158). Labels are
`image_class_labels.txt` - 1; class names are the folder names
("001.Black_footed_Albatross"); `rationality_jax.data.class_names` turns them
into prompt names. Boxes come from `bounding_boxes.txt` (x, y, width,
height) as (x, y, x + width, y + height).

Masks: the segmentation PNGs are soft (annotator agreement, 0..255). `mask`
keeps, like the study, only full-white pixels: mask = (segmentation == 255)
at full size (preprocessing then moves it with nearest neighbour); a PNG of
another depth is read by value and thresholded on its own range (full white
is 65535 at 16 bits). `soft_mask` stores the segmentation itself (grayscale
0..255; 16-bit values // 257), so the
release's order - resize and crop the soft mask bilinearly with the image,
then keep pixels still at 255 - is available at preprocessing time
(`preprocess.study_spec('cub_200_2011', mask_order='release')`).

Splits (config `split_order`): 'official' (default) joins
`train_test_split.txt` with `images.txt` on the image id (train 5,994 /
test 5,794). 'release' applies `train_test_split.txt`'s flags by position to
the alphabetically sorted file list, as utils/CUB_dataset.py of the study's
release did (torchvision ImageFolder order; it never reads `images.txt`): the
same sizes, but a different set of test images
(`release.cub_release_split`).

Completeness: every image `images.txt` lists must be in the archive with a
segmentation, and every id must have a label, split flag and box; what is
missing fails the build, or with on_missing='skip' is left out and counted
(`Source.skipped`). A box row that is not four numbers, has a NaN, or a
negative width or height (an inverted box) fails the build naming the row
and the box, or with on_bad_annotation='skip' leaves its image out.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re

import numpy as np
import tensorflow_datasets as tfds

from rationality_jax.data import release
from rationality_jax.data.builders import base
from rationality_jax.data.builders import common

MANUAL_FILES = {
  "images": common.ManualFile(
    common.archive_names("CUB_200_2011", ".tgz", ".tar.gz", ".tar"),
    "https://data.caltech.edu/records/65de6-vp158 (CUB_200_2011.tgz, 1.1 GB)",
  ),
  "segmentations": common.ManualFile(
    common.archive_names("segmentations", ".tgz", ".tar.gz", ".tar"),
    "https://data.caltech.edu/records/w9d68-gec53 (segmentations.tgz, 37 MB)",
  ),
}
_TEXT_FILES = (
  "images.txt",
  "image_class_labels.txt",
  "train_test_split.txt",
  "classes.txt",
  "bounding_boxes.txt",
)
SPLIT_ORDERS = ("official", "release")


@dataclasses.dataclass(eq=False)
class CubConfig(base.MaskedBuilderConfig):
  """`split_order`: 'official' (images.txt ids) or 'release' (flags by
  position over the sorted file list, as the study's release did)."""

  split_order: str = "official"


def _table(text: bytes) -> list[list[str]]:
  return [
    line.split() for line in text.decode("utf-8").splitlines() if line.strip()
  ]


def read_segmentation(png_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
  """(mask, soft) of a segmentation PNG, each [H, W] uint8, read by value.

  mask: 1 where the segmentation is full white - 255 of an 8-bit PNG, the
  top of its own range at any other depth (65535 at 16 bits; 1 at 1 bit).
  soft: the segmentation scaled to 0..255 (value * 255 // top: 16-bit
  values // 257), so soft == 255 exactly where mask is 1.
  """
  values, top = common.read_gray(png_bytes)
  mask = (values == top).astype(np.uint8)
  soft = (np.asarray(values, np.int64) * 255 // top).astype(np.uint8)
  return mask, soft


class Cub2002011(base.MaskedImageBuilder):
  """CUB-200-2011 with binarised and soft segmentation masks."""

  name = "cub_200_2011"
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
    "1.0.0": "First version.",
    "1.1.0": "soft_mask feature (the segmentation, 0..255); split_order.",
  }
  BUILDER_CONFIG_CLASS = CubConfig
  BUILDER_CONFIGS = [CubConfig(name="default")]
  MANUAL_FILES = MANUAL_FILES
  MANUAL_DOWNLOAD_INSTRUCTIONS = common.manual_instructions(MANUAL_FILES)
  DESCRIPTION = __doc__
  HOMEPAGE = "https://www.vision.caltech.edu/datasets/cub_200_2011/"

  REPORT_KEY = "cub"
  STUDY = base.StudyDataset()
  # Resize(256) + CenterCrop(224) (PAPER.md, "Datasets and masks").
  STUDY_EVAL_SIZE = (256, 224)
  RELEASE_ONLY_FIELDS = ("soft_mask",)

  @classmethod
  def release_eval_geometry(cls, resize, crop):
    """utils/CUB_dataset.py: the soft segmentation goes through the image's
    Resize + CenterCrop (bilinear); clip_zs_flcp_cub.py keeps only pixels
    still at 255 (ToTensor, channel mean, uint8 cast)."""
    return f"resize({resize})|center_crop({crop})|mask_from_soft(255)"

  @classmethod
  def prompt_names(cls, names=None, readable=False, rule="study"):
    """The folder names without the numeric prefix, lowercased, '_' -> ' '
    ("001.Black_footed_Albatross" -> "black footed albatross"), under both
    rules (clip_zs_flcp_cub.py prompts with the same names)."""
    del readable, rule
    return [
      re.sub(r"^\d+\.", "", n).replace("_", " ").lower()
      for n in cls._label_names(names)
    ]

  def _info_features(self):
    return common.features(
      None,
      soft_mask=tfds.features.Image(
        shape=(None, None, 1), encoding_format="png"
      ),
    )

  def _read_metadata(self, path):
    texts = common.read_tar_files(
      path,
      r"(^|/)(" + "|".join(t.replace(".", r"\.") for t in _TEXT_FILES) + r")$",
      expect="CUB_200_2011/images.txt (and the other annotation .txt files)",
    )
    found = {
      posixpath.basename(k): v
      for k, v in texts.items()
      if posixpath.basename(posixpath.dirname(k)) in ("", "CUB_200_2011")
    }
    missing = [t for t in _TEXT_FILES if t not in found]
    if missing:
      raise common.ManualFilesMissingError(
        f"{path} lacks {missing}: is it the original CUB_200_2011.tgz?"
      )
    tables = {k: _table(v) for k, v in found.items()}
    classes = [
      name for _, name in sorted(tables["classes.txt"], key=lambda r: int(r[0]))
    ]
    meta = {
      "classes": classes,
      "paths": dict(tables["images.txt"]),
      "labels": {i: int(c) - 1 for i, c in tables["image_class_labels.txt"]},
      "is_train": {i: t == "1" for i, t in tables["train_test_split.txt"]},
      "flags": [t == "1" for _, t in tables["train_test_split.txt"]],
      "boxes": {i: r for i, *r in tables["bounding_boxes.txt"]},
    }
    for key, table in (
      ("labels", "image_class_labels.txt"),
      ("is_train", "train_test_split.txt"),
      ("boxes", "bounding_boxes.txt"),
    ):
      absent = sorted(set(meta["paths"]) - set(meta[key]), key=int)
      if absent:
        raise common.ManualFilesMissingError(
          f"{table} in {os.path.basename(path)} has no row for "
          f"{len(absent)} image ids of images.txt, e.g. {absent[:3]}."
        )
    return meta

  def _check_boxes(self, path, meta) -> None:
    """Turns bounding_boxes.txt's rows into (x0, y0, x1, y1) boxes; a row
    that is not four numbers, has a NaN, or a negative width or height
    (an inverted box) goes to `bad_annotation` (its id to meta['bad'])."""
    before = self._skips(base.BEFORE_SPLIT)
    meta["bad"] = set()
    for image_id, row in meta["boxes"].items():
      try:
        x, y, w, h = (float(v) for v in row)
      except ValueError:
        problem = (
          common.UNREADABLE_ANNOTATION,
          f"{' '.join(row)!r} is not x y width height",
        )
      else:
        meta["boxes"][image_id] = [x, y, x + w, y + h]
        problem = common.box_problem([[x, y, x + w, y + h]])
      if problem:
        reason, text = problem
        name = f"bounding_boxes.txt row {image_id}"
        before.bad_annotation(reason, name, text, os.path.basename(path))
        meta["bad"].add(image_id)

  def _make_splits(self, dl_manager):
    order = self.builder_config.split_order
    if order not in SPLIT_ORDERS:
      raise ValueError(
        f"split_order must be one of {SPLIT_ORDERS}, got {order!r}."
      )
    files = self._manual(dl_manager)
    meta = self._read_metadata(files["images"])
    self._check_boxes(files["images"], meta)
    self.info.features["label"].names = meta["classes"]
    if order == "release":
      is_train = release.cub_release_split(
        list(meta["paths"].values()), meta["flags"]
      )
    else:
      is_train = {p: meta["is_train"][i] for i, p in meta["paths"].items()}
    train = sum(bool(t) for t in is_train.values())
    self._expected = {"train": train, "test": len(is_train) - train}
    return {
      split: self._generate_examples(files, meta, is_train, split)
      for split in ("train", "test")
    }

  def _generate_examples(self, files, meta, is_train, split):
    skips = self._skips(split)
    wanted = {
      path: image_id
      for image_id, path in meta["paths"].items()
      if is_train[path] == (split == "train") and image_id not in meta["bad"]
    }
    stems = {path.rsplit(".", 1)[0]: path for path in wanted}

    def seg_key(name):
      return name.split("segmentations/", 1)[-1][: -len(".png")]

    segs = {
      seg_key(name): data
      for name, data in common.iter_tar(
        files["segmentations"],
        lambda n: n.endswith(".png") and seg_key(n) in stems,
        expect="segmentations/<class>/<image>.png" if stems else None,
      )
    }
    no_seg = [stems[s] for s in stems if s not in segs]
    skips.missing(
      "segmentation missing",
      no_seg,
      f"{os.path.basename(files['segmentations'])} has no "
      "segmentations/<class>/<image>.png for these images",
    )
    for path in no_seg:
      del wanted[path]

    def key(name):
      return name.split("images/", 1)[-1] if "/images/" in "/" + name else None

    for name, data in common.iter_tar(
      files["images"],
      lambda n: key(n) in wanted,
      expect="CUB_200_2011/images/<class>/<image>.jpg" if wanted else None,
    ):
      rel = key(name)
      image_id = wanted.pop(rel)
      stem = rel.rsplit(".", 1)[0]
      try:
        image, h, w = common.read_image(data, name)
      except Exception as e:
        skips.bad_image(name, e)
        continue
      mask, soft = read_segmentation(segs[stem])
      if soft.shape != (h, w):
        raise common.InvalidExampleError(
          f"Segmentation of {rel} is {soft.shape}, image is {(h, w)}."
        )
      yield (
        stem,
        {
          "image": image,
          "mask": common.mask_feature(mask),
          "soft_mask": common.encode_png(soft),
          "label": meta["labels"][image_id],
          "id": stem,
          "boxes": np.array([meta["boxes"][image_id]], np.float32),
        },
      )
    skips.missing(
      "image missing",
      wanted,
      f"listed in images.txt but not in {os.path.basename(files['images'])}",
    )


# The dataset this module registers (`rationality_jax.data.DATASETS`).
DATASET = Cub2002011
