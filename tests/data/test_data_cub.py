"""cub_200_2011 on a tiny CUB_200_2011.tgz + segmentations.tgz."""

import numpy as np
from PIL import Image
import pytest

from rationality_jax.data import preprocess
from rationality_jax.data import sources
from rationality_jax.data.builders import common

CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
IMAGES = [  # (id, class, file, is_train); images.txt order is not sorted order
  (1, 1, "Black_Footed_Albatross_0046_18.jpg", 1),
  (2, 1, "Black_Footed_Albatross_0009_34.jpg", 0),
  (3, 2, "Laysan_Albatross_0002_1027.jpg", 1),
  (4, 2, "Laysan_Albatross_0003_1033.jpg", 0),
  (5, 2, "Laysan_Albatross_0082_524.jpg", 0),
]


def soft_segmentation(h=20, w=30):
  seg = np.zeros((h, w), np.uint8)
  seg[4:10, 5:15] = 255  # object
  seg[10:12, 5:15] = 128  # soft border: not object
  seg[0, 0] = 254
  return seg


def write_cub(
  fake,
  root,
  broken=None,
  drop=(),
  drop_segs=(),
  labels=None,
  names=("CUB_200_2011.tgz", "segmentations.tgz"),
  images=IMAGES,
  segmentation=lambda image_id: soft_segmentation(),
  image=None,
  classes=CLASSES,
  encode=None,
):
  """Writes the two archives; `drop`/`drop_segs` leave files out, `labels`
  overrides image_class_labels.txt ({id: 1-based class}); `classes` are the
  class folders (1-based in `images`); `encode(array)` makes an image's
  bytes (default a JPEG of quality 100)."""
  root.mkdir(exist_ok=True)

  def txt(rows):
    return ("\n".join(" ".join(map(str, r)) for r in rows) + "\n").encode()

  labels = labels or {}
  members = {
    "CUB_200_2011/classes.txt": txt(
      [(i + 1, c) for i, c in enumerate(classes)]
    ),
    "CUB_200_2011/images.txt": txt(
      [(i, f"{classes[c - 1]}/{f}") for i, c, f, _ in images]
    ),
    "CUB_200_2011/image_class_labels.txt": txt(
      [(i, labels.get(i, c)) for i, c, _, _ in images]
    ),
    "CUB_200_2011/train_test_split.txt": txt([(i, t) for i, _, _, t in images]),
    "CUB_200_2011/bounding_boxes.txt": txt(
      [(i, 2.0, 3.0, 10.0, 8.0) for i, _, _, _ in images]
    ),
    "attributes.txt": b"1 has_bill_shape::curved\n",
  }
  segs = {}
  for i, c, f, _ in images:
    rel = f"{classes[c - 1]}/{f}"
    seg = segmentation(i)
    encode = encode or (lambda a: fake.jpeg(a, quality=100))
    data = encode(image(i) if image else fake.solid(*seg.shape, i))
    if rel not in drop:
      members[f"CUB_200_2011/images/{rel}"] = (
        b"not a jpeg" if rel == broken else data
      )
    if rel not in drop_segs:
      segs[f"segmentations/{rel[:-4]}.png"] = fake.png(seg)
  fake.write_tar(root / names[0], members, "w:gz")
  fake.write_tar(root / names[1], segs, "w:gz")
  return root


def by_id(source):
  return {source[i]["id"]: source[i] for i in range(len(source))}


