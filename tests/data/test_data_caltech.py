"""caltech101_masks on tiny 101_ObjectCategories.tar.gz / Annotations.tar (and the zip wrapper)."""

import io
import zipfile

import numpy as np
from PIL import Image
import pytest
import scipy.io

from rationality_jax.data import preprocess
from rationality_jax.data import sources
from rationality_jax.data.builders import caltech101_masks as caltech
from rationality_jax.data.builders import common

IMAGES = {
  "Faces": 3,
  "Faces_easy": 1,
  "airplanes": 2,
  "ant": 3,
  "BACKGROUND_Google": 1,
}
BOX = np.array([[6, 30, 11, 41]], np.float64)  # y1 y2 x1 x2, 1-based
CONTOUR = np.array(
  [[0, 30, 0], [0, 0, 24]], np.float64
)  # triangle (10,5) (40,5) (10,29)


def mat_bytes(**arrays):
  buf = io.BytesIO()
  scipy.io.savemat(buf, arrays)
  return buf.getvalue()


def write_caltech(
  fake,
  root,
  zipped=False,
  unannotated=(),
  orphans=(),
  folder="101_ObjectCategories",
  images_name="101_ObjectCategories.tar.gz",
):
  """`unannotated`: (class, number) without annotation; `orphans`:
  annotation files (folder, number) without an image."""
  root.mkdir()
  images, annotations = {}, {}
  for cls, n in IMAGES.items():
    for i in range(1, n + 1):
      images[f"{folder}/{cls}/image_{i:04d}.jpg"] = fake.jpeg(
        fake.solid(40, 50, i)
      )
      if cls != "BACKGROUND_Google" and (cls, i) not in unannotated:
        annotation = caltech.ANNOTATION_FOLDERS.get(cls, cls)
        annotations[f"Annotations/{annotation}/annotation_{i:04d}.mat"] = (
          mat_bytes(box_coord=BOX, obj_contour=CONTOUR)
        )
  for annotation, i in orphans:
    annotations[f"Annotations/{annotation}/annotation_{i:04d}.mat"] = mat_bytes(
      box_coord=BOX, obj_contour=CONTOUR
    )
  # A grayscale image, as Caltech-101 has some: stored converted to RGB.
  images[f"{folder}/ant/image_0002.jpg"] = fake.jpeg(
    fake.solid(40, 50, 9)[..., 0]
  )
  fake.write_tar(root / images_name, images, "w:gz")
  fake.write_tar(root / "Annotations.tar", annotations, "w")
  if zipped:
    with zipfile.ZipFile(root / "caltech-101.zip", "w") as zf:
      for name in (images_name, "Annotations.tar"):
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
  # Annotated order: Faces 1-3, Faces_easy 1, airplanes 1-2, ant 1-3; test =
  # positions 0 and 5.
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
    "ant/image_0003",
  ]
  assert test.skipped == {} and train.skipped == {}
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
    # Per class round(3/2) = 2, round(1/2) = 0, round(2/2) = 1, round(3/2) = 2.
    assert b.info.splits["test"].num_examples == 5
    ids.append(sorted(s[i]["id"] for i in range(len(s))))
  assert ids[0] == ids[1]
  assert sum(i.startswith("Faces/") for i in ids[0]) == 2
  assert sum(i.startswith("airplanes/") for i in ids[0]) == 1


def test_caltech_missing_archives_are_named(tmp_path):
  (tmp_path / "m").mkdir()
  (tmp_path / "m" / "Annotations.tar").write_bytes(b"")
  with pytest.raises(
    FileNotFoundError,
    match=r"caltech-101\.zip or 101_ObjectCategories\.tar\.gz or "
    r"101_ObjectCategories\.tgz or 101_ObjectCategories\.tar: "
    r"https://data\.caltech\.edu",
  ):
    sources.build(
      "caltech101_masks", tmp_path / "data", manual_dir=tmp_path / "m"
    )


