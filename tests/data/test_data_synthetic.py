"""synthetic_rationality: exact masks, the shortcut knob, determinism, round trips."""

import numpy as np

from rationality_jax.data import sources
from rationality_jax.data.builders import synthetic_rationality as syn


def test_masks_are_exactly_the_object_pixels():
  config = syn.SyntheticConfig(name="t", num_classes=8, image_size=48)
  for i in range(40):
    ex = syn.make_example(config, "train", i)
    colour = ex["image"][ex["mask"] == 1]
    assert len(colour) > 30
    assert (
      colour == colour[0]
    ).all()  # one solid object colour inside the mask
    outside = ex["image"][ex["mask"] == 0]
    assert not (outside == colour[0]).all(-1).any()  # and nowhere else
    x0, y0, x1, y1 = ex["boxes"][0]
    ys, xs = np.nonzero(ex["mask"])
    assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert ex["caption"] == f"a photo of a {syn.SHAPES[ex['label']]}"


def test_shortcut_knob_correlates_train_and_not_test():
  config = syn.SyntheticConfig(
    name="t", num_classes=4, shortcut_prob=0.9, image_size=16
  )
  train = [
    syn.make_example(config, "train", i)["shortcut"] for i in range(2000)
  ]
  test = [syn.make_example(config, "test", i)["shortcut"] for i in range(2000)]
  assert 0.88 < np.mean(train) < 0.92
  assert 0.22 < np.mean(test) < 0.28  # independent: 1 / num_classes
  never = syn.SyntheticConfig(
    name="t", num_classes=4, shortcut_prob=0.0, image_size=16
  )
  assert not any(
    syn.make_example(never, "train", i)["shortcut"] for i in range(200)
  )


def test_examples_depend_only_on_seed_split_index():
  c0, c1 = (
    syn.SyntheticConfig(name="a", seed=0),
    syn.SyntheticConfig(name="b", seed=1),
  )
  a, b = syn.make_example(c0, "train", 7), syn.make_example(c0, "train", 7)
  np.testing.assert_array_equal(a["image"], b["image"])
  assert not np.array_equal(
    a["image"], syn.make_example(c1, "train", 7)["image"]
  )
  assert not np.array_equal(
    a["image"], syn.make_example(c0, "test", 7)["image"]
  )


def test_default_build_round_trips(tmp_path):
  builder = sources.build("synthetic_rationality", tmp_path)
  assert (
    builder.info.splits["train"].num_examples == 2000
    and builder.info.splits["test"].num_examples == 500
  )
  assert builder.info.features["label"].names == [
    "circle",
    "square",
    "triangle",
    "cross",
  ]
  src = sources.get_source("synthetic_rationality", "test", tmp_path)
  ex = src[3]
  index = int(ex["id"].split("_")[1])
  ref = syn.make_example(syn.SyntheticConfig(name="default"), "test", index)
  np.testing.assert_array_equal(ex["image"], ref["image"])  # PNG: lossless
  np.testing.assert_array_equal(ex["mask"], ref["mask"])
  assert ex["background"] == syn.BACKGROUNDS.index(ref["background"])
