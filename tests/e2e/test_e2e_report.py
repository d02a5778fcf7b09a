"""Reports from records alone: the study's table layout, published values, ImageNet-C rows."""

import os

import numpy as np
import pytest

from rationality_jax import evaluate
from rationality_jax import grid
from rationality_jax import metrics
from rationality_jax import report


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
  evaluate.write_json(os.path.join(directory, "meta.json"), meta)
  return str(directory)


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
  assert (
    "| a | zs | clip_b16 | cub | chefer(start_layer=-1) | 66.67 | 75.00 | 75.00 |"
    in text
  )
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
def test_paper_grid_config(preset):
  config = grid.config_file("paper", f"preset={preset}")
  main = [
    c
    for c in config.cells
    if not (c.variant or c.corruption)
    and c.heatmap == "chefer"
    and c.method in ("zs", "lp", "flcp", "ft")
  ]
  assert len(main) == 4 * 4 * 4
  assert {c.method for c in main} == {"zs", "lp", "flcp", "ft"}
  by_name = {c.name: c for c in config.cells}
  zs, ft = by_name["clip_b16-cub-zs"], by_name["clip_b16-cub-ft"]
  if preset == "paper":
    assert (zs.heatmap_args.start_layer, ft.heatmap_args.start_layer) == (-1, 0)
    assert "normalize('imagenet')" in config.datasets.cub.pp_eval
    assert config.datasets.dogs.builder_kwargs.boxes == "last"
    assert config.report.published
  else:
    assert (zs.heatmap_args.start_layer, ft.heatmap_args.start_layer) == (0, 0)
    assert "normalize('clip')" in config.datasets.cub.pp_eval
    assert config.datasets.dogs.builder_kwargs.boxes == "all"
  assert (
    ft.train.optim.lr == 1e-5
    and by_name["clip_b16-cub-lp"].train.optim.lr == 1e-3
  )
  assert sum(c.corruption != "" for c in config.cells) == 4 * 15
  assert {
    "clip_b16-cub-coop",
    "clip_b16-cub-adapter",
    "clip_b16-cub-ft-sgd",
    "clip_b16-cub-ft-lr0.0001",
    "clip_b16-cub-zs-gradcam",
  } <= set(by_name)


def test_grid_cell_training_configs(tmp_path):
  config = grid.config_file("paper", "preset=paper,parts=main+ablations")
  with config.unlocked():
    config.models.clip_b16 = "/ckpt/ViT-B-16.pt"
  cells = {c.name: c for c in config.cells}
  ft = grid.train_config(config, cells["clip_b16-dogs-ft"], str(tmp_path))
  assert (ft.method, ft.optim.lr, ft.optim.name, ft.batch_size) == (
    "ft",
    1e-5,
    "adam",
    32,
  )
  assert (
    ft.model.path == "/ckpt/ViT-B-16.pt"
    and ft.num_epochs == 10
    and ft.seed == 42
  )
  assert (
    ft.dataset.name == "stanford_dogs_masks"
    and ft.dataset.builder_kwargs.boxes == "last"
  )
  assert (
    "random_resized_crop(224)" in ft.pp_train and "'imagenet'" in ft.pp_train
  )
  sgd = grid.train_config(config, cells["clip_b16-cub-ft-sgd"], str(tmp_path))
  assert (sgd.optim.name, sgd.optim.lr) == ("sgd", 1e-5)
  assert (
    grid.train_dir(cells["clip_b16-cub-ft-sgd"], "W")
    == "W/train/clip_b16-cub-ft-sgd"
  )
  zs = grid.train_config(config, cells["clip_b16-cub-zs"], str(tmp_path))
  assert zs.total_steps == 0
  assert grid.heatmap_name(cells["clip_b16-cub-zs"]) == "chefer(start_layer=-1)"
