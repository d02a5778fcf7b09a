"""Every archive builder names each missing manual file and where to get it."""

import pytest

from rationality_jax.data import sources

BOXES = (
  "ILSVRC2012_bbox_val_v3.tgz or ILSVRC2012_bbox_val_v3.tar.gz or "
  "ILSVRC2012_bbox_val_v3.tar or LOC_val_solution.csv"
)
EXPECTED = {
  "cub_200_2011": [
    "CUB_200_2011.tgz or CUB_200_2011.tar.gz or CUB_200_2011.tar",
    "segmentations.tgz or segmentations.tar.gz or segmentations.tar",
    "data.caltech.edu",
  ],
  "caltech101_masks": [
    "caltech-101.zip or 101_ObjectCategories.tar.gz or "
    "101_ObjectCategories.tgz or 101_ObjectCategories.tar",
    "caltech-101.zip or Annotations.tar or Annotations.tar.gz or "
    "Annotations.tgz",
  ],
  "stanford_dogs_masks": [
    "images.tar or images.tar.gz or images.tgz",
    "annotation.tar or annotation.tar.gz or annotation.tgz",
    "lists.tar or lists.tar.gz or lists.tgz",
    "vision.stanford.edu",
  ],
  "imagenet2012_val_masks": ["ILSVRC2012_img_val.tar", BOXES, "image-net.org"],
  "imagenet_c_masks": [BOXES],
  "imagenet2012_train": ["ILSVRC2012_img_train.tar", "image-net.org"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("manual", ["none", "empty", "partial"])
def test_missing_manual_files_are_named(tmp_path, name, manual):
  manual_dir = None
  if manual != "none":
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    if manual == "partial":
      (manual_dir / "unrelated.txt").write_text("x")
  with pytest.raises(FileNotFoundError) as err:
    sources.build(name, tmp_path / "data", manual_dir=manual_dir)
  for text in EXPECTED[name]:
    assert text in str(err.value)
  assert not (tmp_path / "data" / name / "default" / "1.0.0").exists()


def test_unknown_dataset_and_config_field(tmp_path):
  with pytest.raises(ValueError, match="Unknown dataset 'cub'"):
    sources.build("cub", tmp_path)
  with pytest.raises(TypeError, match="has no config fields \\['colour'\\]"):
    sources.build("synthetic_rationality", tmp_path, colour=3)
  with pytest.raises(FileNotFoundError, match="not prepared"):
    sources.get_source("synthetic_rationality", "train", tmp_path / "empty")


def test_long_config_names_stay_short_and_distinct(tmp_path):
  from rationality_jax.data import classnames

  wnids = classnames.imagenet_wnids()
  names = {
    sources.get_builder(
      "imagenet2012_train", tmp_path, wnids=tuple(wnids[i : i + 100])
    ).builder_config.name
    for i in (0, 1)
  }
  assert len(names) == 2 and all(
    len(n) == sources.MAX_CONFIG_NAME for n in names
  )
  short = sources.get_builder(
    "imagenet2012_train", tmp_path, wnids=("n01440764",)
  )
  assert short.builder_config.name == "wnids-n01440764"