def test_cub_labels_splits_and_binarised_masks(fake, tmp_path):
  manual = write_cub(fake, tmp_path / "manual")
  builder = sources.build("cub_200_2011", tmp_path / "data", manual_dir=manual)
  assert builder.info.splits["train"].num_examples == 2
  assert builder.info.splits["test"].num_examples == 3
  assert builder.info.features["label"].names == CLASSES
  test = sources.get_source("cub_200_2011", "test", tmp_path / "data")
  assert test.skipped == {}
  examples = by_id(test)
  assert set(examples) == {
    "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34",
    "002.Laysan_Albatross/Laysan_Albatross_0003_1033",
    "002.Laysan_Albatross/Laysan_Albatross_0082_524",
  }
  ex = examples["002.Laysan_Albatross/Laysan_Albatross_0082_524"]
  assert ex["label"] == 1
  assert ex["image"].shape == (20, 30, 3) and ex["mask"].shape == (20, 30)
  assert ex["mask"][4, 5] == 1 and ex["mask"][9, 14] == 1
  assert (
    ex["mask"][10, 5] == 0 and ex["mask"][0, 0] == 0 and ex["mask"][4, 15] == 0
  )
  assert ex["mask"].sum() == 60
  # The soft segmentation is kept unchanged beside the binary mask.
  np.testing.assert_array_equal(ex["soft_mask"], soft_segmentation())
  np.testing.assert_allclose(ex["boxes"], [[2, 3, 12, 11]])
  train = sources.get_source("cub_200_2011", "train", tmp_path / "data")
  assert sorted(train[i]["label"] for i in range(2)) == [0, 1]
  # A prepared dataset is reused, never rewritten: a later build with broken
  # archives leaves it intact.
  (manual / "CUB_200_2011.tgz").write_bytes(b"truncated")
  sources.build("cub_200_2011", tmp_path / "data", manual_dir=manual)
  again = by_id(sources.get_source("cub_200_2011", "test", tmp_path / "data"))
  np.testing.assert_array_equal(again[ex["id"]]["mask"], ex["mask"])


def test_cub_split_order_release_applies_flags_by_sorted_position(
  fake, tmp_path
):
  # Sorted order: A/0009 (id 2), A/0046 (id 1), L/0002, L/0003, L/0082; the
  # flags by line (1, 0, 1, 0, 0) make A/0046 test and A/0009 train.
  manual = write_cub(fake, tmp_path / "manual")
  ids = {}
  for order in ("official", "release"):
    sources.build(
      "cub_200_2011", tmp_path / "data", manual_dir=manual, split_order=order
    )
    for split in ("train", "test"):
      src = sources.get_source(
        "cub_200_2011", split, tmp_path / "data", split_order=order
      )
      ids[order, split] = sorted(by_id(src))
  albatross = "001.Black_footed_Albatross/Black_Footed_Albatross_"
  laysan = "002.Laysan_Albatross/Laysan_Albatross_"
  assert ids["official", "test"] == [
    albatross + "0009_34",
    laysan + "0003_1033",
    laysan + "0082_524",
  ]
  assert ids["release", "test"] == [
    albatross + "0046_18",
    laysan + "0003_1033",
    laysan + "0082_524",
  ]
  assert ids["release", "train"] == [
    albatross + "0009_34",
    laysan + "0002_1027",
  ]


