"""cub_200_2011 on a tiny CUB_200_2011.tgz + segmentations.tgz."""

import numpy as np
import pytest

from rationality_jax.data import sources
from rationality_jax.data.builders import common

CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
IMAGES = [  # (id, class, file, is_train)
  (1, 1, "Black_Footed_Albatross_0046_18.jpg", 1),
  (2, 1, "Black_Footed_Albatross_0009_34.jpg", 0),
  (3, 2, "Laysan_Albatross_0002_1027.jpg", 1),
  (4, 2, "Laysan_Albatross_0003_1033.jpg", 0),
  (5, 2, "Laysan_Albatross_0082_524.jpg", 0),
]


def write_cub(fake, root, broken=None):
  root.mkdir(exist_ok=True)

  def txt(rows):
    return ("\n".join(" ".join(map(str, r)) for r in rows) + "\n").encode()

  members = {
    "CUB_200_2011/classes.txt": txt(
      [(i + 1, c) for i, c in enumerate(CLASSES)]
    ),
    "CUB_200_2011/images.txt": txt(
      [(i, f"{CLASSES[c - 1]}/{f}") for i, c, f, _ in IMAGES]
    ),
    "CUB_200_2011/image_class_labels.txt": txt(
      [(i, c) for i, c, _, _ in IMAGES]
    ),
    "CUB_200_2011/train_test_split.txt": txt([(i, t) for i, _, _, t in IMAGES]),
    "CUB_200_2011/bounding_boxes.txt": txt(
      [(i, 2.0, 3.0, 10.0, 8.0) for i, _, _, _ in IMAGES]
    ),
    "attributes.txt": b"1 has_bill_shape::curved\n",
  }
  segs = {}
  for i, c, f, _ in IMAGES:
    rel = f"{CLASSES[c - 1]}/{f}"
    data = fake.jpeg(fake.solid(20, 30, i))
    members[f"CUB_200_2011/images/{rel}"] = (
      b"not a jpeg" if rel == broken else data
    )
    seg = np.zeros((20, 30), np.uint8)
    seg[4:10, 5:15] = 255  # object
    seg[10:12, 5:15] = 128  # soft border: not object
    seg[0, 0] = 254
    segs[f"segmentations/{rel[:-4]}.png"] = fake.png(seg)
  fake.write_tar(root / "CUB_200_2011.tgz", members, "w:gz")
  fake.write_tar(root / "segmentations.tgz", segs, "w:gz")
  return root


def test_cub_labels_splits_and_binarised_masks(fake, tmp_path):
  manual = write_cub(fake, tmp_path / "manual")
  builder = sources.build("cub_200_2011", tmp_path / "data", manual_dir=manual)
  assert builder.info.splits["train"].num_examples == 2
  assert builder.info.splits["test"].num_examples == 3
  assert builder.info.features["label"].names == CLASSES
  test = sources.get_source("cub_200_2011", "test", tmp_path / "data")
  by_id = {test[i]["id"]: test[i] for i in range(len(test))}
  assert set(by_id) == {
    "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34",
    "002.Laysan_Albatross/Laysan_Albatross_0003_1033",
    "002.Laysan_Albatross/Laysan_Albatross_0082_524",
  }
  ex = by_id["002.Laysan_Albatross/Laysan_Albatross_0082_524"]
  assert ex["label"] == 1
  assert ex["image"].shape == (20, 30, 3) and ex["mask"].shape == (20, 30)
  assert ex["mask"][4, 5] == 1 and ex["mask"][9, 14] == 1
  assert (
    ex["mask"][10, 5] == 0 and ex["mask"][0, 0] == 0 and ex["mask"][4, 15] == 0
  )
  assert ex["mask"].sum() == 60
  np.testing.assert_allclose(ex["boxes"], [[2, 3, 12, 11]])
  # The stored JPEG is the original one, byte for byte: pixels decode identically.
  train = sources.get_source("cub_200_2011", "train", tmp_path / "data")
  assert sorted(train[i]["label"] for i in range(2)) == [0, 1]
  # A prepared dataset is reused, never rewritten: a later build with broken
  # archives leaves it intact.
  (manual / "CUB_200_2011.tgz").write_bytes(b"truncated")
  sources.build("cub_200_2011", tmp_path / "data", manual_dir=manual)
  again = sources.get_source("cub_200_2011", "test", tmp_path / "data")
  np.testing.assert_array_equal(
    {again[i]["id"]: again[i] for i in range(3)}[ex["id"]]["mask"], ex["mask"]
  )


def test_cub_missing_and_broken_files(fake, tmp_path):
  with pytest.raises(
    common.ManualFilesMissingError,
    match=r"CUB_200_2011\.tgz.*\n.*segmentations\.tgz",
  ):
    sources.build(
      "cub_200_2011", tmp_path / "data", manual_dir=tmp_path / "nothing"
    )
  manual = write_cub(
    fake,
    tmp_path / "manual",
    broken="002.Laysan_Albatross/Laysan_Albatross_0082_524.jpg",
  )
  with pytest.raises(
    common.UnreadableImageError, match=r"Laysan_Albatross_0082_524\.jpg"
  ):
    sources.build("cub_200_2011", tmp_path / "data", manual_dir=manual)
  # TFDS wrote into a temporary directory and removed it: no partial dataset.
  assert not (tmp_path / "data" / "cub_200_2011" / "default" / "1.0.0").exists()
  assert not [
    p for p in (tmp_path / "data").rglob("*") if "incomplete" in p.name
  ]
  builder = sources.build(
    "cub_200_2011", tmp_path / "data", manual_dir=manual, on_bad_image="skip"
  )
  assert builder.info.splits["test"].num_examples == 2
  skipped = [
    "CUB_200_2011/images/002.Laysan_Albatross/Laysan_Albatross_0082_524.jpg"
  ]
  assert builder.info.metadata["skipped_images"] == {
    "train": [],
    "test": skipped,
  }
  # The count is stored with the dataset, not only on the building object.
  reloaded = sources.get_builder(
    "cub_200_2011", tmp_path / "data", on_bad_image="skip"
  )
  assert reloaded.info.metadata["skipped_images"]["test"] == skipped