def test_caltech_release_split_contour_and_label_space(fake, tmp_path):
  """utils/caltech101_dataset.py: ImageFolder over all 102 folders (labels
  shift by one), test positions 1, 1 + step, ..., contours truncated and
  offset by the 1-based box corner, filled by cv2.fillPoly."""
  manual = write_caltech(fake, tmp_path / "manual")
  options = dict(
    split_scheme="release", contour="release", background_class=True
  )
  builder = sources.build(
    "caltech101_masks", tmp_path / "data", manual_dir=manual, **options
  )
  assert builder.info.features["label"].names == [
    "BACKGROUND_Google",
    "Faces",
    "Faces_easy",
    "airplanes",
    "ant",
  ]
  # 9 annotated images: int(9 * 0.2) = 1, step 9: position 1 only.
  test = sources.get_source(
    "caltech101_masks", "test", tmp_path / "data", **options
  )
  assert [test[i]["id"] for i in range(len(test))] == ["Faces/image_0002"]
  ex = test[0]
  assert ex["label"] == 1
  # Vertices (0 + 11, 0 + 6), (30 + 11, 6), (11, 24 + 6); cv2.fillPoly fills
  # 403 pixels (OpenCV), ours 397 one pixel up and left; 342 shared.
  ours = caltech.contour_mask(40, 50, BOX, CONTOUR)
  assert int(ex["mask"].sum()) == 403 and int(ours.sum()) == 397
  assert int((ex["mask"] & ours).sum()) == 342
  assert ex["mask"][6, 11] == 1 and ex["mask"][5, 10] == 0 and ours[5, 10] == 1
  np.testing.assert_allclose(ex["boxes"], [[10, 5, 41, 30]])


def test_caltech_release_masks_are_resized_bilinearly(fake, tmp_path):
  manual = write_caltech(fake, tmp_path / "manual")
  sources.build("caltech101_masks", tmp_path / "data", manual_dir=manual)
  test = sources.get_source("caltech101_masks", "test", tmp_path / "data")
  ex = test[0]
  spec = preprocess.study_spec("caltech101_masks", mask_order="release")
  out = preprocess.parse(spec)(ex)["mask"]
  # torchvision Resize(224) of the PIL mask: 40 x 50 -> 224 x 280, bilinear;
  # CenterCrop(224): left 28.
  im = Image.fromarray(ex["mask"]).resize((280, 224), Image.BILINEAR)
  np.testing.assert_array_equal(out, np.asarray(im)[:, 28:252])


def test_caltech_unannotated_images_and_orphan_annotations(fake, tmp_path):
  manual = write_caltech(
    fake,
    tmp_path / "manual",
    unannotated={("ant", 3)},
    orphans={("Faces_2", 7)},
  )
  with pytest.raises(
    FileNotFoundError, match=r"1 x annotation missing.*'ant/image_0003'"
  ):
    sources.build("caltech101_masks", tmp_path / "data", manual_dir=manual)
  sources.build(
    "caltech101_masks", tmp_path / "data", manual_dir=manual, on_missing="skip"
  )
  for split in ("train", "test"):
    src = sources.get_source(
      "caltech101_masks", split, tmp_path / "data", on_missing="skip"
    )
    assert src.skipped == {"annotation missing": 1, "image missing": 1}
    assert "ant/image_0003" not in {src[i]["id"] for i in range(len(src))}


def test_caltech_archive_names_and_layout(fake, tmp_path):
  manual = write_caltech(
    fake, tmp_path / "manual", images_name="101_ObjectCategories.tgz"
  )
  builder = sources.build(
    "caltech101_masks", tmp_path / "data", manual_dir=manual
  )
  assert builder.info.splits["test"].num_examples == 2
  manual = write_caltech(fake, tmp_path / "other", folder="Caltech101")
  with pytest.raises(
    common.ArchiveLayoutError,
    match=r"101_ObjectCategories\.tar\.gz: no member is named like "
    r"101_ObjectCategories/<class>/image_NNNN\.jpg; its 10 files include "
    r"\['Caltech101/Faces/image_0001\.jpg'",
  ):
    sources.build("caltech101_masks", tmp_path / "data2", manual_dir=manual)
