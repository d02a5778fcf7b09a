"""Preprocessing ops that move image, mask and boxes together (numpy + PIL).

An op is built by a registered factory and called as `op(data, rng) -> data`,
where `data` is one example:

  image:     [H, W, 3] uint8 (float32 after `normalize`)
  mask:      [H, W] uint8, 1 on the object
  soft_mask: [H, W] uint8, 0..255 (CUB's soft segmentation, when present)
  boxes:     [N, 4] float32, (x_min, y_min, x_max, y_max) in pixels of the
             current image, pixel edges (a box covering pixel column 0 only
             is 0..1)

Geometric ops (`resize`, `center_crop`, `random_resized_crop`, `flip_lr`,
`random_flip_lr`, `rotate`) transform every one of `keys` that is present with
the same geometry: the image and the soft mask with `method` (default
bilinear), the mask with nearest neighbour (`mask_method` of `resize` and
`random_resized_crop` can change that), boxes analytically. Image-only ops
(`color_jitter`, `normalize`) take `inkey`/`outkey` as in big_vision.
`mask_from_soft` and `release_box_mask` make the mask the way the study's
release did (see `study_spec(..., mask_order='release')`).

Random ops draw from the `rng` (a `np.random.Generator`) the pipeline seeds
from (seed, epoch, example index), so an example's augmentation is the same on
any number of hosts and after a resume.

A preprocessing spec is a string of ops joined by `|` (or a list of op
strings), each a Python call with literal arguments:

  parse("resize(256)|center_crop(224)|normalize('clip')")

Sizes follow torchvision: `resize(256)` sets the short side to 256 and the
long side to int(256 * long / short); `center_crop` offsets are
round((H - h) / 2) and it zero-pads an image smaller than the crop.

Modules: `spec` (the op registry and `parse`); the ops by kind, `geometry`,
`image` and `fields`; `study` (`study_spec`, the study's presets).
"""

from rationality_jax.data.preprocess import fields
from rationality_jax.data.preprocess import geometry
from rationality_jax.data.preprocess import image
from rationality_jax.data.preprocess import spec
from rationality_jax.data.preprocess import study
from rationality_jax.data.preprocess.geometry import GEOMETRIC_KEYS
from rationality_jax.data.preprocess.geometry import IMAGE_KEYS
from rationality_jax.data.preprocess.geometry import MASK_KEYS
from rationality_jax.data.preprocess.geometry import random_resized_crop_box
from rationality_jax.data.preprocess.geometry import resized_shape
from rationality_jax.data.preprocess.image import NORMALIZATION
from rationality_jax.data.preprocess.spec import Data
from rationality_jax.data.preprocess.spec import Op
from rationality_jax.data.preprocess.spec import Preprocess
from rationality_jax.data.preprocess.spec import parse
from rationality_jax.data.preprocess.spec import register
from rationality_jax.data.preprocess.spec import registered_ops
from rationality_jax.data.preprocess.study import MASK_ORDERS
from rationality_jax.data.preprocess.study import STUDY_TRAIN_AUGMENTATION
from rationality_jax.data.preprocess.study import study_spec

__all__ = [
  "GEOMETRIC_KEYS",
  "IMAGE_KEYS",
  "MASK_KEYS",
  "MASK_ORDERS",
  "NORMALIZATION",
  "STUDY_TRAIN_AUGMENTATION",
  "Data",
  "Op",
  "Preprocess",
  "fields",
  "geometry",
  "image",
  "parse",
  "random_resized_crop_box",
  "register",
  "registered_ops",
  "resized_shape",
  "spec",
  "study",
  "study_spec",
]
