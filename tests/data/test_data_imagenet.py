"""imagenet2012_val_masks and imagenet_c_masks on tiny archives (XML tgz and CSV box layouts)."""

import pickle

import numpy as np
import pytest

from rationality_jax.data import preprocess
from rationality_jax.data import sources
from rationality_jax.data.builders import common
from rationality_jax.data.builders import imagenet_c_masks

# (stem, wnid, label, (H, W), boxes)
VAL = [
  (
    "ILSVRC2012_val_00000001",
    "n01440764",
    0,
    (300, 400),
    [(100, 50, 300, 200), (10, 20, 50, 60)],
  ),
  ("ILSVRC2012_val_00000002", "n15075141", 999, (64, 48), [(4, 8, 20, 30)]),
]


def val_xml(wnid, hw, boxes):
  objs = "".join(
    f"<object><name>{wnid}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
    f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
    for b in boxes
  )
  return (
    f"<annotation><folder>val</folder><filename>x</filename><source><database>ILSVRC_2012</database></source>"
    f"<size><width>{hw[1]}</width><height>{hw[0]}</height><depth>3</depth></size><segmented>0</segmented>{objs}</annotation>"
  ).encode()


def write_val(fake, root, layout, drop=(), rename=lambda stem: stem):
  """`drop`: stems left out of the image tar; `rename`: member stems."""
  root.mkdir(exist_ok=True)
  fake.write_tar(
    root / "ILSVRC2012_img_val.tar",
    {
      f"{rename(s)}.JPEG": fake.jpeg(fake.solid(*hw, i))
      for i, (s, _, _, hw, _) in enumerate(VAL)
      if s not in drop
    },
  )
  if layout == "xml":
    fake.write_tar(
      root / "ILSVRC2012_bbox_val_v3.tgz",
      {f"val/{s}.xml": val_xml(w, hw, b) for s, w, _, hw, b in VAL},
      "w:gz",
    )
  else:
    rows = ["ImageId,PredictionString"] + [
      s
      + ","
      + " ".join(f"{w} {x0} {y0} {x1} {y1}" for x0, y0, x1, y1 in b)
      + " "
      for s, w, _, _, b in VAL
    ]
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
  return root


@pytest.mark.parametrize("layout", ["xml", "csv"])
def test_imagenet_val_labels_and_all_boxes(fake, tmp_path, layout):
  manual = write_val(fake, tmp_path / "manual", layout)
  builder = sources.build(
    "imagenet2012_val_masks", tmp_path / "data", manual_dir=manual
  )
  assert builder.info.features["label"].names[999] == "n15075141"
  src = sources.get_source(
    "imagenet2012_val_masks", "validation", tmp_path / "data"
  )
  by_id = {src[i]["id"]: src[i] for i in range(len(src))}
  assert {k: int(v["label"]) for k, v in by_id.items()} == {
    s: lab for s, _, lab, _, _ in VAL
  }
  m = by_id["ILSVRC2012_val_00000001"]["mask"]
  assert m.shape == (300, 400)
  assert (
    m[50, 100] == 1
    and m[199, 299] == 1
    and m[200, 299] == 0
    and m[199, 300] == 0
    and m[49, 100] == 0
  )
  assert (
    m[20, 10] == 1 and m[59, 49] == 1 and m[60, 49] == 0
  )  # the second box is filled too
  assert m.sum() == 200 * 150 + 40 * 40
  np.testing.assert_allclose(
    by_id["ILSVRC2012_val_00000002"]["boxes"], [[4, 8, 20, 30]]
  )
  # Input worker processes get pickled copies: the default config's builder
  # does not unpickle, so the source (and a subset of it) reopen by name.
  for view in (src, sources.Subset(src, [1, 0])):
    copy = pickle.loads(pickle.dumps(view))
    assert [copy[i]["id"] for i in range(len(copy))] == [
      view[i]["id"] for i in range(len(view))
    ]
    np.testing.assert_array_equal(copy[0]["mask"], view[0]["mask"])
    assert (copy.split, copy.class_names) == ("validation", src.class_names)


def write_imagenet_c(fake, root, severities=(1, 2, 3, 4, 5)):
  """noise.tar (gaussian_noise, shot_noise) and an extracted fog/ tree, every
  severity holding every validation image, as released."""
  root.mkdir(exist_ok=True)
  img = lambda i: fake.jpeg(np.full((224, 224, 3), 40 * i, np.uint8))  # noqa: E731
  noise = {}
  for corruption in ("gaussian_noise", "shot_noise"):
    for sev in severities:
      for i, (stem, wnid, _, _, _) in enumerate(VAL):
        noise[f"{corruption}/{sev}/{wnid}/{stem}.JPEG"] = img(i + sev)
  fake.write_tar(root / "noise.tar", noise)
  for sev in severities:
    for i, (stem, wnid, _, _, _) in enumerate(VAL):
      folder = root / "fog" / str(sev) / wnid
      folder.mkdir(parents=True, exist_ok=True)
      (folder / f"{stem}.JPEG").write_bytes(img(i))
  return root


