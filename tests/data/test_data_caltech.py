"""caltech101_masks on tiny 101_ObjectCategories.tar.gz / Annotations.tar (and the zip wrapper)."""

import io
import zipfile

import numpy as np
import pytest
import scipy.io

from rationality_jax.data import sources
from rationality_jax.data.builders import caltech101_masks as caltech

IMAGES = {
  "Faces": 3,
  "Faces_easy": 1,
  "airplanes": 2,
  "ant": 3,
  "BACKGROUND_Google": 1,
}
UNANNOTATED = {("ant", 3)}
BOX = np.array([[6, 30, 11, 41]], np.float64)  # y1 y2 x1 x2, 1-based
CONTOUR = np.array(
  [[0, 30, 0], [0, 0, 24]], np.float64
)  # triangle (10,5) (40,5) (10,29)


def mat_bytes(**arrays):
  buf = io.BytesIO()
  scipy.io.savemat(buf, arrays)
  return buf.getvalue()


def write_caltech(fake, root, zipped):
  root.mkdir()
  images, annotations = {}, {}
  for cls, n in IMAGES.items():
    for i in range(1, n + 1):
      images[f"101_ObjectCategories/{cls}/image_{i:04d}.jpg"] = fake.jpeg(
        fake.solid(40, 50, i)
      )
      if cls != "BACKGROUND_Google" and (cls, i) not in UNANNOTATED:
        folder = caltech.ANNOTATION_FOLDERS.get(cls, cls)
        annotations[f"Annotations/{folder}/annotation_{i:04d}.mat"] = mat_bytes(
          box_coord=BOX, obj_contour=CONTOUR
        )
  # A grayscale image, as Caltech-101 has some: stored converted to RGB.
  images["101_ObjectCategories/ant/image_0002.jpg"] = fake.jpeg(
    fake.solid(40, 50, 9)[..., 0]
  )
  fake.write_tar(root / "101_ObjectCategories.tar.gz", images, "w:gz")
  fake.write_tar(root / "Annotations.tar", annotations, "w")
  if zipped:
    with zipfile.ZipFile(root / "caltech-101.zip", "w") as zf:
      for name in ("101_ObjectCategories.tar.gz", "Annotations.tar"):
        zf.writestr(
          f"__MACOSX/caltech-101/._{name}", b"AppleDouble resource fork"
        )
        zf.write(root / name, f"caltech-101/{name}")
        (root / name).unlink()
  return root


@pytest.mark.parametrize("zipped", [False, True])
def test_caltech_study_split_labels_and_polygon(fake, tmp_path, zipped):
  manual = write_caltech(fake, tmp_path / "manual", zipped)
  builder = sources.build(
    "caltech101_masks", tmp_path / "data", manual_dir=manual
  )
  assert builder.info.features["label"].names == [
    "Faces",
    "Faces_easy",
    "airplanes",
    "ant",
  ]
  # Annotated order: Faces 1-3, Faces_easy 1, airplanes 1-2, ant 1-2; test = positions 0 and 5.
  test = sources.get_source("caltech101_masks", "test", tmp_path / "data")
  train = sources.get_source("caltech101_masks", "train", tmp_path / "data")
  assert sorted(test[i]["id"] for i in range(len(test))) == [
    "Faces/image_0001",
    "airplanes/image_0002",
  ]
  train_ids = sorted(train[i]["id"] for i in range(len(train)))
  assert train_ids == [
    "Faces/image_0002",
    "Faces/image_0003",
    "Faces_easy/image_0001",
    "airplanes/image_0001",
    "ant/image_0001",
    "ant/image_0002",
  ]
  ex = {train[i]["id"]: train[i] for i in range(len(train))}["ant/image_0002"]
  assert ex["label"] == 3 and ex["image"].shape == (40, 50, 3)
  m = ex["mask"]
  assert (
    m[8, 12] == 1 and m[5, 10] == 1 and m[6, 38] == 1
  )  # inside and on the vertices' edge
  assert (
    m[27, 38] == 0 and m[4, 10] == 0 and m[20, 8] == 0
  )  # outside the triangle
  assert 300 < m.sum() < 420  # area 30 * 24 / 2 = 360 (+ outline)
  np.testing.assert_allclose(ex["boxes"], [[10, 5, 41, 30]])


def test_caltech_seeded_split_is_stratified_and_reproducible(fake, tmp_path):
  manual = write_caltech(fake, tmp_path / "manual", False)
  ids = []
  for seed in (0, 0, 1):
    b = sources.build(
      "caltech101_masks",
      tmp_path / f"data{len(ids)}",
      manual_dir=manual,
      split_scheme="seeded",
      split_seed=seed,
      test_fraction=0.5,
    )
    s = sources.get_source(
      "caltech101_masks",
      "test",
      tmp_path / f"data{len(ids)}",
      split_scheme="seeded",
      split_seed=seed,
      test_fraction=0.5,
    )
    assert (
      b.info.splits["test"].num_examples == 4
    )  # per class round(3/2)=2, round(1/2)=0, round(2/2)=1, 1
    ids.append(sorted(s[i]["id"] for i in range(len(s))))
  assert ids[0] == ids[1]
  assert sum(i.startswith("Faces/") for i in ids[0]) == 2
  assert sum(i.startswith("airplanes/") for i in ids[0]) == 1


def test_caltech_missing_archives_are_named(tmp_path):
  (tmp_path / "m").mkdir()
  (tmp_path / "m" / "Annotations.tar").write_bytes(b"")
  with pytest.raises(
    FileNotFoundError,
    match=r"caltech-101\.zip or 101_ObjectCategories\.tar\.gz: https://data\.caltech\.edu",
  ):
    sources.build(
      "caltech101_masks", tmp_path / "data", manual_dir=tmp_path / "m"
    )
