"""cub_200_2011: CUB-200-2011 birds with the official segmentation masks.

manual_dir: `CUB_200_2011.tgz` and `segmentations.tgz` as distributed by
Caltech (https://data.caltech.edu/records/65de6-vp158). Splits follow
`train_test_split.txt` (train 5,994 / test 5,794). The segmentation PNGs are
soft (annotator agreement, 0..255); like the study, only full-white pixels
(value 255) count as the object: mask = (segmentation == 255). Boxes come from
`bounding_boxes.txt` (x, y, width, height) as (x, y, x + width, y + height).
Labels are `image_class_labels.txt` - 1; class names are the folder names
("001.Black_footed_Albatross"); `rationality_jax.data.class_names` turns them
into prompt names.
"""

from __future__ import annotations

import io
import posixpath

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from rationality_jax.data.builders import common

MANUAL_FILES = {
  "images": common.ManualFile(
    ("CUB_200_2011.tgz",),
    "https://data.caltech.edu/records/65de6-vp158 (CUB_200_2011.tgz, 1.1 GB)",
  ),
  "segmentations": common.ManualFile(
    ("segmentations.tgz",),
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


def _table(text: bytes) -> list[list[str]]:
  return [
    line.split() for line in text.decode("utf-8").splitlines() if line.strip()
  ]


def binarise_segmentation(png_bytes: bytes) -> np.ndarray:
  """[H, W] uint8: 1 where the (grayscale) segmentation is exactly 255."""
  with Image.open(io.BytesIO(png_bytes)) as im:
    seg = np.asarray(im.convert("L"))
  return (seg == 255).astype(np.uint8)


class Cub2002011(common.MaskedImageBuilder):
  """CUB-200-2011 with binarised segmentation masks."""

  name = "cub_200_2011"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  MANUAL_FILES = MANUAL_FILES
  MANUAL_DOWNLOAD_INSTRUCTIONS = common.manual_instructions(MANUAL_FILES)
  DESCRIPTION = __doc__
  HOMEPAGE = "https://www.vision.caltech.edu/datasets/cub_200_2011/"

  def _info_features(self):
    return common.features(None)

  def _read_metadata(self, path):
    texts = common.read_tar_files(
      path,
      r"(^|/)(" + "|".join(t.replace(".", r"\.") for t in _TEXT_FILES) + r")$",
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
    return {
      "classes": classes,
      "paths": dict(tables["images.txt"]),
      "labels": {i: int(c) - 1 for i, c in tables["image_class_labels.txt"]},
      "is_train": {i: t == "1" for i, t in tables["train_test_split.txt"]},
      "boxes": {
        i: [float(v) for v in r] for i, *r in tables["bounding_boxes.txt"]
      },
    }

  def _split_generators(self, dl_manager):
    files = self._manual(dl_manager)
    meta = self._read_metadata(files["images"])
    self.info.features["label"].names = meta["classes"]
    return {
      split: self._generate_examples(files, meta, split)
      for split in ("train", "test")
    }

  def _generate_examples(self, files, meta, split):
    bad = self._bad_images(split)
    wanted = {
      meta["paths"][i]: i
      for i, t in meta["is_train"].items()
      if t == (split == "train")
    }
    segs = {
      name.split("segmentations/", 1)[-1][: -len(".png")]: data
      for name, data in common.iter_tar(
        files["segmentations"], lambda n: n.endswith(".png")
      )
    }

    def key(name):
      return name.split("images/", 1)[-1] if "/images/" in "/" + name else None

    for name, data in common.iter_tar(
      files["images"], lambda n: key(n) in wanted
    ):
      rel = key(name)
      image_id = wanted.pop(rel)
      stem = rel.rsplit(".", 1)[0]
      if stem not in segs:
        raise common.ManualFilesMissingError(
          f"segmentations.tgz has no segmentations/{stem}.png for image {rel}."
        )
      try:
        image, h, w = common.read_image(data, name)
      except Exception as e:
        bad.handle(name, e)
        continue
      mask = binarise_segmentation(segs[stem])
      if mask.shape != (h, w):
        raise ValueError(
          f"Segmentation of {rel} is {mask.shape}, image is {(h, w)}."
        )
      x, y, bw, bh = meta["boxes"][image_id]
      yield (
        stem,
        {
          "image": image,
          "mask": common.mask_feature(mask),
          "label": meta["labels"][image_id],
          "id": stem,
          "boxes": np.array([[x, y, x + bw, y + bh]], np.float32),
        },
      )
    if wanted:
      raise common.ManualFilesMissingError(
        f"CUB_200_2011.tgz lacks {len(wanted)} {split} images, e.g. {sorted(wanted)[:3]}."
      )