@pytest.mark.parametrize("layout", ["xml", "csv"])
def test_imagenet_c_splits_features_and_mapped_masks(fake, tmp_path, layout):
  manual = write_imagenet_c(fake, write_val(fake, tmp_path / "manual", layout))
  builder = sources.build(
    "imagenet_c_masks", tmp_path / "data", manual_dir=manual
  )
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
    "gaussian_noise": 10,
    "shot_noise": 10,
    "fog": 10,
  }
  src = sources.get_source(
    "imagenet_c_masks", "gaussian_noise", tmp_path / "data"
  )
  by_id = {src[i]["id"]: src[i] for i in range(len(src))}
  ex = by_id["gaussian_noise/3/ILSVRC2012_val_00000001"]
  assert (
    ex["corruption"] == "gaussian_noise"
    and ex["severity"] == 3
    and ex["label"] == 0
  )
  assert by_id["gaussian_noise/5/ILSVRC2012_val_00000002"]["label"] == 999
  # 300x400 -> Resize(256) -> 256x341 -> CenterCrop(224): top 16, left round(58.5) = 58.
  np.testing.assert_allclose(
    ex["boxes"][0],
    [
      100 * 341 / 400 - 58,
      50 * 256 / 300 - 16,
      300 * 341 / 400 - 58,
      200 * 256 / 300 - 16,
    ],
    rtol=1e-5,
  )
  m = ex["mask"]
  assert m.shape == (224, 224)
  assert m[27, 27] == 1 and m[154, 197] == 1
  assert (
    m[26, 27] == 0 and m[27, 26] == 0 and m[155, 197] == 0 and m[154, 198] == 0
  )
  # The mapped mask matches the val mask pushed through our own resize + crop ops.
  val_mask = np.zeros((300, 400), np.uint8)
  for x0, y0, x1, y1 in VAL[0][4]:
    val_mask[y0:y1, x0:x1] = 1
  pushed = preprocess.parse("resize(256)|center_crop(224)")({"mask": val_mask})[
    "mask"
  ]
  assert (
    pushed != m
  ).sum() <= 4 * 224  # at most a one-pixel band along the edges
  assert (pushed & m).sum() / (pushed | m).sum() > 0.98


def test_imagenet_c_map_boxes_portrait():
  # 500x375 (H x W): W is short -> 341x256, top round(58.5) = 58, left 16.
  out = imagenet_c_masks.map_boxes_resize_crop([[0, 0, 375, 500]], 500, 375)
  np.testing.assert_allclose(out, [[0, 0, 224, 224]])
  out = imagenet_c_masks.map_boxes_resize_crop([[75, 100, 150, 200]], 500, 375)
  np.testing.assert_allclose(
    out,
    [
      [
        75 * 256 / 375 - 16,
        100 * 341 / 500 - 58,
        150 * 256 / 375 - 16,
        200 * 341 / 500 - 58,
      ]
    ],
    rtol=1e-5,
  )


def test_imagenet_c_without_corruptions_names_the_tars(fake, tmp_path):
  manual = write_val(fake, tmp_path / "manual", "xml")
  with pytest.raises(
    FileNotFoundError,
    match=r"blur\.tar, digital\.tar, extra\.tar, noise\.tar, weather\.tar.*zenodo",
  ):
    sources.build("imagenet_c_masks", tmp_path / "data", manual_dir=manual)


def test_imagenet_val_image_listed_but_absent(fake, tmp_path):
  manual = write_val(
    fake, tmp_path / "manual", "csv", drop={"ILSVRC2012_val_00000002"}
  )
  with pytest.raises(
    FileNotFoundError,
    match=r"\(validation\): 1 x image missing: with boxes in "
    r"LOC_val_solution\.csv but not in ILSVRC2012_img_val\.tar, e\.g\. "
    r"\['ILSVRC2012_val_00000002'\]",
  ):
    sources.build(
      "imagenet2012_val_masks", tmp_path / "data", manual_dir=manual
    )
  builder = sources.build(
    "imagenet2012_val_masks",
    tmp_path / "data",
    manual_dir=manual,
    on_missing="skip",
  )
  assert builder.info.splits["validation"].num_examples == 1
  src = sources.get_source(
    "imagenet2012_val_masks", "validation", tmp_path / "data", on_missing="skip"
  )
  assert src.skipped == {"image missing": 1}


def test_imagenet_val_names_must_have_eight_digits(fake, tmp_path):
  manual = write_val(
    fake,
    tmp_path / "manual",
    "csv",
    rename=lambda stem: stem.replace("_000000", "_00000"),
  )
  with pytest.raises(
    common.ArchiveLayoutError,
    match=r"ILSVRC2012_img_val\.tar: no member is named like "
    r"ILSVRC2012_val_NNNNNNNN\.JPEG \(8 digits\); its 2 files include "
    r"\['ILSVRC2012_val_0000001\.JPEG'",
  ):
    sources.build(
      "imagenet2012_val_masks", tmp_path / "data", manual_dir=manual
    )


