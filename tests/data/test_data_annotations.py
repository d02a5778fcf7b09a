"""Malformed annotations are one line naming the file and the box: a
coordinate that is not a number (NaN) or an inverted box (xmax < xmin,
ymax < ymin: an empty mask) refuses the build, or with
on_bad_annotation='skip' leaves the image out, counted by reason."""

import io
import tarfile

import numpy as np
import pytest

from rationality_jax.data import sources
from rationality_jax.data.builders import caltech101_masks as caltech
from rationality_jax.data.builders import common
from tests.data import test_data_caltech
from tests.data import test_data_cub
from tests.data import test_data_dogs
from tests.data import test_data_imagenet

NAN = float("nan")
ADVICE = (
  ". Fix the annotation, or build with on_bad_annotation='skip' to leave its "
  "image out (counted in Source.skipped)."
)
DOG = "n02085620-Chihuahua/n02085620_10074"  # two boxes, in the test split


def replace_members(path, members: dict, mode="w"):
  """Rewrites the tar at `path` with `members` ({name: bytes}) replaced."""
  with tarfile.open(path) as tar:
    old = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
  with tarfile.open(path, mode) as tar:
    for name, data in {**old, **members}.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def dogs_with(fake, tmp_path, monkeypatch, second_box):
  monkeypatch.setitem(test_data_dogs.BOXES, DOG, [(2, 3, 10, 12), second_box])
  return test_data_dogs.write_dogs(fake, tmp_path / "manual")


@pytest.mark.parametrize(
  "box, reason, problem",
  [
    (
      (20, NAN, 28, 25),
      "non-finite box",
      "box 2 of 2 (xmin 20, ymin nan, xmax 28, ymax 25) has a coordinate "
      "that is not a number",
    ),
    (
      (28, 15, 20, 25),
      "inverted box",
      "box 2 of 2 (xmin 28, ymin 15, xmax 20, ymax 25) is inverted "
      "(xmax < xmin)",
    ),
  ],
  ids=["nan", "inverted"],
)
def test_dogs_bad_boxes_are_named_or_counted(
  fake, tmp_path, monkeypatch, box, reason, problem
):
  manual = dogs_with(fake, tmp_path, monkeypatch, box)
  with pytest.raises(common.InvalidAnnotationError) as error:
    sources.build("stanford_dogs_masks", tmp_path / "data", manual_dir=manual)
  assert str(error.value) == (
    f"stanford_dogs_masks (test): annotation.tar: Annotation/{DOG}: {problem}"
    + ADVICE
  )
  options = dict(on_bad_annotation="skip")
  builder = sources.build(
    "stanford_dogs_masks", tmp_path / "data", manual_dir=manual, **options
  )
  assert builder.info.splits["test"].num_examples == 1
  assert builder.info.metadata["skipped"]["test"] == {
    reason: [f"Annotation/{DOG}"]
  }
  test = sources.get_source(
    "stanford_dogs_masks", "test", tmp_path / "data", **options
  )
  assert test.skipped == {reason: 1}
  assert DOG not in {test[i]["id"] for i in range(len(test))}


def test_dogs_unreadable_annotation_is_named(fake, tmp_path, monkeypatch):
  manual = dogs_with(fake, tmp_path, monkeypatch, (20, "ten", 28, 25))
  with pytest.raises(
    common.InvalidAnnotationError,
    match=rf"^stanford_dogs_masks \(test\): annotation\.tar: Annotation/{DOG}"
    r": cannot be read as a VOC annotation \(could not convert string to "
    r"float: 'ten'\)\. Fix",
  ):
    sources.build("stanford_dogs_masks", tmp_path / "data", manual_dir=manual)


@pytest.mark.parametrize("layout", ["xml", "csv"])
def test_imagenet_val_bad_boxes_are_named_or_counted(
  fake, tmp_path, monkeypatch, layout
):
  val = list(test_data_imagenet.VAL)
  stem, wnid, label, hw, _ = val[1]
  bad = (4, 30, 20, 8) if layout == "xml" else (4, NAN, 20, 30)
  val[1] = (stem, wnid, label, hw, [bad])
  monkeypatch.setattr(test_data_imagenet, "VAL", val)
  manual = test_data_imagenet.write_val(fake, tmp_path / "manual", layout)
  if layout == "xml":
    named = f"ILSVRC2012_bbox_val_v3.tgz: val/{stem}.xml"
    problem = "box 1 of 1 (xmin 4, ymin 30, xmax 20, ymax 8) is inverted "
    problem += "(ymax < ymin)"
    reason = "inverted box"
  else:
    named = f"LOC_val_solution.csv: row {stem}"
    problem = "box 1 of 1 (xmin 4, ymin nan, xmax 20, ymax 30) has a "
    problem += "coordinate that is not a number"
    reason = "non-finite box"
  name = "imagenet2012_val_masks"
  with pytest.raises(common.InvalidAnnotationError) as error:
    sources.build(name, tmp_path / "data", manual_dir=manual)
  assert str(error.value) == f"{name} (validation): {named}: {problem}" + ADVICE
  options = dict(on_bad_annotation="skip")
  sources.build(name, tmp_path / "data", manual_dir=manual, **options)
  src = sources.get_source(name, "validation", tmp_path / "data", **options)
  assert [src[i]["id"] for i in range(len(src))] == [val[0][0]]
  assert src.skipped == {reason: 1}  # not also 'boxes missing'


