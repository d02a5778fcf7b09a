"""Joint image/mask/box preprocessing: alignment, determinism, normalization."""

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
from PIL import Image
import pytest

from rationality_jax.data import preprocess as pp


def _scene(h=37, w=53, seed=0):
  """An image whose non-background (non-zero) pixels are exactly the mask."""
  rng = np.random.default_rng(seed)
  mask = np.zeros((h, w), np.uint8)
  mask[5:20, 8:30] = 1
  yy, xx = np.mgrid[:h, :w]
  mask[((yy - 25) ** 2 + (xx - 40) ** 2) < 49] = 1
  image = rng.integers(1, 256, (h, w, 3), dtype=np.uint8) * mask[..., None]
  return {"image": image, "mask": mask}


GEOMETRIC = [
  "resize(64, method='nearest')",
  "resize((50, 20), method='nearest')",
  "resize(16, method='nearest')",
  "center_crop(30)",
  "center_crop(64)",
  "crop(3, 4, 20, 25)",
  "flip_lr",
  "random_flip_lr(p=1.0)",
  "rotate(30)",
  "rotate_fixed(17.0)",
  "random_resized_crop(24, method='nearest')",
  "random_resized_crop(224, method='nearest')",
  "resize(256, method='nearest')|center_crop(224)|random_flip_lr|rotate(30)",
]


@pytest.mark.parametrize("spec", GEOMETRIC)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_stays_aligned_with_image(spec, seed):
  data = _scene(seed=seed)
  out = pp.parse(spec)(data, np.random.default_rng(seed))
  assert out["image"].shape[:2] == out["mask"].shape
  np.testing.assert_array_equal(
    (out["image"] != 0).any(-1).astype(np.uint8), out["mask"]
  )


def test_geometry_really_changes_the_mask():
  data = _scene()
  flipped = pp.parse("flip_lr")(data)["mask"]
  np.testing.assert_array_equal(flipped, data["mask"][:, ::-1])
  cropped = pp.parse("center_crop(30)")(data)["mask"]
  # (37-30)/2 = 3.5 -> round -> 4 (torchvision), (53-30)/2 = 11.5 -> 12
  np.testing.assert_array_equal(cropped, data["mask"][4:34, 12:42])
  assert pp.parse("resize(74, method='nearest')")(data)["mask"].shape == (
    74,
    106,
  )
  assert pp.parse("resize(10)")(data)["mask"].shape == (
    10,
    14,
  )  # int(10 * 53 / 37)


def test_boxes_move_with_the_geometry():
  h, w = 40, 60
  mask = np.zeros((h, w), np.uint8)
  mask[10:20, 5:25] = 1
  data = {
    "image": np.stack([mask * 200] * 3, -1),
    "mask": mask,
    "boxes": np.array([[5, 10, 25, 20]], np.float32),
  }
  out = pp.parse("flip_lr")(data)
  np.testing.assert_allclose(out["boxes"], [[35, 10, 55, 20]])
  out = pp.parse("resize((80, 30), method='nearest')")(data)
  np.testing.assert_allclose(out["boxes"], [[2.5, 20, 12.5, 40]])
  out = pp.parse("crop(12, 10, 20, 20)")(data)
  np.testing.assert_allclose(out["boxes"], [[0, 0, 15, 8]])
  out = pp.parse("rotate_fixed(90.0)")(data)
  # 90 degrees counter-clockwise about (30, 20): x' = y + 10, y' = -x + 50.
  np.testing.assert_allclose(out["boxes"], [[20, 25, 30, 40]], atol=1e-4)
  ys, xs = np.nonzero(out["mask"])
  assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (20, 30, 25, 40)


def test_random_ops_are_deterministic_per_rng_seed():
  data = _scene()
  spec = pp.parse(
    "random_resized_crop(32)|random_flip_lr|rotate(30)|color_jitter(0.4, 0.4, 0.4, 0.1)"
  )
  a = spec(data, np.random.default_rng([7, 3]))
  b = spec(data, np.random.default_rng([7, 3]))
  c = spec(data, np.random.default_rng([7, 4]))
  np.testing.assert_array_equal(a["image"], b["image"])
  np.testing.assert_array_equal(a["mask"], b["mask"])
  assert not np.array_equal(a["image"], c["image"])
  with pytest.raises(ValueError, match="rng"):
    spec(data)


