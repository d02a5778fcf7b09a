"""imagenet2012_val_masks: the 50,000 ILSVRC2012 validation images with box masks.

manual_dir: `ILSVRC2012_img_val.tar` (https://image-net.org, registration
required) and the validation boxes in either layout:
  - `ILSVRC2012_bbox_val_v3.tgz`: one Pascal-VOC XML per image
    (`val/ILSVRC2012_val_00000001.xml`, with <size> and <object><name>wnid
    <bndbox>), or
  - `LOC_val_solution.csv` (Kaggle's ImageNet localization challenge):
    `ImageId,PredictionString` with "wnid x_min y_min x_max y_max ..." per row.
Label: the index of the image's wnid in the standard 1,000-class order
(sorted wnids, `third_party/imagenet/synset_words.txt`). Mask: every box
filled, coordinates used as pixel edges (mask[ymin:ymax, xmin:xmax] = 1), in
the original image's pixels; the study maps it through Resize(256) +
CenterCrop(224) with the image, which `preprocess` does for image and mask
together. `boxes` keeps every box, original pixels. The release's own box
mask (drawn into the 224 crop with its float arithmetic) is a preprocessing
option: `preprocess.study_spec(..., mask_order='release')`.

Completeness: every image of the tar must have boxes and every image the
boxes list must be in the tar; what is missing fails the build, or with
on_missing='skip' is left out and counted (`Source.skipped`). Member names
must be `ILSVRC2012_val_NNNNNNNN.JPEG` (8 digits). An annotation (XML, or CSV
row) that cannot be read, or with a box whose coordinate is not a number or
that is inverted, fails the build naming it and the box, or with
on_bad_annotation='skip' leaves its image out, counted by reason.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import tensorflow_datasets as tfds

from rationality_jax.data import classnames
from rationality_jax.data.builders import base
from rationality_jax.data.builders import common

_IMAGENET = "https://image-net.org/challenges/LSVRC/2012/2012-downloads.php (registration required)"
BOX_FILES = common.ManualFile(
  (
    *common.archive_names("ILSVRC2012_bbox_val_v3", ".tgz", ".tar.gz", ".tar"),
    "LOC_val_solution.csv",
  ),
  _IMAGENET
  + "; or LOC_val_solution.csv from https://www.kaggle.com/c/imagenet-object-localization-challenge/data",
)
IMAGES_FILE = common.ManualFile(
  ("ILSVRC2012_img_val.tar",), _IMAGENET + " (ILSVRC2012_img_val.tar, 6.3 GB)"
)
VAL_NAME = re.compile(r"(?:^|/)(ILSVRC2012_val_\d{8})\.JPEG$")
XML_NAME = re.compile(r"(?:^|/)(ILSVRC2012_val_\d{8})\.xml$")
CSV_COLUMNS = ("ImageId", "PredictionString")


@dataclasses.dataclass
class ValAnnotation:
  wnid: str
  boxes: np.ndarray  # [N, 4] (x_min, y_min, x_max, y_max), original pixels
  size: tuple[int, int] | None  # (height, width) when the source gives it


def _parse_xml(data: bytes) -> ValAnnotation:
  root = ET.fromstring(data)
  size = root.find("size")
  hw = (
    (int(size.find("height").text), int(size.find("width").text))
    if size is not None
    else None
  )
  wnids, boxes = [], []
  for obj in root.iter("object"):
    wnids.append(obj.find("name").text.strip())
    b = obj.find("bndbox")
    boxes.append(
      [float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
    )
  if not wnids:
    raise ValueError("validation XML without <object>")
  return ValAnnotation(wnids[0], np.array(boxes, np.float32).reshape(-1, 4), hw)


def _csv_row(row) -> ValAnnotation:
  tokens = row["PredictionString"].split()
  if not tokens or len(tokens) % 5:
    raise ValueError("PredictionString is not groups of 'wnid x0 y0 x1 y1'")
  groups = [tokens[i : i + 5] for i in range(0, len(tokens), 5)]
  boxes = np.array(
    [[float(v) for v in g[1:]] for g in groups], np.float32
  ).reshape(-1, 4)
  return ValAnnotation(groups[0][0], boxes, None)


def _csv_rows(text: str):
  """(image name, row name, parse) of LOC_val_solution.csv's rows."""
  reader = csv.DictReader(io.StringIO(text))
  if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
    raise common.ArchiveLayoutError(
      f"LOC_val_solution.csv: expected the columns {','.join(CSV_COLUMNS)}, "
      f"found {reader.fieldnames}."
    )
  for row in reader:
    yield row["ImageId"], f"row {row['ImageId']}", lambda r=row: _csv_row(r)


def _xml_members(path: str):
  """(image name, member name, parse) of the tgz's XMLs."""
  for name, data in common.iter_tar(
    path,
    lambda n: XML_NAME.search(n) is not None,
    expect="val/ILSVRC2012_val_NNNNNNNN.xml (8 digits)",
  ):
    yield XML_NAME.search(name).group(1), name, lambda d=data: _parse_xml(d)


