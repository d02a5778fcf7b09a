"""Images and masks of any bit depth are read by value: a 16-bit image is
scaled from its range (not clipped to white), a 16-bit segmentation is
thresholded on its own range (not 'every pixel >= 255 is object')."""

import io

import numpy as np
from PIL import Image
import pytest

from rationality_jax.data import sources
from rationality_jax.data.builders import common
from rationality_jax.data.builders import cub_200_2011 as cub
from tests.data import test_data_cub

GRAY16 = np.array(
  [[0, 255, 256, 4660], [32768, 65279, 65280, 65535]], np.uint16
)


def decoded(data: bytes) -> np.ndarray:
  with Image.open(io.BytesIO(data)) as im:
    return np.asarray(im)


def test_a_16_bit_image_is_scaled_from_its_range(fake):
  stored, h, w = common.read_image(fake.png(GRAY16), "gray16.png")
  assert (h, w) == (2, 4)
  rgb = decoded(stored)
  assert rgb.dtype == np.uint8 and rgb.shape == (2, 4, 3)
  # value >> 8; PIL's convert('RGB') gave [[0, 255, 255, 255], [255] * 4].
  np.testing.assert_array_equal(
    rgb[..., 0], [[0, 0, 1, 18], [128, 254, 255, 255]]
  )
  np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_8_bit_and_1_bit_images_are_unchanged(fake):
  gray8 = np.array([[0, 7, 200, 255]], np.uint8)
  np.testing.assert_array_equal(
    decoded(common.read_image(fake.png(gray8), "g.png")[0])[..., 1], gray8
  )
  buf = io.BytesIO()
  Image.fromarray(np.array([[0, 1, 1, 0]], bool)).save(buf, format="PNG")
  values, top = common.read_gray(buf.getvalue())
  assert top == 1 and values.tolist() == [[0, 1, 1, 0]]


def test_an_image_without_a_known_range_is_unreadable():
  buf = io.BytesIO()
  Image.fromarray(np.array([[0.5, 2.0]], np.float32), "F").save(buf, "TIFF")
  with pytest.raises(ValueError, match="floating-point image"):
    common.read_image(buf.getvalue(), "float.tif")


def test_a_16_bit_segmentation_is_thresholded_on_its_own_range(fake):
  mask, soft = cub.read_segmentation(fake.png(GRAY16))
  # Full white at 16 bits is 65535; before, every value >= 255 was object.
  assert mask.tolist() == [[0, 0, 0, 0], [0, 0, 0, 1]]
  assert soft.tolist() == [[0, 0, 0, 18], [127, 254, 254, 255]]
  np.testing.assert_array_equal(soft == 255, mask == 1)
  seg8 = test_data_cub.soft_segmentation()
  mask8, soft8 = cub.read_segmentation(fake.png(seg8))
  np.testing.assert_array_equal(mask8, seg8 == 255)
  np.testing.assert_array_equal(soft8, seg8)


def test_cub_built_from_16_bit_pngs(fake, tmp_path):
  """The 8-bit segmentation scaled to 16 bits (x 257) gives the 8-bit
  build's mask (60 pixels; before, all 81 nonzero) and soft mask; a
  16-bit image is stored as its high bytes."""
  seg8 = test_data_cub.soft_segmentation()
  image16 = (np.arange(20 * 30, dtype=np.uint16) * 100).reshape(20, 30)
  manual = test_data_cub.write_cub(
    fake,
    tmp_path / "manual",
    segmentation=lambda i: seg8.astype(np.uint16) * 257,
    image=lambda i: image16,
    encode=fake.png,
  )
  sources.build("cub_200_2011", tmp_path / "data", manual_dir=manual)
  test = sources.get_source("cub_200_2011", "test", tmp_path / "data")
  ex = test_data_cub.by_id(test)[
    "002.Laysan_Albatross/Laysan_Albatross_0082_524"
  ]
  assert ex["mask"].sum() == 60
  np.testing.assert_array_equal(ex["mask"], seg8 == 255)
  np.testing.assert_array_equal(ex["soft_mask"], seg8)
  np.testing.assert_array_equal(ex["image"][..., 0], image16 >> 8)
  # 59,900 >> 8; before, 597 of the 600 pixels were clipped to 255.
  assert ex["image"].max() == 233