def test_color_jitter_changes_image_only():
  data = _scene()
  out = pp.parse("color_jitter(0.5, 0.5, 0.5, 0.2)")(
    data, np.random.default_rng(0)
  )
  np.testing.assert_array_equal(out["mask"], data["mask"])
  assert not np.array_equal(out["image"], data["image"])
  same = pp.parse("color_jitter()")(data, np.random.default_rng(0))
  np.testing.assert_array_equal(same["image"], data["image"])


def test_color_jitter_factors_match_pil_definitions():
  img = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
  out = pp.parse("color_jitter(brightness=0.5)")(
    {"image": img}, np.random.default_rng(1)
  )["image"]
  rng = np.random.default_rng(1)
  rng.permutation(4)
  factor = rng.uniform(0.5, 1.5)
  np.testing.assert_allclose(out, np.clip(img * factor, 0, 255), atol=1)
  hue = pp.parse("color_jitter(hue=0.5)")(
    {"image": np.full((2, 2, 3), [255, 0, 0], np.uint8)},
    np.random.default_rng(3),
  )["image"]
  assert not (hue == [255, 0, 0]).all()


def test_normalize_presets():
  img = np.full((2, 2, 3), 255, np.uint8)
  out = pp.parse("normalize('clip')")({"image": img})["image"]
  assert out.dtype == np.float32
  np.testing.assert_allclose(
    out[0, 0],
    (1 - np.array([0.48145466, 0.4578275, 0.40821073]))
    / np.array([0.26862954, 0.26130258, 0.27577711]),
    rtol=1e-6,
  )
  out = pp.parse("normalize('imagenet')")(
    {"image": np.zeros((1, 1, 3), np.uint8)}
  )["image"]
  np.testing.assert_allclose(
    out[0, 0], [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6
  )


def test_parse_errors_name_the_problem():
  with pytest.raises(ValueError, match="Unknown preprocessing op 'blur'"):
    pp.parse("resize(3)|blur(2)")
  with pytest.raises(ValueError, match="literals"):
    pp.parse("resize(x)")
  with pytest.raises(ValueError, match="preset"):
    pp.parse("normalize('mine')")


@pytest.mark.parametrize(
  "spec",
  [
    "resize(224)",
    "resize(20)",
    "random_resized_crop(96)",
    "rotate(30, method='bilinear')",
    "resize(256)|center_crop(224)",
  ],
)
def test_bilinear_image_and_nearest_mask_stay_registered(spec):
  """With the default bilinear image resampling the mask (nearest) still sits
  on the object: no half-pixel shift between the two samplers."""
  h, w = 60, 80
  mask = np.zeros((h, w), np.uint8)
  mask[10:41, 15:52] = 1
  mask[45:55, 5:20] = 1
  data = {
    "image": np.repeat(mask[..., None] * 255, 3, -1).astype(np.uint8),
    "mask": mask,
  }
  out = pp.parse(spec)(data, np.random.default_rng(1))
  soft = out["image"][..., 0] >= 128
  hard = out["mask"] == 1
  iou = (soft & hard).sum() / max((soft | hard).sum(), 1)
  assert hard.sum() > 0 and iou > 0.93, iou


def test_study_specs():
  assert (
    pp.study_spec("cub_200_2011")
    == "drop('soft_mask')|resize(256)|center_crop(224)|normalize('clip')"
  )
  assert (
    pp.study_spec("cub_200_2011", mask_order="release")
    == "resize(256)|center_crop(224)|mask_from_soft(255)|normalize('clip')"
  )
  assert pp.study_spec("caltech101_masks", mask_order="release") == (
    "resize(224, mask_method='bilinear')|center_crop(224)|normalize('clip')"
  )
  assert pp.study_spec("imagenet2012_val_masks", mask_order="release") == (
    "release_box_mask(256, 224)|resize(256, keys=('image', 'boxes'))|"
    "center_crop(224, keys=('image', 'boxes'))|normalize('clip')"
  )
  assert pp.study_spec("imagenet_c_masks", mask_order="release") == (
    pp.study_spec("imagenet_c_masks")
  )
  assert pp.study_spec("imagenet2012_val_masks", size=336) == (
    "resize(384)|center_crop(336)|normalize('clip')"
  )
  assert pp.study_spec("cub_200_2011", train=True).startswith(
    "drop('soft_mask')|random_resized_crop(224)|"
  )
  with pytest.raises(ValueError, match="mask_order must be one of"):
    pp.study_spec("cub_200_2011", mask_order="paper")
  assert (
    pp.study_spec("stanford_dogs_masks", normalization="imagenet")
    == "resize(224)|center_crop(224)|normalize('imagenet')"
  )
  assert (
    pp.study_spec("synthetic_rationality", size=64)
    == "resize(64)|center_crop(64)|normalize('clip')"
  )
  train = pp.parse(pp.study_spec("caltech101_masks", train=True))
  out = train(_scene(h=300, w=200), np.random.default_rng(0))
  assert (
    out["image"].shape == (224, 224, 3)
    and out["image"].dtype == np.float32
    and out["mask"].shape == (224, 224)
  )
  evaluated = pp.parse(pp.study_spec("imagenet2012_val_masks"))(
    _scene(h=300, w=400)
  )
  assert evaluated["image"].shape == (224, 224, 3)


_OPS = st.sampled_from(
  [
    "resize({n}, method='nearest')",
    "center_crop({n})",
    "random_resized_crop({n}, method='nearest')",
    "random_flip_lr",
    "rotate(45)",
  ]
)


@settings(max_examples=40, deadline=None)
@given(
  h=st.integers(8, 64),
  w=st.integers(8, 64),
  ops=st.lists(st.tuples(_OPS, st.integers(4, 48)), min_size=1, max_size=4),
  seed=st.integers(0, 2**16),
)
def test_any_chain_of_geometric_ops_keeps_alignment(h, w, ops, seed):
  rng = np.random.default_rng(seed)
  mask = (rng.random((h, w)) < 0.4).astype(np.uint8)
  image = rng.integers(1, 256, (h, w, 3), dtype=np.uint8) * mask[..., None]
  spec = "|".join(op.format(n=n) for op, n in ops)
  out = pp.parse(spec)({"image": image, "mask": mask}, rng)
  np.testing.assert_array_equal(
    (out["image"] != 0).any(-1).astype(np.uint8), out["mask"]
  )


def test_imagenet_c_preset_is_identity_at_224():
  data = _scene(h=224, w=224)
  out = pp.parse(
    pp.study_spec("imagenet_c_masks").replace("|normalize('clip')", "")
  )(data)
  np.testing.assert_array_equal(out["image"], data["image"])
  np.testing.assert_array_equal(out["mask"], data["mask"])


def test_soft_mask_moves_like_the_image():
  data = _scene()
  data["soft_mask"] = data["image"][..., 0].copy()
  for spec in ("resize(64)|center_crop(50)", "flip_lr", "rotate_fixed(20.0)"):
    out = pp.parse(spec)(data)
    np.testing.assert_array_equal(out["soft_mask"], out["image"][..., 0])


def test_mask_method_bilinear_resamples_the_binary_mask():
  mask = np.zeros((40, 40), np.uint8)
  mask[10:30, 11] = 1  # a 1-px line: nearest keeps it, bilinear blurs it
  mask[5:9, 20:36] = 1
  data = {"mask": mask}
  near = pp.parse("resize(20)")(dict(data))["mask"]
  bilinear = pp.parse("resize(20, mask_method='bilinear')")(dict(data))["mask"]
  reference = np.asarray(Image.fromarray(mask).resize((20, 20), Image.BILINEAR))
  np.testing.assert_array_equal(bilinear, reference)
  assert set(np.unique(bilinear)) <= {0, 1}
  assert near[5:15, 5].sum() == 10 and bilinear[5:15, 5].sum() == 0


def test_drop_and_release_box_mask_ops():
  data = {
    "image": np.zeros((300, 400, 3), np.uint8),
    "mask": np.ones((300, 400), np.uint8),
    "boxes": np.array([[100, 50, 300, 200]], np.float32),
    "soft_mask": np.zeros((300, 400), np.uint8),
  }
  assert "soft_mask" not in pp.parse("drop('soft_mask', 'nothing')")(data)
  out = pp.parse(pp.study_spec("imagenet2012_val_masks", mask_order="release"))(
    data
  )
  assert out["mask"].sum() == 129 * 172 and out["image"].shape == (224, 224, 3)
  # The boxes still follow our geometry (resize 256 x 341, crop left 58).
  np.testing.assert_allclose(
    out["boxes"],
    [
      [
        100 * 341 / 400 - 58,
        50 * 256 / 300 - 16,
        300 * 341 / 400 - 58,
        154.6667,
      ]
    ],
    rtol=1e-5,
  )
