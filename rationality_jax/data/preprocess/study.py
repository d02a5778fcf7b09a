"""The study's preprocessing presets: `study_spec(dataset, ...)`.

Evaluation: the dataset's resize + center crop (and, with
`mask_order='release'`, its masks made as the release made them);
training: the release's augmentation; then `normalize`.
"""

from __future__ import annotations

# The study's evaluation geometry per dataset, (resize, crop) at 224 px
# (PAPER.md, "Datasets and masks"); ImageNet-C images are already
# Resize(256) + CenterCrop(224): resize(224) is then the identity.
STUDY_EVAL_SIZES = {
  "cub_200_2011": (256, 224),
  "imagenet2012_val_masks": (256, 224),
  "imagenet2012_train": (256, 224),
  "caltech101_masks": (224, 224),
  "stanford_dogs_masks": (224, 224),
  "imagenet_c_masks": (224, 224),
  "synthetic_rationality": (224, 224),
}


# The release's training augmentation (RandomResizedCrop(224), horizontal flip,
# ColorJitter(0.2, 0.2, 0.2, 0.2), RandomRotation(30)).
STUDY_TRAIN_AUGMENTATION = (
  "random_resized_crop({crop})|random_flip_lr|"
  "color_jitter(0.2, 0.2, 0.2, 0.2)|rotate(30)"
)
MASK_ORDERS = ("ours", "release")


def _release_eval_geometry(dataset: str, resize: int, crop: int) -> str:
  """The release's evaluation geometry, masks included, for `dataset`."""
  if dataset == "cub_200_2011":
    # utils/CUB_dataset.py: the soft segmentation goes through the image's
    # Resize + CenterCrop (bilinear); clip_zs_flcp_cub.py keeps only pixels
    # still at 255 (ToTensor, channel mean, uint8 cast).
    return f"resize({resize})|center_crop({crop})|mask_from_soft(255)"
  if dataset in ("caltech101_masks", "stanford_dogs_masks"):
    # utils/caltech101_dataset.py, utils/Stanford_Dogs_dataset.py: the 0/1
    # mask is a PIL image resized by the default (bilinear) Resize.
    return f"resize({resize}, mask_method='bilinear')|center_crop({crop})"
  if dataset == "imagenet2012_val_masks":
    # test_rationale_vlm/clip_zs_flcp_in.py draws the boxes straight into
    # the cropped frame (`release.imagenet_release_box_mask`).
    keys = "keys=('image', 'boxes')"
    return (
      f"release_box_mask({resize}, {crop})|resize({resize}, {keys})|"
      f"center_crop({crop}, {keys})"
    )
  # ImageNet-C: the release's masks are a builder option (mask_style).
  return f"resize({resize})|center_crop({crop})"


def study_spec(
  dataset: str,
  train: bool = False,
  normalization: str = "clip",
  size: int = 224,
  mask_order: str = "ours",
) -> str:
  """The study's preprocessing for `dataset` as a spec string.

  Evaluation: the dataset's resize + center crop; training: the release's
  augmentation. `normalization`: 'clip' (right for CLIP) or 'imagenet' (what
  the release used for every model). `size` != 224 scales the geometry.

  `mask_order` (evaluation only): 'ours' moves the stored mask with the
  image (nearest neighbour, so it stays binary and aligned); 'release'
  makes the mask as the release did, per dataset:
    cub_200_2011: the soft segmentation resized and cropped bilinearly like
      the image, then `mask_from_soft(255)`: only pixels still 255 count
      (thin and soft-edged parts shrink or vanish);
    caltech101_masks, stanford_dogs_masks: the 0/1 mask resized bilinearly
      (PIL rounding, so roughly where the interpolated mask is >= 0.5);
    imagenet2012_val_masks: `release_box_mask`, the boxes drawn into the
      224 crop with the release's float arithmetic and inclusive corners;
    imagenet_c_masks, synthetic_rationality: as 'ours' (build ImageNet-C
      with mask_style='release' for its release masks).
  The builders' own release options (CUB split_order, Caltech
  split_scheme / contour / background_class, Dogs boxes / box_fill) are
  separate: see docs/data.md.
  """
  if dataset not in STUDY_EVAL_SIZES:
    raise ValueError(
      f"No study preprocessing for {dataset!r}; known: {sorted(STUDY_EVAL_SIZES)}."
    )
  if mask_order not in MASK_ORDERS:
    raise ValueError(
      f"mask_order must be one of {MASK_ORDERS}, got {mask_order!r}."
    )
  resize, crop = STUDY_EVAL_SIZES[dataset]
  resize, crop = round(size * resize / 224), size
  if train:
    geometry = STUDY_TRAIN_AUGMENTATION.format(crop=crop)
  elif mask_order == "release":
    geometry = _release_eval_geometry(dataset, resize, crop)
  else:
    geometry = f"resize({resize})|center_crop({crop})"
  if dataset == "cub_200_2011" and "mask_from_soft" not in geometry:
    geometry = "drop('soft_mask')|" + geometry  # no work on an unused field
  return f"{geometry}|normalize({normalization!r})"
