"""stanford_dogs_masks: Stanford Dogs with masks filled from the bounding boxes.

manual_dir: `images.tar`, `annotation.tar` and `lists.tar` as distributed
(http://vision.stanford.edu/aditya86/ImageNetDogs/; `.tar.gz` / `.tgz`
recompressions are accepted too). `lists.tar` holds
`train_list.mat` / `test_list.mat` (12,000 / 8,580) with `file_list`
("n02085620-Chihuahua/n02085620_5927.jpg"), `annotation_list` and 1-based
`labels`; label = labels - 1, class names are the sorted breed folders
("n02085620-Chihuahua"). Each image's Pascal-VOC XML
(`Annotation/<folder>/<file>`, no extension) lists one or more `<bndbox>`es.

Mask (config `boxes`): 'all' (default) fills every box of the image; 'last'
fills only the last one, as the study's release did (utils/
Stanford_Dogs_dataset.py keeps the last <xmin>, <ymin>, ... lines of the
XML). Config `box_fill`: 'edges' (default) uses the coordinates as pixel
edges, mask[ymin:ymax, xmin:xmax] = 1; 'inclusive' fills as the release's
cv2.rectangle(thickness=-1) did, integer corners both included (one more
row and column), `release.fill_rectangles_inclusive`. `boxes` stores every
box as (xmin, ymin, xmax, ymax) whatever the mask options.

The release's train/test indices (datasets/Stanford_Dogs/*_idxs.json, over
ImageFolder's sorted file list) have the official sizes, 12,000 / 8,580,
and 100 training images in the first breed, as `lists.tar`: this builder
uses `lists.tar`.

Completeness: every image the lists name must be in images.tar with its
annotation; what is missing fails the build, or with on_missing='skip' is
left out and counted (`Source.skipped`). An annotation that cannot be read,
or with a box whose coordinate is not a number (NaN) or that is inverted
(xmax < xmin, ymax < ymin: it would fill nothing), fails the build naming
the annotation file and the box, or with on_bad_annotation='skip' leaves its
image out, counted by reason.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import scipy.io
import tensorflow_datasets as tfds

from rationality_jax.data import release
from rationality_jax.data.builders import base
from rationality_jax.data.builders import common

_SOURCE = "http://vision.stanford.edu/aditya86/ImageNetDogs/"
MANUAL_FILES = {
  "images": common.ManualFile(
    common.archive_names("images", *common.TAR_SUFFIXES),
    _SOURCE + "images.tar (757 MB)",
  ),
  "annotations": common.ManualFile(
    common.archive_names("annotation", *common.TAR_SUFFIXES),
    _SOURCE + "annotation.tar (21 MB)",
  ),
  "lists": common.ManualFile(
    common.archive_names("lists", *common.TAR_SUFFIXES),
    _SOURCE + "lists.tar (0.5 MB)",
  ),
}
BOXES = ("all", "last")
BOX_FILLS = ("edges", "inclusive")


@dataclasses.dataclass(eq=False)
class StanfordDogsConfig(base.MaskedBuilderConfig):
  """`boxes`: 'all' or 'last' (the release); `box_fill`: 'edges' or
  'inclusive' (the release)."""

  boxes: str = "all"
  box_fill: str = "edges"


def parse_voc_boxes(xml_bytes: bytes) -> np.ndarray:
  """[N, 4] float32 (xmin, ymin, xmax, ymax) of every <object><bndbox>, in file order."""
  root = ET.fromstring(xml_bytes)
  boxes = []
  for obj in root.iter("object"):
    b = obj.find("bndbox")
    boxes.append(
      [float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
    )
  return np.array(boxes, np.float32).reshape(-1, 4)


def read_voc_boxes(xml_bytes: bytes):
  """(boxes, None) of an annotation XML, or (None, (reason, problem)) when
  it cannot be read or a box is not a box (`common.box_problem`)."""
  try:
    boxes = parse_voc_boxes(xml_bytes)
  except (ET.ParseError, AttributeError, TypeError, ValueError) as error:
    message = " ".join(str(error).split()) or type(error).__name__
    problem = f"cannot be read as a VOC annotation ({message})"
    return None, (common.UNREADABLE_ANNOTATION, problem)
  problem = common.box_problem(boxes)
  return (None, problem) if problem else (boxes, None)


def _cell_strings(cell) -> list[str]:
  return [
    str(np.asarray(c).reshape(-1)[0])
    for c in np.asarray(cell, dtype=object).reshape(-1)
  ]


def read_list(mat_bytes: bytes) -> list[tuple[str, str, int]]:
  """(image path, annotation path, 0-based label) rows of train_list.mat / test_list.mat."""
  mat = scipy.io.loadmat(io.BytesIO(mat_bytes))
  files = _cell_strings(mat["file_list"])
  annotations = _cell_strings(mat["annotation_list"])
  labels = np.asarray(mat["labels"]).reshape(-1).astype(int) - 1
  return list(zip(files, annotations, labels.tolist()))


class StanfordDogsMasks(base.MaskedImageBuilder):
  """Stanford Dogs with box masks."""

  name = "stanford_dogs_masks"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  BUILDER_CONFIG_CLASS = StanfordDogsConfig
  BUILDER_CONFIGS = [StanfordDogsConfig(name="default")]
  MANUAL_FILES = MANUAL_FILES
  MANUAL_DOWNLOAD_INSTRUCTIONS = common.manual_instructions(MANUAL_FILES)
  DESCRIPTION = __doc__
  HOMEPAGE = _SOURCE

  REPORT_KEY = "dogs"
  STUDY = base.StudyDataset()
  # Resize(224) + CenterCrop(224) (PAPER.md, "Datasets and masks").
  STUDY_EVAL_SIZE = (224, 224)
  # utils/caltech101_dataset.py, utils/Stanford_Dogs_dataset.py: the 0/1
  # mask is a PIL image resized by the default (bilinear) Resize.
  RELEASE_MASK_RESIZE = "bilinear"

  @classmethod
  def prompt_names(cls, names=None, readable=False, rule="study"):
    """Study: the breed folder without its wnid prefix, lowercased
    ("n02085620-Chihuahua" -> "chihuahua", "japanese_spaniel"; `readable`:
    "japanese spaniel"). Release (datasets/Stanford_Dogs/label_dict.json,
    made by utils/Stanford_Dogs_dataset.py): `folder.split('-')[1]`,
    '_' -> ' ', lowercased, which cuts hyphenated breeds short
    ("n02086240-Shih-Tzu" -> "shih", "n02100236-German_short-haired_pointer"
    -> "german short")."""
    names = cls._label_names(names)
    if rule == "release":
      return [n.split("-")[1].replace("_", " ").lower() for n in names]
    out = [re.sub(r"^n\d+-", "", n).lower() for n in names]
    return [n.replace("_", " ") for n in out] if readable else out

  def _info_features(self):
    return common.features(None)

  def _make_splits(self, dl_manager):
    c = self.builder_config
    if c.boxes not in BOXES:
      raise ValueError(f"boxes must be one of {BOXES}, got {c.boxes!r}.")
    if c.box_fill not in BOX_FILLS:
      raise ValueError(
        f"box_fill must be one of {BOX_FILLS}, got {c.box_fill!r}."
      )
    files = self._manual(dl_manager)
    lists = common.read_tar_files(
      files["lists"],
      r"(^|/)(train|test)_list\.mat$",
      expect="train_list.mat / test_list.mat",
    )
    rows = {}
    for split in ("train", "test"):
      found = [v for k, v in lists.items() if k.endswith(f"{split}_list.mat")]
      if not found:
        raise common.ManualFilesMissingError(
          f"lists.tar has no {split}_list.mat; members found: {sorted(lists)}."
        )
      rows[split] = read_list(found[0])
    label_of_folder = {}
    for f, _, label in rows["train"] + rows["test"]:
      if label_of_folder.setdefault(f.split("/")[0], label) != label:
        raise ValueError(
          f"lists.tar gives folder {f.split('/')[0]} two labels."
        )
    classes = sorted(label_of_folder)
    if [label_of_folder[c] for c in classes] != list(range(len(classes))):
      raise ValueError(
        "Labels in lists.tar do not follow the sorted breed folders."
      )
    self.info.features["label"].names = classes
    annotations = {
      name.split("Annotation/", 1)[-1]: data
      for name, data in common.iter_tar(
        files["annotations"],
        lambda n: "/Annotation/" in "/" + n,
        expect="Annotation/<breed folder>/<image name>",
      )
    }
    return {
      split: self._generate_examples(files, rows[split], annotations, split)
      for split in ("train", "test")
    }

  def _generate_examples(self, files, rows, annotations, split):
    skips = self._skips(split)
    c = self.builder_config
    wanted = {f: (a, label) for f, a, label in rows}
    no_annotation = [f for f, (a, _) in wanted.items() if a not in annotations]
    skips.missing(
      "annotation missing",
      no_annotation,
      f"{os.path.basename(files['annotations'])} has no "
      "Annotation/<file> for these images",
    )
    for f in no_annotation:
      del wanted[f]
    boxes_of = {}
    for f, (annotation, _) in list(wanted.items()):
      boxes_of[f], problem = read_voc_boxes(annotations[annotation])
      if problem:
        reason, text = problem
        where = os.path.basename(files["annotations"])
        skips.bad_annotation(reason, f"Annotation/{annotation}", text, where)
        del wanted[f]

    def key(name):
      return name.split("Images/", 1)[-1] if "/Images/" in "/" + name else None

    for name, data in common.iter_tar(
      files["images"],
      lambda n: key(n) in wanted,
      expect="Images/<breed folder>/<image>.jpg" if wanted else None,
    ):
      rel = key(name)
      annotation, label = wanted.pop(rel)
      try:
        image, h, w = common.read_image(data, name)
      except Exception as e:
        skips.bad_image(name, e)
        continue
      boxes = boxes_of[rel]
      filled = boxes if c.boxes == "all" else boxes[-1:]
      if c.box_fill == "inclusive":
        mask = release.fill_rectangles_inclusive(h, w, filled.astype(np.int64))
      else:
        mask = common.fill_boxes(h, w, filled)
      stem = rel.rsplit(".", 1)[0]
      yield (
        stem,
        {
          "image": image,
          "mask": common.mask_feature(mask),
          "label": label,
          "id": stem,
          "boxes": boxes,
        },
      )
    skips.missing(
      "image missing",
      wanted,
      f"listed in {split}_list.mat but not in "
      f"{os.path.basename(files['images'])}",
    )


# The dataset this module registers (`rationality_jax.data.DATASETS`).
DATASET = StanfordDogsMasks
