"""The study's preprocessing presets: `study_spec(dataset, ...)`.

Evaluation: the dataset's resize + center crop (and, with
`mask_order='release'`, its masks made as the release made them);
training: the release's augmentation; then `normalize`. The per-dataset
parts are facts its builder declares (`STUDY_EVAL_SIZE`,
`release_eval_geometry`, `RELEASE_ONLY_FIELDS`; see
`data.builders.base.MaskedImageBuilder`).
"""

from __future__ import annotations

from rationality_jax.data import datasets

# The release's training augmentation (RandomResizedCrop(224), horizontal flip,
# ColorJitter(0.2, 0.2, 0.2, 0.2), RandomRotation(30)).
STUDY_TRAIN_AUGMENTATION = (
  "random_resized_crop({crop})|random_flip_lr|"
  "color_jitter(0.2, 0.2, 0.2, 0.2)|rotate(30)"
)
MASK_ORDERS = ("ours", "release")


def study_spec(
  dataset: str,
  train: bool = False,
  normalization: str = "clip",
  size: int = 224,
  mask_order: str = "ours",
) -> str:
  """The study's preprocessing for `dataset` as a spec string.

  Evaluation: the dataset's resize + center crop (its builder's
  `STUDY_EVAL_SIZE`); training: the release's augmentation.
  `normalization`: 'clip' (right for CLIP) or 'imagenet' (what the release
  used for every model). `size` != 224 scales the geometry.

  `mask_order` (evaluation only): 'ours' moves the stored mask with the
  image (nearest neighbour, so it stays binary and aligned); 'release'
  makes the mask as the release did, as the dataset's builder declares
  (`release_eval_geometry`):
    cub_200_2011: the soft segmentation resized and cropped bilinearly like
      the image, then `mask_from_soft(255)`: only pixels still 255 count
      (thin and soft-edged parts shrink or vanish);
    caltech101_masks, stanford_dogs_masks: the 0/1 mask resized bilinearly
      (PIL rounding, so roughly where the interpolated mask is >= 0.5);
    imagenet2012_val_masks: `release_box_mask`, the boxes drawn into the
      224 crop with the release's float arithmetic and inclusive corners;
    imagenet_c_masks, synthetic_rationality: as 'ours' (build ImageNet-C
      with mask_style='release' for its release masks).
  Fields only the release's masks read (CUB's `soft_mask`) are dropped
  first otherwise. The builders' own release options (CUB split_order,
  Caltech split_scheme / contour / background_class, Dogs boxes /
  box_fill) are separate: see docs/data.md.
  """
  builder = datasets.builder_class(dataset)
  if mask_order not in MASK_ORDERS:
    raise ValueError(
      f"mask_order must be one of {MASK_ORDERS}, got {mask_order!r}."
    )
  resize, crop = builder.STUDY_EVAL_SIZE
  resize, crop = round(size * resize / 224), size
  if train:
    geometry = STUDY_TRAIN_AUGMENTATION.format(crop=crop)
  elif mask_order == "release":
    geometry = builder.release_eval_geometry(resize, crop)
  else:
    geometry = f"resize({resize})|center_crop({crop})"
  if builder.RELEASE_ONLY_FIELDS and (train or mask_order != "release"):
    unused = ", ".join(repr(f) for f in builder.RELEASE_ONLY_FIELDS)
    geometry = f"drop({unused})|{geometry}"  # no work on an unused field
  return f"{geometry}|normalize({normalization!r})"