def test_imagenet_val_release_box_mask_per_sample(fake, tmp_path):
  """test_rationale_vlm/clip_zs_flcp_in.py draws the boxes into the crop."""
  manual = write_val(fake, tmp_path / "manual", "xml")
  sources.build("imagenet2012_val_masks", tmp_path / "data", manual_dir=manual)
  src = sources.get_source(
    "imagenet2012_val_masks", "validation", tmp_path / "data"
  )
  ex = {src[i]["id"]: src[i] for i in range(len(src))}[
    "ILSVRC2012_val_00000001"
  ]
  out = {
    order: preprocess.parse(
      preprocess.study_spec("imagenet2012_val_masks", mask_order=order)
    )(ex)
    for order in ("ours", "release")
  }
  np.testing.assert_array_equal(out["ours"]["image"], out["release"]["image"])
  # Release: rows 26..154 x columns 26..197, both included; the second box
  # falls left of the crop (test_data_release). Ours: the full-size mask
  # moved with the image: rows 27..154 x columns 27..197 (28 x 32 pixels of
  # the second box are cropped away too).
  release_mask = out["release"]["mask"]
  assert release_mask.shape == (224, 224) and release_mask.sum() == 129 * 172
  ys, xs = np.nonzero(out["ours"]["mask"])
  assert (ys.min(), ys.max(), xs.min(), xs.max()) == (27, 154, 27, 197)
  assert out["ours"]["mask"].sum() == 128 * 171


def test_imagenet_c_release_masks_and_incomplete_severities(fake, tmp_path):
  manual = write_imagenet_c(
    fake, write_val(fake, tmp_path / "manual", "xml"), severities=(1, 2, 3)
  )
  with pytest.raises(
    FileNotFoundError,
    match=r"imagenet_c_masks \(gaussian_noise\): 4 x image missing.*"
    r"'gaussian_noise/4/ILSVRC2012_val_00000001'",
  ):
    sources.build("imagenet_c_masks", tmp_path / "data", manual_dir=manual)
  options = dict(severities=(1, 3), mask_style="release", corruptions=("fog",))
  builder = sources.build(
    "imagenet_c_masks", tmp_path / "data", manual_dir=manual, **options
  )
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
    "fog": 4
  }
  src = sources.get_source(
    "imagenet_c_masks", "fog", tmp_path / "data", **options
  )
  ex = {src[i]["id"]: src[i] for i in range(len(src))}[
    "fog/3/ILSVRC2012_val_00000001"
  ]
  # The release's mask, from the original 300 x 400 size (test_data_release).
  assert ex["mask"].sum() == 129 * 172
  ys, xs = np.nonzero(ex["mask"])
  assert (ys.min(), ys.max(), xs.min(), xs.max()) == (26, 154, 26, 197)


def test_imagenet_c_tar_with_another_layout_is_named(fake, tmp_path):
  manual = write_val(fake, tmp_path / "manual", "xml")
  fake.write_tar(
    manual / "blur.tar",
    {
      "blur/defocus/3/ILSVRC2012_val_00000001.JPEG": fake.jpeg(fake.solid(4, 4))
    },
  )
  with pytest.raises(
    common.ArchiveLayoutError,
    match=r"blur\.tar: no file is named like <corruption>/<severity 1-5>/"
    r"<wnid>/ILSVRC2012_val_NNNNNNNN\.JPEG; its 1 files include "
    r"\['blur/defocus/3/",
  ):
    sources.build("imagenet_c_masks", tmp_path / "data", manual_dir=manual)


def test_imagenet_c_csv_boxes_need_the_original_sizes(fake, tmp_path):
  manual = write_imagenet_c(
    fake,
    write_val(
      fake, tmp_path / "manual", "csv", drop={"ILSVRC2012_val_00000002"}
    ),
    severities=(2,),
  )
  options = dict(severities=(2,), corruptions=("fog",))
  with pytest.raises(
    FileNotFoundError,
    match=r"1 x original image missing.*\['ILSVRC2012_val_00000002'\]",
  ):
    sources.build(
      "imagenet_c_masks", tmp_path / "data", manual_dir=manual, **options
    )
  options["on_missing"] = "skip"
  sources.build(
    "imagenet_c_masks", tmp_path / "data", manual_dir=manual, **options
  )
  src = sources.get_source(
    "imagenet_c_masks", "fog", tmp_path / "data", **options
  )
  assert [src[i]["id"] for i in range(len(src))] == [
    "fog/2/ILSVRC2012_val_00000001"
  ]
  assert src.skipped == {"original image missing": 1}
