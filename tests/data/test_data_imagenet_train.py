"""imagenet2012_train on a tiny ILSVRC2012_img_train.tar (a tar of class tars)."""

import numpy as np
import pytest

from rationality_jax.data import classnames
from rationality_jax.data import pipeline
from rationality_jax.data import preprocess
from rationality_jax.data import sources
from rationality_jax.data.builders import common

WNIDS = ("n01440764", "n01443537", "n15075141")  # labels 0, 1, 999


def write_train(fake, root, wnids=WNIDS, members=None):
  """Three classes of three JPEGs; the second class holds a CMYK and a
  grayscale JPEG and a PNG named .JPEG, as the real archive does."""
  root.mkdir(exist_ok=True)
  outer = {}
  for k, wnid in enumerate(wnids):
    inner = {
      f"{wnid}_{n}.JPEG": fake.jpeg(fake.solid(24 + j, 32, j + 10 * k))
      for j, n in enumerate((10026, 10027, 33))
    }
    if k == 1:
      inner[f"{wnid}_10027.JPEG"] = fake.cmyk_jpeg(20, 30)
      inner[f"{wnid}_33.JPEG"] = fake.jpeg(fake.solid(20, 30, 3)[..., 0])
      inner[f"{wnid}_2933.JPEG"] = fake.png(fake.solid(16, 16, 4))
    outer[f"{wnid}.tar"] = fake.tar_bytes(
      inner if members is None else members(wnid)
    )
  fake.write_tar(root / "ILSVRC2012_img_train.tar", outer)
  return root


def test_imagenet_train_labels_follow_the_validation_order(fake, tmp_path):
  manual = write_train(fake, tmp_path / "manual")
  builder = sources.build(
    "imagenet2012_train", tmp_path / "data", manual_dir=manual, wnids=WNIDS
  )
  assert builder.info.splits["train"].num_examples == 10
  assert builder.info.features["label"].names == classnames.imagenet_wnids()
  assert set(builder.info.features) == {"image", "label", "id"}
  src = sources.get_source(
    "imagenet2012_train", "train", tmp_path / "data", wnids=WNIDS
  )
  examples = {src[i]["id"]: src[i] for i in range(len(src))}
  labels = {k: int(v["label"]) for k, v in examples.items()}
  assert labels["n01440764/n01440764_10026"] == 0
  assert labels["n01443537/n01443537_2933"] == 1
  assert labels["n15075141/n15075141_33"] == 999
  # The same class index as the validation builder gives the wnid.
  val = sources.get_builder("imagenet2012_val_masks", tmp_path / "data")
  val_names = val.info.features["label"].names
  assert all(val_names[labels[k]] == k.split("/")[0] for k in labels)
  # CMYK, grayscale and PNG images come back as RGB of their own size.
  shapes = {
    "n01443537/n01443537_10027": (20, 30, 3),
    "n01443537/n01443537_33": (20, 30, 3),
    "n01443537/n01443537_2933": (16, 16, 3),
    "n01440764/n01440764_33": (26, 32, 3),
  }
  assert {k: examples[k]["image"].shape for k in shapes} == shapes
  assert src.skipped == {}
  # Training batches: image and label; no mask needed anywhere.
  spec = preprocess.study_spec("imagenet2012_train", train=True)
  batch = next(
    pipeline.make_iterator(src, spec, batch_size=4, mesh=None, num_threads=1)
  )
  assert batch["image"].shape == (4, 224, 224, 3) and "mask" not in batch


def test_imagenet_train_missing_classes_and_wrong_members(fake, tmp_path):
  manual = write_train(fake, tmp_path / "manual", wnids=WNIDS[:2])
  with pytest.raises(
    common.ManualFilesMissingError,
    match=r"1 x class archive missing.*\['n15075141'\]",
  ):
    sources.build(
      "imagenet2012_train", tmp_path / "data", manual_dir=manual, wnids=WNIDS
    )
  # Without `wnids` all 1,000 classes are required.
  with pytest.raises(common.ManualFilesMissingError, match="998 x class"):
    sources.build("imagenet2012_train", tmp_path / "data", manual_dir=manual)
  builder = sources.build(
    "imagenet2012_train",
    tmp_path / "data",
    manual_dir=manual,
    wnids=WNIDS,
    on_missing="skip",
  )
  assert builder.info.splits["train"].num_examples == 7
  src = sources.get_source(
    "imagenet2012_train",
    "train",
    tmp_path / "data",
    wnids=WNIDS,
    on_missing="skip",
  )
  assert src.skipped == {"class archive missing": 1}
  # A class tar holding files of another layout (7-digit names).
  bad = write_train(
    fake,
    tmp_path / "bad",
    members=lambda wnid: {f"{wnid}_1234567.jpg": b"x"},
  )
  with pytest.raises(
    common.ArchiveLayoutError,
    match=r"no member is named like n01440764_<number>\.JPEG inside "
    r"n01440764\.tar; its 1 files include \['n01440764_1234567\.jpg'\]",
  ):
    sources.build(
      "imagenet2012_train", tmp_path / "data2", manual_dir=bad, wnids=WNIDS
    )


def test_imagenet_train_outer_tar_layout(fake, tmp_path):
  (tmp_path / "m").mkdir()
  fake.write_tar(
    tmp_path / "m" / "ILSVRC2012_img_train.tar",
    {"train/n01440764/n01440764_1.JPEG": fake.jpeg(np.zeros((4, 4, 3)))},
  )
  with pytest.raises(
    common.ArchiveLayoutError,
    match=r"ILSVRC2012_img_train\.tar: no member is named like <wnid>\.tar",
  ):
    sources.build(
      "imagenet2012_train", tmp_path / "data", manual_dir=tmp_path / "m"
    )
