"""Reports from records alone: the study's table layout, published values, ImageNet-C rows."""

import os
import re

import numpy as np
import pytest

from rationality_jax import files
from rationality_jax import metrics
from rationality_jax import report
from rationality_jax.run import cells as cells_lib
from rationality_jax.run import grid
from rationality_jax.run import resolve
from tests import sealed


def _run(directory, meta, ids, correct, rma):
  os.makedirs(os.path.join(directory, "records"))
  n = len(ids)
  metrics.Accumulator().add(
    correct=correct,
    rma=rma,
    ids=ids,
    mask_area=np.full(n, 9),
    label=np.zeros(n),
    prediction=np.where(correct, 0, 1),
    rra=rma,
    pointing_game=np.ones(n),
  ).save(os.path.join(directory, "records", "chunk_000000.npz"))
  files.write_json(os.path.join(directory, "meta.json"), meta)
  return sealed.seal(directory)


def test_paper_table_puts_published_values_beside_ours(tmp_path):
  # 4 right (3 with RMA >= 0.5), 2 wrong (1 with RMA >= 0.5): PT 75%, IR 75%.
  correct = np.array([1, 1, 1, 1, 0, 0], bool)
  rma = np.array([0.9, 0.6, 0.5, 0.1, 0.7, 0.2])
  run = _run(
    tmp_path / "a",
    {
      "name": "a",
      "model": "clip_b16",
      "dataset": "cub",
      "method": "zs",
      "heatmap": "chefer(start_layer=-1)",
    },
    [f"x{i}" for i in range(6)],
    correct,
    rma,
  )
  rows = report.collect([run])
  assert rows[0]["pt"] == pytest.approx(0.75) and rows[0][
    "ir"
  ] == pytest.approx(0.75)
  assert (rows[0]["rr"], rows[0]["rw"], rows[0]["wr"], rows[0]["ww"]) == (
    3,
    1,
    1,
    1,
  )
  paths = report.write(rows, str(tmp_path), published=report.PUBLISHED)
  with open(paths["report.md"]) as f:
    text = f.read()
  # Table 1: CLIP-B/16 ZS on CUB is 29.38 in the study; IR (Table 2) 68.05.
  assert "| zs | 75.00 / 29.38 (+45.62) | 75.00 / 29.38 (+45.62) |" in text
  assert "| zs | 75.00 / 68.05 (+6.95) | 75.00 / 68.05 (+6.95) |" in text
  # Each of accuracy, PT and IR with its 95% bootstrap interval around it.
  line = next(x for x in text.splitlines() if x.startswith("| a | zs |"))
  number = r"(\d+\.\d\d)"
  cells = re.findall(rf"{number} \[{number}, {number}\]", line)
  assert [c[0] for c in cells] == ["66.67", "75.00", "75.00"], line
  for estimate, low, high in cells:
    assert float(low) <= float(estimate) <= float(high)
  for stat in ("accuracy", "pt", "ir"):
    low, high = rows[0][f"{stat}_ci"]
    assert low <= rows[0][stat] <= high
  # Another threshold, from the same records: RMA >= 0.65 -> RR 1, RW 3, WR 1.
  row = report.collect([run], threshold=0.65)[0]
  assert (row["rr"], row["rw"], row["wr"], row["pt"]) == (
    1,
    3,
    1,
    pytest.approx(0.25),
  )


def test_published_tables_are_the_studys():
  assert len(report.PUBLISHED) == 2 * 4 * 4 * 4
  pt = [
    report.PUBLISHED[("pt", m, model, d)]
    for m in ("zs",)
    for model in report.PAPER_MODELS
    for d in report.PAPER_DATASETS
  ]
  ir_ft = [
    report.PUBLISHED[("ir", "ft", model, d)]
    for model in report.PAPER_MODELS
    for d in report.PAPER_DATASETS
  ]
  assert np.mean(pt) == pytest.approx(71.26, abs=0.01)  # "avg of 16" column
  assert np.mean(ir_ft) == pytest.approx(83.52, abs=0.01)


def test_imagenet_c_run_gives_a_row_per_severity_and_a_figure(tmp_path):
  ids = [f"snow/{s}/ILSVRC2012_val_{i:08d}" for s in (1, 2) for i in range(4)]
  correct = np.array([1, 1, 1, 0, 1, 0, 0, 0], bool)
  rma = np.array([0.9, 0.9, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1])
  run = _run(
    tmp_path / "c",
    {
      "name": "c",
      "model": "clip_b16",
      "dataset": "imagenet_c",
      "method": "ft",
      "corruption": "snow",
    },
    ids,
    correct,
    rma,
  )
  rows = report.collect([run])
  assert [(r["severity"], r["n"], r["accuracy"]) for r in rows] == [
    (1, 4, 0.75),
    (2, 4, 0.25),
  ]
  assert rows[0]["pt"] == pytest.approx(2 / 3) and rows[1][
    "pt"
  ] == pytest.approx(1.0)
  path = report.figure_corruptions(rows, str(tmp_path / "c.png"))
  assert os.path.getsize(path) > 5_000
  assert "snow" not in report.metric_table(
    rows, "pt"
  )  # corruptions have their figure