def test_cub_missing_and_broken_files(fake, tmp_path):
  with pytest.raises(
    common.ManualFilesMissingError,
    match=r"CUB_200_2011\.tgz or CUB_200_2011\.tar\.gz or CUB_200_2011\.tar:"
    r".*\n.*segmentations\.tgz",
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
  assert not (tmp_path / "data" / "cub_200_2011" / "default" / "1.1.0").exists()
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
  assert builder.info.metadata["skipped"] == {
    "train": {},
    "test": {"unreadable image": skipped},
  }
  # The count is stored with the dataset, not only on the building object.
  reloaded = sources.get_source(
    "cub_200_2011", "test", tmp_path / "data", on_bad_image="skip"
  )
  assert reloaded.skipped == {"unreadable image": 1}
  assert (
    sources.get_source(
      "cub_200_2011", "train", tmp_path / "data", on_bad_image="skip"
    ).skipped
    == {}
  )


def test_cub_images_and_segmentations_listed_but_absent(fake, tmp_path):
  manual = write_cub(
    fake,
    tmp_path / "manual",
    drop={"002.Laysan_Albatross/Laysan_Albatross_0003_1033.jpg"},
    drop_segs={"001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"},
  )
  with pytest.raises(
    common.ManualFilesMissingError,
    match=r"\(train\): 1 x segmentation missing.*Black_Footed_Albatross_0046_18",
  ):
    sources.build("cub_200_2011", tmp_path / "data", manual_dir=manual)
  builder = sources.build(
    "cub_200_2011", tmp_path / "data", manual_dir=manual, on_missing="skip"
  )
  assert builder.info.splits["train"].num_examples == 1
  assert builder.info.splits["test"].num_examples == 2
  get = lambda split: sources.get_source(  # noqa: E731
    "cub_200_2011", split, tmp_path / "data", on_missing="skip"
  )
  assert get("train").skipped == {"segmentation missing": 1}
  assert get("test").skipped == {"image missing": 1}
  assert builder.info.metadata["skipped"]["test"] == {
    "image missing": ["002.Laysan_Albatross/Laysan_Albatross_0003_1033.jpg"]
  }


def test_cub_accepts_tar_gz_names_and_names_a_wrong_layout(fake, tmp_path):
  manual = write_cub(
    fake,
    tmp_path / "manual",
    names=("CUB_200_2011.tar.gz", "segmentations.tar.gz"),
  )
  builder = sources.build("cub_200_2011", tmp_path / "data", manual_dir=manual)
  assert builder.info.splits["test"].num_examples == 3
  # Segmentations packed under another folder name: no member matches.
  segs = {
    f"masks/{CLASSES[c - 1]}/{f[:-4]}.png": fake.png(soft_segmentation())
    for _, c, f, _ in IMAGES
  }
  fake.write_tar(manual / "segmentations.tar.gz", segs, "w:gz")
  with pytest.raises(
    common.ArchiveLayoutError,
    match=r"segmentations\.tar\.gz: no member is named like "
    r"segmentations/<class>/<image>\.png; its 5 files include "
    r"\['masks/001\.Black_footed_Albatross/",
  ):
    sources.build("cub_200_2011", tmp_path / "data2", manual_dir=manual)


def test_a_split_left_empty_says_what_was_skipped(fake, tmp_path):
  images = [(i, c, f, 1 if i == 1 else 0) for i, c, f, _ in IMAGES]
  manual = write_cub(
    fake,
    tmp_path / "manual",
    images=images[:2],
    broken="001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg",
  )
  with pytest.raises(
    common.InvalidExampleError,
    match=r"the test split has no examples; left out by the skip policies: "
    r"\{'unreadable image': 1\}",
  ):
    sources.build(
      "cub_200_2011", tmp_path / "data", manual_dir=manual, on_bad_image="skip"
    )


def test_label_out_of_range_is_one_short_error(fake, tmp_path):
  manual = write_cub(fake, tmp_path / "manual", labels={5: 3})
  with pytest.raises(common.InvalidExampleError) as err:
    sources.build("cub_200_2011", tmp_path / "data", manual_dir=manual)
  message = str(err.value)
  assert "'002.Laysan_Albatross/Laysan_Albatross_0082_524'" in message
  assert "has label 2, but there are 2 classes (labels 0..1)" in message
  # No example dump (TFDS prints the whole example, image bytes included).
  assert len(message) < 300 and "\\x" not in message and "JFIF" not in message


def _tv_resize(im, size):
  """torchvision Resize(size) on a PIL image, as documented: the short side
  becomes `size`, the long side int(size * long / short), PIL bilinear."""
  w, h = im.size
  if w <= h:
    return im.resize((size, int(size * h / w)), Image.BILINEAR)
  return im.resize((int(size * w / h), size), Image.BILINEAR)


def _tv_center_crop(im, size):
  """torchvision CenterCrop(size) on a PIL image: offsets round((H - h) / 2)."""
  w, h = im.size
  top, left = round((h - size) / 2.0), round((w - size) / 2.0)
  return im.crop((left, top, left + size, top + size))


def release_mask(seg):
  """utils/CUB_dataset.py + clip_zs_flcp_cub.py: ImageFolder loads the PNG
  as RGB; Resize(256), CenterCrop(224), ToTensor (x / 255, float32); the
  script averages the channels and casts to uint8."""
  rgb = Image.fromarray(seg).convert("RGB")
  cropped = _tv_center_crop(_tv_resize(rgb, 256), 224)
  tensor = np.asarray(cropped).astype(np.float32) / 255
  return np.mean(tensor, axis=2).astype(np.uint8)


def our_mask(seg):
  """(seg == 255) at full size, then nearest resize and the same crop."""
  im = Image.fromarray((seg == 255).astype(np.uint8))
  w, h = im.size
  size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
  return np.asarray(_tv_center_crop(im.resize(size, Image.NEAREST), 224))


def test_release_soft_mask_arithmetic_is_a_threshold_at_255():
  values = np.arange(256, dtype=np.uint8)[:, None].repeat(3, 1)  # RGB rows
  cast = np.mean(values.astype(np.float32) / 255, axis=1).astype(np.uint8)
  np.testing.assert_array_equal(cast, (np.arange(256) == 255).astype(np.uint8))
  out = preprocess.parse("mask_from_soft(255)")({"soft_mask": values[:, 0]})
  np.testing.assert_array_equal(out["mask"], cast)
  assert "soft_mask" not in out


def cub_shapes(kind, h=300, w=400):
  """Soft segmentations: a body with a soft rim, plus a 1-px leg ('thin'),
  or an object the 224 centre crop removes ('cropped')."""
  seg = np.zeros((h, w), np.uint8)
  if kind in ("body", "thin"):
    seg[96:204, 146:264] = 200  # soft rim, below 255
    seg[100:200, 150:260] = 255
  if kind == "thin":
    seg[200:290, 200] = 255
  if kind == "cropped":
    seg[120:180, 5:50] = 255
  return seg


def test_cub_mask_orders_per_sample(fake, tmp_path):
  kinds = {1: "body", 2: "thin", 3: "body", 4: "cropped", 5: "body"}
  manual = write_cub(
    fake,
    tmp_path / "manual",
    segmentation=lambda i: cub_shapes(kinds[i]),
    image=lambda i: np.broadcast_to(
      np.linspace(0, 255, 400, dtype=np.uint8)[None, :, None], (300, 400, 3)
    ),
  )
  sources.build("cub_200_2011", tmp_path / "data", manual_dir=manual)
  test = by_id(sources.get_source("cub_200_2011", "test", tmp_path / "data"))
  specs = {
    order: preprocess.parse(
      preprocess.study_spec("cub_200_2011", mask_order=order)
    )
    for order in ("ours", "release")
  }
  counts = {}
  for image_id, (_, c, f, _) in enumerate(IMAGES, 1):
    key = f"{CLASSES[c - 1]}/{f[:-4]}"
    if key not in test:
      continue
    seg = cub_shapes(kinds[image_id])
    out = {order: spec(test[key]) for order, spec in specs.items()}
    np.testing.assert_array_equal(out["ours"]["mask"], our_mask(seg))
    np.testing.assert_array_equal(out["release"]["mask"], release_mask(seg))
    np.testing.assert_array_equal(out["ours"]["image"], out["release"]["image"])
    assert "soft_mask" not in out["ours"] and "soft_mask" not in out["release"]
    counts[kinds[image_id]] = tuple(
      (int(out[o]["mask"].sum()), int(out[o]["mask"][160:].sum()))
      for o in ("ours", "release")
    )
  # (mask pixels, pixels below row 160 = the leg), ours vs release: the soft
  # rim erodes the release's body; the 1-px leg vanishes from it; the
  # cropped-away object leaves both masks empty.
  assert counts == {
    "thin": ((8153, 64), (7812, 0)),
    "body": ((8084, 0), (7812, 0)),
    "cropped": ((0, 0), (0, 0)),
  }