def read_val_annotations(
  path: str, skips
) -> tuple[dict[str, ValAnnotation], set[str]]:
  """({"ILSVRC2012_val_00000001": ValAnnotation}, bad) from the XML tgz or
  the CSV. An annotation that cannot be read or gives a box that is no box
  (`common.box_problem`) goes to `skips.bad_annotation` (one line naming
  the XML or CSV row and the box, or counted under 'skip'); `bad` holds
  the names of their images, which are then left out."""
  if path.endswith(".csv"):
    with open(path, encoding="utf-8") as f:
      entries = _csv_rows(f.read())
  else:
    entries = _xml_members(path)
  out, bad = {}, set()
  for stem, name, parse in entries:
    try:
      annotation = parse()
    except (ET.ParseError, AttributeError, TypeError, ValueError) as error:
      message = " ".join(str(error).split()) or type(error).__name__
      problem = (common.UNREADABLE_ANNOTATION, f"cannot be read ({message})")
    else:
      problem = common.box_problem(annotation.boxes)
    if problem:
      reason, text = problem
      skips.bad_annotation(reason, name, text, os.path.basename(path))
      bad.add(stem)
    else:
      out[stem] = annotation
  return out, bad


class Imagenet2012ValMasks(base.MaskedImageBuilder):
  """ImageNet-1k validation images with all boxes filled."""

  name = "imagenet2012_val_masks"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  MANUAL_FILES = {"images": IMAGES_FILE, "boxes": BOX_FILES}
  MANUAL_DOWNLOAD_INSTRUCTIONS = common.manual_instructions(MANUAL_FILES)
  DESCRIPTION = __doc__
  HOMEPAGE = "https://image-net.org/"

  REPORT_KEY = "imagenet"
  STUDY = base.StudyDataset(
    train_builder="imagenet2012_train", eval_split="validation"
  )
  # Resize(256) + CenterCrop(224) (PAPER.md, "Datasets and masks").
  STUDY_EVAL_SIZE = (256, 224)

  @classmethod
  def release_eval_geometry(cls, resize, crop):
    """test_rationale_vlm/clip_zs_flcp_in.py draws the boxes straight into
    the cropped frame (`release.imagenet_release_box_mask`)."""
    keys = "keys=('image', 'boxes')"
    return (
      f"release_box_mask({resize}, {crop})|resize({resize}, {keys})|"
      f"center_crop({crop}, {keys})"
    )

  @classmethod
  def prompt_names(cls, names=None, readable=False, rule="study"):
    """The first WordNet synonym of each class (`classnames.imagenet_names`),
    under both rules (the release's imagenet-classes.txt agrees)."""
    del names, readable, rule
    return classnames.imagenet_names()

  def _info_features(self):
    return common.features(classnames.imagenet_wnids())

  def _make_splits(self, dl_manager):
    files = self._manual(dl_manager)
    return {"validation": self._generate_examples(files)}

  def _generate_examples(self, files):
    skips = self._skips("validation")
    annotations, bad = read_val_annotations(files["boxes"], skips)
    label_of = {w: i for i, w in enumerate(classnames.imagenet_wnids())}
    unknown = sorted({a.wnid for a in annotations.values()} - set(label_of))
    if unknown:
      raise common.InvalidExampleError(
        f"{os.path.basename(files['boxes'])} names wnids outside the 1,000 "
        f"classes, e.g. {unknown[:3]}."
      )
    no_boxes = []
    for name, data in common.iter_tar(
      files["images"],
      lambda n: VAL_NAME.search(n) is not None,
      expect="ILSVRC2012_val_NNNNNNNN.JPEG (8 digits)",
    ):
      stem = VAL_NAME.search(name).group(1)
      if stem in bad:  # counted by read_val_annotations (on_bad_annotation)
        continue
      if stem not in annotations:
        no_boxes.append(stem)
        continue
      ann = annotations.pop(stem)
      try:
        image, h, w = common.read_image(data, name)
      except Exception as e:
        skips.bad_image(name, e)
        continue
      yield (
        stem,
        {
          "image": image,
          "mask": common.mask_feature(common.fill_boxes(h, w, ann.boxes)),
          "label": label_of[ann.wnid],
          "id": stem,
          "boxes": ann.boxes,
        },
      )
    skips.missing(
      "boxes missing",
      no_boxes,
      f"in {os.path.basename(files['images'])} but without boxes in "
      f"{os.path.basename(files['boxes'])}",
    )
    skips.missing(
      "image missing",
      annotations,
      f"with boxes in {os.path.basename(files['boxes'])} but not in "
      f"{os.path.basename(files['images'])}",
    )


# The dataset this module registers (`rationality_jax.data.DATASETS`).
DATASET = Imagenet2012ValMasks