@pytest.mark.parametrize("preset", ["paper", "default"])
def test_paper_grid_config(preset, config_file):
  config = config_file("paper", f"preset={preset}")
  runs = {c["name"]: cells_lib.for_cell(config, c) for c in config.cells}
  main = [
    n
    for n, r in runs.items()
    if n.count("-") == 2 and r.method in ("zs", "lp", "flcp", "ft")
  ]
  assert len(main) == 4 * 4 * 4
  assert {runs[n].method for n in main} == {"zs", "lp", "flcp", "ft"}
  zs, ft = runs["clip_b16-cub-zs"], runs["clip_b16-cub-ft"]
  # Every model at 224 px, as the paper.
  assert {r.model.image_size for r in runs.values()} == {224}
  if preset == "paper":
    assert (zs.heatmap.start_layer, ft.heatmap.start_layer) == (-1, 0)
    assert zs.preprocess.normalization == "imagenet"
    assert runs["clip_b16-dogs-ft"].train_data.builder_kwargs.boxes == "last"
    assert config.report.published
  else:
    assert (zs.heatmap.start_layer, ft.heatmap.start_layer) == (0, 0)
    assert zs.preprocess.normalization == "model"
    assert "boxes" not in runs["clip_b16-dogs-ft"].train_data.builder_kwargs
  assert (
    ft.train.optim.lr == 1e-5 and runs["clip_b16-cub-lp"].train.optim.lr == 1e-3
  )
  corrupted = [
    r for r in runs.values() if r.eval_data.name == "imagenet_c_masks"
  ]
  assert len(corrupted) == 4 * 15
  assert runs["clip_b16-imagenet-ft"].train_data.name == "imagenet2012_train"
  assert {
    "clip_b16-cub-coop",
    "clip_b16-cub-adapter",
    "clip_b16-cub-ft-sgd",
    "clip_b16-cub-ft-lr0.0001",
    "clip_b16-cub-zs-gradcam",
  } <= set(runs)


def test_grid_cell_is_the_run_config_with_overrides(tmp_path, config_file):
  config = config_file("paper", "preset=paper,parts=main+ablations")
  checkpoint = tmp_path / "ViT-B-16.pt"  # identity() hashes it, never loads it
  checkpoint.write_bytes(b"not loaded here")
  config.models.clip_b16.path = str(checkpoint)
  cells = {c["name"]: c for c in config.cells}
  ft = grid.cell_config(config, cells["clip_b16-dogs-ft"], str(tmp_path))
  assert (ft.method, ft.train.optim.lr, ft.train.optim.name) == (
    "ft",
    1e-5,
    "adam",
  )
  assert (ft.train.batch_size, ft.train.num_epochs, ft.seed) == (32, 10, 42)
  assert ft.model.path == str(checkpoint) and ft.model.name == "clip_b16"
  assert ft.train_data.name == "stanford_dogs_masks"
  assert ft.train_data.builder_kwargs.boxes == "last"
  # The preprocessing spec comes from the model's size (224 here, as the study).
  spec = resolve.preprocess_spec(
    ft, "stanford_dogs_masks", 224, "imagenet", train=True, keep=("image",)
  )
  assert spec.startswith("random_resized_crop(224)") and "'imagenet'" in spec
  sgd = grid.cell_config(config, cells["clip_b16-cub-ft-sgd"], str(tmp_path))
  assert (sgd.train.optim.name, sgd.train.optim.lr) == ("sgd", 1e-5)
  # Training dirs are keyed by what determines the run: the heatmap ablation
  # shares the FT run; the optimiser ablation does not.
  gradcam = grid.cell_config(config, cells["clip_b16-cub-ft-gradcam"], "W")
  plain = grid.cell_config(config, cells["clip_b16-cub-ft"], "W")
  assert grid.train_dir(gradcam, "W") == grid.train_dir(plain, "W")
  assert grid.train_dir(sgd, "W") != grid.train_dir(plain, "W")
  assert grid.train_dir(plain, "W").startswith("W/train/ft-clip_b16-")
  zs = grid.cell_config(config, cells["clip_b16-cub-zs"], str(tmp_path))
  assert resolve.heatmap_label(zs) == "chefer(start_layer=-1)"
