"""The release's data arithmetic (`rationality_jax.data.release`), step by step.

Rasterisation numbers marked "OpenCV" were produced once with
opencv-python-headless 5.0 (cv2.fillPoly / cv2.rectangle), outside this
project's environment, and are written down here; the rest is computed by
hand from the release's code paths as described in the docstrings.
"""

import numpy as np
import pytest

from rationality_jax.data import release

# (row, first column, last column, pixels in the row) of cv2.fillPoly(
# zeros((16, 20)), [vertices], 1) - OpenCV.
OPENCV_POLYGONS = {
  "triangle": (
    [(3, 2), (17, 6), (6, 13)],
    [
      (2, 3, 4, 2),
      (3, 3, 8, 6),
      (4, 4, 11, 8),
      (5, 4, 15, 12),
      (6, 4, 17, 14),
      (7, 4, 16, 13),
      (8, 5, 14, 10),
      (9, 5, 13, 9),
      (10, 5, 11, 7),
      (11, 5, 9, 5),
      (12, 6, 8, 3),
      (13, 6, 6, 1),
    ],
  ),
  "concave": (
    [(2, 2), (16, 2), (16, 14), (9, 7), (2, 14)],
    [
      *[(y, 2, 16, 15) for y in range(2, 8)],
      (8, 2, 16, 14),
      (9, 2, 16, 12),
      (10, 2, 16, 10),
      (11, 2, 16, 8),
      (12, 2, 16, 6),
      (13, 2, 16, 4),
      (14, 2, 16, 2),
    ],
  ),
  "self-intersecting": (
    [(2, 2), (16, 13), (16, 2), (2, 13)],
    [
      (2, 2, 16, 2),
      (3, 2, 16, 4),
      (4, 2, 16, 8),
      (5, 2, 16, 10),
      (6, 2, 16, 12),
      (7, 2, 16, 15),
      (8, 2, 16, 15),
      (9, 2, 16, 12),
      (10, 2, 16, 10),
      (11, 2, 16, 8),
      (12, 2, 16, 4),
      (13, 2, 16, 2),
    ],
  ),
  "thin": (
    [(4, 1), (5, 1), (12, 14)],
    [
      (1, 4, 5, 2),
      (2, 5, 6, 2),
      (3, 5, 6, 2),
      (4, 6, 7, 2),
      (5, 6, 7, 2),
      (6, 7, 8, 2),
      (7, 8, 8, 1),
      (8, 8, 9, 2),
      (9, 9, 9, 1),
      (10, 10, 10, 1),
      (11, 10, 10, 1),
      (12, 11, 11, 1),
      (13, 11, 11, 1),
      (14, 12, 12, 1),
    ],
  ),
}


@pytest.mark.parametrize("name", sorted(OPENCV_POLYGONS))
def test_fill_polygon_matches_opencv(name):
  vertices, rows = OPENCV_POLYGONS[name]
  mask = release.fill_polygon_opencv(16, 20, vertices)
  got = [
    (y, int(xs.min()), int(xs.max()), len(xs))
    for y in range(16)
    if len(xs := np.nonzero(mask[y])[0])
  ]
  assert got == rows


def test_fill_polygon_clips_to_the_image():
  # The same triangle shifted half out of the image keeps its inside part.
  vertices, _ = OPENCV_POLYGONS["triangle"]
  full = release.fill_polygon_opencv(16, 20, vertices)
  shifted = release.fill_polygon_opencv(
    16, 20, [(x - 8, y) for x, y in vertices]
  )
  np.testing.assert_array_equal(shifted[:, :12], full[:, 8:])
  assert not shifted[:, 12:].any()


