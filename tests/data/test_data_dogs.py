"""stanford_dogs_masks on tiny images.tar / annotation.tar / lists.tar."""

import io

import numpy as np
from PIL import Image
import pytest
import scipy.io

from rationality_jax.data import preprocess
from rationality_jax.data import sources
from rationality_jax.data.builders import common

FOLDERS = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]
TRAIN = [
  ("n02085620-Chihuahua/n02085620_5927", 1),
  ("n02085782-Japanese_spaniel/n02085782_2", 2),
]
TEST = [
  ("n02085620-Chihuahua/n02085620_10074", 1),
  ("n02085782-Japanese_spaniel/n02085782_17", 2),
]
BOXES = {  # two dogs in one image, one elsewhere
  "n02085620-Chihuahua/n02085620_10074": [(2, 3, 10, 12), (20, 15, 28, 25)],
}


def voc_xml(w, h, boxes):
  objects = "".join(
    f"<object><name>dog</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
    f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
    for x0, y0, x1, y1 in boxes
  )
  return (
    "<annotation><folder>02085620</folder><filename>x</filename>"
    "<source><database>ImageNet database</database></source>"
    f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>"
    f"<segment>0</segment>{objects}</annotation>"
  ).encode()


def list_mat(rows):
  buf = io.BytesIO()
  cell = lambda xs: np.array([[np.array([x])] for x in xs], dtype=object)  # noqa: E731
  scipy.io.savemat(
    buf,
    {
      "file_list": cell([f + ".jpg" for f, _ in rows]),
      "annotation_list": cell([f for f, _ in rows]),
      "labels": np.array([[lab] for _, lab in rows], np.float64),
    },
  )
  return buf.getvalue()


def write_dogs(fake, root, drop=(), drop_annotations=()):
  root.mkdir()
  images, annotations = {}, {}
  for i, (f, _) in enumerate(TRAIN + TEST):
    if f not in drop:
      images[f"Images/{f}.jpg"] = fake.jpeg(fake.solid(30, 40, i))
    if f not in drop_annotations:
      annotations[f"Annotation/{f}"] = voc_xml(
        40, 30, BOXES.get(f, [(5, 5, 15, 15)])
      )
  fake.write_tar(root / "images.tar", images)
  fake.write_tar(root / "annotation.tar", annotations)
  fake.write_tar(
    root / "lists.tar",
    {
      "file_list.mat": list_mat(TRAIN + TEST),
      "train_list.mat": list_mat(TRAIN),
      "test_list.mat": list_mat(TEST),
    },
  )
  return root


@pytest.mark.parametrize("boxes", ["all", "last"])
def test_dogs_splits_labels_and_box_masks(fake, tmp_path, boxes):
  manual = write_dogs(fake, tmp_path / "manual")
  builder = sources.build(
    "stanford_dogs_masks", tmp_path / "data", manual_dir=manual, boxes=boxes
  )
  assert builder.info.features["label"].names == FOLDERS
  assert (
    builder.info.splits["train"].num_examples == 2
    and builder.info.splits["test"].num_examples == 2
  )
  test = sources.get_source(
    "stanford_dogs_masks", "test", tmp_path / "data", boxes=boxes
  )
  by_id = {test[i]["id"]: test[i] for i in range(len(test))}
  assert {k: int(v["label"]) for k, v in by_id.items()} == {
    f: lab - 1 for f, lab in TEST
  }
  ex = by_id["n02085620-Chihuahua/n02085620_10074"]
  m = ex["mask"]
  np.testing.assert_allclose(ex["boxes"], [[2, 3, 10, 12], [20, 15, 28, 25]])
  # Second (last) box: rows 15..24, columns 20..27.
  assert (
    m[15, 20] == 1
    and m[24, 27] == 1
    and m[25, 27] == 0
    and m[24, 28] == 0
    and m[14, 20] == 0
  )
  # First box: rows 3..11, columns 2..9, only when filling all boxes.
  assert m[3, 2] == (1 if boxes == "all" else 0) and m[11, 9] == (
    1 if boxes == "all" else 0
  )
  assert m[12, 9] == 0 and m[11, 10] == 0
  assert m.sum() == (72 + 80 if boxes == "all" else 80)


def test_dogs_release_masks_per_sample(fake, tmp_path):
  """utils/Stanford_Dogs_dataset.py: the last box, cv2.rectangle (corners
  included), the 0/1 mask resized by the default bilinear Resize(224)."""
  manual = write_dogs(fake, tmp_path / "manual")
  options = dict(boxes="last", box_fill="inclusive")
  sources.build(
    "stanford_dogs_masks", tmp_path / "data", manual_dir=manual, **options
  )
  test = sources.get_source(
    "stanford_dogs_masks", "test", tmp_path / "data", **options
  )
  ex = {test[i]["id"]: test[i] for i in range(len(test))}[
    "n02085620-Chihuahua/n02085620_10074"
  ]
  drawn = np.zeros((30, 40), np.uint8)
  drawn[15:26, 20:29] = 1  # (20, 15)..(28, 25), both corners included
  np.testing.assert_array_equal(ex["mask"], drawn)
  # torchvision Resize(224) on the PIL mask: 30 x 40 -> 224 x int(224 * 40 /
  # 30) = 298, bilinear; CenterCrop(224): left int(round(37.0)) = 37.
  resized = Image.fromarray(drawn).resize((298, 224), Image.BILINEAR)
  reference = np.asarray(resized)[:, 37 : 37 + 224]
  spec = preprocess.parse(
    preprocess.study_spec("stanford_dogs_masks", mask_order="release")
  )
  out = spec(ex)["mask"]
  np.testing.assert_array_equal(out, reference)
  # 5,494 pixels (checked once against torchvision itself); the default
  # build (box edges, every box) gives this dog 72 + 80 source pixels, not
  # the 99 of the last box with its corners included.
  assert int(out.sum()) == 5494 and int(drawn.sum()) == 99


def test_dogs_images_and_annotations_listed_but_absent(fake, tmp_path):
  manual = write_dogs(
    fake,
    tmp_path / "manual",
    drop={"n02085782-Japanese_spaniel/n02085782_17"},
    drop_annotations={"n02085620-Chihuahua/n02085620_5927"},
  )
  with pytest.raises(
    common.ManualFilesMissingError,
    match=r"\(train\): 1 x annotation missing.*n02085620_5927",
  ):
    sources.build("stanford_dogs_masks", tmp_path / "data", manual_dir=manual)
  sources.build(
    "stanford_dogs_masks",
    tmp_path / "data",
    manual_dir=manual,
    on_missing="skip",
  )
  skipped = {
    split: sources.get_source(
      "stanford_dogs_masks", split, tmp_path / "data", on_missing="skip"
    ).skipped
    for split in ("train", "test")
  }
  assert skipped == {
    "train": {"annotation missing": 1},
    "test": {"image missing": 1},
  }