def test_imagenet_c_skips_every_severity_of_a_bad_box(
  fake, tmp_path, monkeypatch
):
  val = list(test_data_imagenet.VAL)
  stem, wnid, label, hw, _ = val[1]
  val[1] = (stem, wnid, label, hw, [(4, 8, 2, 30)])
  monkeypatch.setattr(test_data_imagenet, "VAL", val)
  manual = test_data_imagenet.write_imagenet_c(
    fake,
    test_data_imagenet.write_val(fake, tmp_path / "manual", "xml"),
    severities=(1, 2),
  )
  options = dict(severities=(1, 2), corruptions=("fog",))
  with pytest.raises(
    common.InvalidAnnotationError,
    match=rf"^imagenet_c_masks \(before_split\): ILSVRC2012_bbox_val_v3\.tgz: "
    rf"val/{stem}\.xml: box 1 of 1 \(xmin 4, ymin 8, xmax 2, ymax 30\) is "
    r"inverted \(xmax < xmin\)\. Fix",
  ):
    sources.build("imagenet_c_masks", tmp_path / "data", manual, **options)
  options["on_bad_annotation"] = "skip"
  sources.build("imagenet_c_masks", tmp_path / "data", manual, **options)
  src = sources.get_source(
    "imagenet_c_masks", "fog", tmp_path / "data", **options
  )
  assert sorted(src[i]["id"] for i in range(len(src))) == [
    f"fog/{s}/{val[0][0]}" for s in (1, 2)
  ]
  assert src.skipped == {"inverted box": 1}


@pytest.mark.parametrize(
  "item, arrays, reason, problem",
  [
    (
      ("ant", 2),
      dict(box_coord=[[30, 6, 11, 41]], obj_contour=test_data_caltech.CONTOUR),
      "inverted box",
      "box_coord [y1, y2, x1, x2] = [30.0, 6.0, 11.0, 41.0]: box 1 of 1 "
      "(xmin 10, ymin 29, xmax 41, ymax 6) is inverted (ymax < ymin)",
    ),
    (
      ("ant", 2),
      dict(box_coord=test_data_caltech.BOX, obj_contour=[[0, NAN], [0, 1]]),
      "non-finite box",
      "obj_contour has a coordinate that is not a number",
    ),
    (
      ("ant", 2),
      dict(box_coord=[[6, 30, NAN, 41]], obj_contour=test_data_caltech.CONTOUR),
      "non-finite box",
      "box_coord [y1, y2, x1, x2] = [6.0, 30.0, nan, 41.0]: box 1 of 1 "
      "(xmin nan, ymin 5, xmax 41, ymax 30) has a coordinate that is not a "
      "number",
    ),
    (
      ("ant", 2),
      dict(box_coord=test_data_caltech.BOX),
      "unreadable annotation",
      "cannot be read ('obj_contour')",
    ),
  ],
  ids=["inverted", "nan_contour", "nan_box", "no_contour"],
)
def test_caltech_bad_annotations_are_named_or_counted(
  fake, tmp_path, item, arrays, reason, problem
):
  manual = test_data_caltech.write_caltech(fake, tmp_path / "manual")
  mat = f"Annotations/{item[0]}/annotation_{item[1]:04d}.mat"
  replace_members(
    manual / "Annotations.tar",
    {mat: test_data_caltech.mat_bytes(**arrays)},
  )
  with pytest.raises(common.InvalidAnnotationError) as error:
    sources.build("caltech101_masks", tmp_path / "data", manual_dir=manual)
  # ant/image_0002 is a training image (study split: positions 0, 5, ...).
  assert str(error.value) == (
    f"caltech101_masks (train): Annotations.tar: {mat}: {problem}" + ADVICE
  )
  options = dict(on_bad_annotation="skip")
  sources.build("caltech101_masks", tmp_path / "data", manual, **options)
  train = sources.get_source(
    "caltech101_masks", "train", tmp_path / "data", **options
  )
  assert train.skipped == {reason: 1}
  assert "ant/image_0002" not in {train[i]["id"] for i in range(len(train))}
  assert (
    caltech.read_annotation(test_data_caltech.mat_bytes(**arrays))[0] is None
  )


def test_cub_bad_box_rows_are_named_or_counted(fake, tmp_path):
  manual = test_data_cub.write_cub(fake, tmp_path / "manual")
  rows = [(i, 2.0, 3.0, 10.0, 8.0) for i, _, _, _ in test_data_cub.IMAGES]
  rows[4] = (5, 2.0, 3.0, -10.0, 8.0)  # negative width: inverted
  text = "".join(" ".join(map(str, r)) + "\n" for r in rows).encode()
  replace_members(
    manual / "CUB_200_2011.tgz",
    {"CUB_200_2011/bounding_boxes.txt": text},
    "w:gz",
  )
  with pytest.raises(common.InvalidAnnotationError) as error:
    sources.build("cub_200_2011", tmp_path / "data", manual_dir=manual)
  assert str(error.value) == (
    "cub_200_2011 (before_split): CUB_200_2011.tgz: bounding_boxes.txt row 5:"
    " box 1 of 1 (xmin 2, ymin 3, xmax -8, ymax 11) is inverted (xmax < xmin)"
    + ADVICE
  )
  options = dict(on_bad_annotation="skip")
  builder = sources.build("cub_200_2011", tmp_path / "data", manual, **options)
  assert builder.info.splits["test"].num_examples == 2
  test = sources.get_source(
    "cub_200_2011", "test", tmp_path / "data", **options
  )
  assert test.skipped == {"inverted box": 1}


def test_box_problem():
  assert common.box_problem(np.zeros((0, 4))) is None
  assert common.box_problem([[1, 1, 1, 1]]) is None  # empty, not inverted
  assert common.box_problem([[0, 0, 2, np.inf]])[0] == "non-finite box"