def test_fill_rectangles_inclusive_like_cv2_rectangle():
  # cv2.rectangle((2, 3), (5, 7), thickness=-1): 4 x 5 = 20 pixels,
  # x 2..5 and y 3..7 both included (OpenCV); corners in any order.
  mask = release.fill_rectangles_inclusive(10, 10, [[2, 3, 5, 7]])
  assert mask.sum() == 20 and mask[3, 2] == mask[7, 5] == 1
  assert mask[8, 5] == mask[7, 6] == 0
  np.testing.assert_array_equal(
    release.fill_rectangles_inclusive(10, 10, [[5, 7, 2, 3]]), mask
  )
  # Clipped at the border; fully outside draws nothing (OpenCV: 10 and 0).
  assert (
    release.fill_rectangles_inclusive(10, 10, [[-3, -2, 20, 0]]).sum() == 10
  )
  assert release.fill_rectangles_inclusive(10, 10, [[-3, 8, -1, 12]]).sum() == 0


def test_imagenet_release_box_mask_by_hand():
  # 300 x 400 (H < W): ratio 300 / 256 = 1.171875, resized (256, 341.33),
  # offsets top 16, left 58.67 (unrounded). Box (100, 50, 300, 200):
  # int(85.33 - 58.67) = 26, int(42.67 - 16) = 26, int(256 - 58.67) = 197,
  # int(170.67 - 16) = 154: rows 26..154 x columns 26..197 inclusive.
  mask = release.imagenet_release_box_mask([[100, 50, 300, 200]], 300, 400)
  assert mask.shape == (224, 224) and mask.sum() == 129 * 172
  ys, xs = np.nonzero(mask)
  assert (ys.min(), ys.max(), xs.min(), xs.max()) == (26, 154, 26, 197)
  # Box (10, 20, 50, 60) maps to x -50..-16: left of the crop, nothing drawn.
  assert (
    release.imagenet_release_box_mask([[10, 20, 50, 60]], 300, 400).sum() == 0
  )
  # Portrait 500 x 375: ratio 375 / 256, offsets top (341.33 - 224) / 2 =
  # 58.67, left 16; the whole image covers the whole crop.
  full = release.imagenet_release_box_mask([[0, 0, 375, 500]], 500, 375)
  assert full.sum() == 224 * 224


def test_caltech_release_positions_and_vertices():
  # 8,677 annotated images, 0.2: int(1735.4) = 1735, step 8677 // 1735 = 5,
  # positions 1, 6, ..., 8676: 1,736 images, disjoint from 0, 5, 10, ...
  positions = release.caltech_release_test_positions(8677, 0.2)
  assert len(positions) == 1736
  assert positions[:3] == [1, 6, 11] and positions[-1] == 8676
  assert not set(positions) & set(range(0, 8677, 5))
  # 10 images: int(2.0) = 2, step 5: positions 1 and 6.
  assert release.caltech_release_test_positions(10, 0.2) == [1, 6]
  # 9 images: step 9 // 1 = 9: position 1 only.
  assert release.caltech_release_test_positions(9, 0.2) == [1]
  with pytest.raises(ValueError, match="selects none"):
    release.caltech_release_test_positions(4, 0.2)
  # box_coord [y1, y2, x1, x2] = [6, 30, 11, 41]; contour (x; y) truncated,
  # plus (x1, y1) = (11, 6) - no -1.
  vertices = release.caltech_release_vertices(
    [[6, 30, 11, 41]], [[0.0, 30.7, -0.5], [0.0, 0.2, 24.9]]
  )
  np.testing.assert_array_equal(vertices, [[11, 6], [41, 6], [11, 30]])


def test_cub_release_split_is_positional_over_sorted_paths():
  paths = ["b/2.jpg", "a/9.jpg", "b/10.jpg", "a/1.jpg", "a-x/0.jpg"]
  # ImageFolder order: folder 'a' < 'a-x' < 'b' as names (not as paths:
  # 'a-x/...' < 'a/...' as strings), then file names as strings.
  assert release.imagefolder_order(paths) == [
    "a/1.jpg",
    "a/9.jpg",
    "a-x/0.jpg",
    "b/10.jpg",
    "b/2.jpg",
  ]
  split = release.cub_release_split(paths, [True, False, False, True, True])
  assert split == {
    "a/1.jpg": True,
    "a/9.jpg": False,
    "a-x/0.jpg": False,
    "b/10.jpg": True,
    "b/2.jpg": True,
  }
  with pytest.raises(ValueError, match="4 lines for 5 images"):
    release.cub_release_split(paths, [True] * 4)
