"""The presets, the quirk ablation's grid and its report; like-with-like tables."""

import json
import os

import numpy as np
import pytest

from rationality_jax import report
from rationality_jax.run import cells as cells_lib
from rationality_jax.run import grid
from rationality_jax.run import validate
from tests import cli


def _cells(config):
  return {c["name"]: cells_lib.for_cell(config, c) for c in config.cells}


# ------------------------------------------------------------------ presets --


def test_release_preset_switches_each_quirk_where_the_release_had_it(
  config_file,
):
  config = config_file("paper", "preset=release")
  runs = _cells(config)
  cub_zs, cub_lp = runs["clip_b16-cub-zs"], runs["clip_b16-cub-lp"]
  for run in runs.values():  # everywhere
    assert run.preprocess.normalization == "imagenet"
    assert (run.evaluate.empty_mask, run.evaluate.nonfinite) == (
      "release",
      "release",
    )
    assert run.heatmap.constant_map == "nan"
  assert (cub_zs.heatmap.start_layer, cub_lp.heatmap.start_layer) == (-1, 0)
  assert cub_zs.preprocess.mask_order == "release"
  assert cub_zs.train_data.builder_kwargs.split_order == "release"
  # float16 only for CLIP's ZS/FLCP (LP_Net casts to float32; ALBEF/BLIP fp32).
  fp16 = {n for n, r in runs.items() if r.model.accelerator_dtype == "float16"}
  assert "clip_b32-dogs-flcp" in fp16
  assert all(
    runs[n].model.name.startswith("clip") and runs[n].method in ("zs", "flcp")
    for n in fp16
  )

  # Untrained heads: LP/FT everywhere but ImageNet.
  frozen = {n for n, r in runs.items() if r.train.release_frozen_head}
  assert "albef_b16-caltech101-ft" in frozen and "clip_b16-cub-lp" in frozen
  assert not any("imagenet" in n for n in frozen)
  # First 5 batches of 64: ImageNet and ImageNet-C only.
  first = {n for n, r in runs.items() if r.evaluate.max_batches}
  assert {runs[n].evaluate.batch_size for n in first} == {64}
  assert first == {n for n in runs if "-imagenet" in n}
  dogs = runs["blip_b16-dogs-zs"]
  assert (dogs.train_data.builder_kwargs.boxes, dogs.head.class_names) == (
    "last",
    "release",
  )
  assert dogs.train_data.builder_kwargs.box_fill == "inclusive"
  caltech = runs["clip_b16-caltech101-zs"].train_data.builder_kwargs
  assert (caltech.split_scheme, caltech.contour, caltech.background_class) == (
    "release",
    "release",
    True,
  )
  snow = runs["clip_b16-imagenet_c-snow-zs"]
  assert snow.eval_data.builder_kwargs.mask_style == "release"
  assert snow.preprocess.mask_order == "ours"  # ImageNet-C: the builder's
  assert config.report.published
  for run in runs.values():
    run.model.path = "random:tiny"  # no checkpoint here; the rest validates
    validate.validate_run(run)


def test_paper_and_default_presets_keep_our_fixes(config_file):
  for preset in ("paper", "default"):
    runs = _cells(config_file("paper", f"preset={preset}"))
    for run in runs.values():
      assert not run.train.release_frozen_head
      assert run.evaluate.max_batches == 0
      assert run.evaluate.empty_mask == "undefined"
      assert run.heatmap.constant_map == "zero"
      assert run.preprocess.mask_order == "ours"
      assert run.model.accelerator_dtype == ""


def test_methods_argument_restricts_the_cells(config_file):
  config = config_file(
    "paper", "preset=release,models=clip_b16,datasets=cub,parts=main,methods=zs"
  )
  assert [c["name"] for c in config.cells] == ["clip_b16-cub-zs"]


def test_settings_list_the_preset_dataset_options_and_cell_overrides(
  config_file,
):
  lines = grid.settings(config_file("paper", "preset=release"))
  assert lines[0] == "preset: release"
  assert "preprocess.normalization = 'imagenet' (default 'model')" in lines
  assert (
    "datasets.cub.train_data (cub_200_2011): split_order='release'" in lines
  )
  assert (
    "datasets.dogs.train_data (stanford_dogs_masks): box_fill='inclusive', "
    "boxes='last'" in lines
  )
  assert (
    "datasets.imagenet_c.eval_data (imagenet_c_masks): mask_style='release'"
    in (lines)
  )
  assert "models.clip_b16.image_size = 224 (default 0)" in lines
  frozen = [
    line
    for line in lines
    if line.startswith("train.release_frozen_head = True")
  ]
  assert len(frozen) == 1 and "in 34 cell(s)" in frozen[0]
  # The grid's own value is said once, not per cell; the method never.
  assert not any(
    line.startswith("preprocess.normalization = 'imagenet' (")
    and "cell" in line
    for line in lines
  )
  assert not any(
    line.startswith(("method", "eval_data.split")) for line in lines
  )
  default = grid.settings(config_file("paper", "preset=default"))
  assert not any("datasets." in line for line in default)


# ---------------------------------------------------------- quirk ablation --


@pytest.mark.parametrize("dataset", ["synthetic", "cub", "dogs", "imagenet"])
def test_quirk_grid_switches_one_quirk_per_cell(dataset, config_file):
  config = config_file("quirks", f"dataset={dataset}")
  cells = {c["name"]: c for c in config.cells}
  pairs = report.quirk_pairs(config.cells)
  assert pairs and {p["baseline"] for p in pairs} <= set(cells)
  for pair in pairs:
    base, quirky = cells[pair["baseline"]], cells[pair["name"]]
    added = {
      k: v for k, v in quirky["set"].items() if base["set"].get(k, None) != v
    }
    assert added, pair  # the quirk changes something
    assert (quirky["model"], quirky["dataset"]) == (
      base["model"],
      base["dataset"],
    )
    assert pair["name"] == f"{pair['baseline']}+{pair['quirk']}"
    assert ".py" in pair["source"] or ".json" in pair["source"], pair
  quirks = {p["quirk"] for p in pairs}
  expected = {
    "empty_mask",
    "nan_map",
    "normalization",
    "heatmap_layers",
    "fp16",
  }
  assert expected <= quirks
  assert ("frozen_head" in quirks) == (dataset != "imagenet")
  assert ("first_batches" in quirks) == (dataset == "imagenet")
  assert ("mask_order" in quirks) == (dataset != "synthetic")
  assert ("split_order" in quirks) == (dataset == "cub")
  assert ("dogs_last_box" in quirks) == (dataset == "dogs")
  # Where a quirk changes nothing (LP/FT already use every block) it is absent.
  assert "lp+heatmap_layers" not in cells and "zs+heatmap_layers" in cells
  config.lock()  # as rationality_jax.main holds it
  for spec in config.cells:
    run = cells_lib.for_cell(config, spec)
    run.model.path = run.model.path or "random:tiny"
    validate.validate_run(run)


def test_fp16_quirk_is_forced_or_the_accelerator_option(config_file):
  forced = {c["name"]: c for c in config_file("quirks", "").cells}
  assert forced["zs+fp16"]["set"]["model.dtype"] == "float16"
  own = {c["name"]: c for c in config_file("quirks", "fp16=accelerator").cells}
  assert own["zs+fp16"]["set"]["model.accelerator_dtype"] == "float16"
  only = config_file("quirks", "methods=zs,quirks=nan_map+fp16").cells
  assert [c["name"] for c in only] == ["zs", "zs+nan_map", "zs+fp16"]


def _row(name, method, accuracy, pt, ir):
  return dict(
    name=name,
    method=method,
    model="m",
    dataset="d",
    accuracy=accuracy,
    pt=pt,
    ir=ir,
  )


def test_quirk_tables_per_cell_and_average_never_count_a_missing_run():
  rows = [
    _row("zs", "zs", 0.50, 0.60, 0.70),
    _row("zs+a", "zs", 0.50, 0.40, 0.75),
    _row("lp", "lp", 0.80, 0.50, 0.50),
    _row("lp+a", "lp", 0.70, 0.30, 0.40),
    _row("lp+b", "lp", 0.60, float("nan"), 0.40),
    # zs+b failed: no row.
  ]
  pairs = [
    {"quirk": "a", "name": "zs+a", "baseline": "zs"},
    {"quirk": "a", "name": "lp+a", "baseline": "lp"},
    {"quirk": "b", "name": "zs+b", "baseline": "zs"},
    {"quirk": "b", "name": "lp+b", "baseline": "lp"},
    {"quirk": "c", "name": "lp+c", "baseline": "lp"},
  ]
  deltas = report.quirk_deltas(rows, pairs)
  by = {(d["quirk"], d["baseline"]): d for d in deltas}
  assert by[("a", "zs")]["d_pt"] == pytest.approx(-0.20)
  assert by[("a", "lp")]["d_accuracy"] == pytest.approx(-0.10)
  assert np.isnan(by[("b", "zs")]["d_pt"])  # missing run: unknown, not 0
  assert np.isnan(by[("b", "lp")]["d_pt"])  # undefined PT
  pt = report.quirk_table(deltas, "pt")
  assert "| a | -20.00 | -20.00 | -20.00 |" in pt
  assert "| b | - | - | - |" in pt
  assert "| c | n/a | - | - |" in pt
  acc = report.quirk_table(deltas, "accuracy")
  assert "| a | +0.00 | -10.00 | -5.00 |" in acc
  assert "| b | - | -20.00 | -20.00 (1/2 cells) |" in acc
  summary = report.quirk_summary(deltas)
  assert "| a | -5.00 | -20.00 | -2.50 | 2 |" in summary
  pairs[0]["source"] = "what it does (utils/x.py)"
  summary = report.quirk_summary(report.quirk_deltas(rows, pairs))
  assert "| a | -5.00 | -20.00 | -2.50 | 2 | what it does (utils/x.py) |" in (
    summary
  )


def test_quirk_figure(tmp_path):
  deltas = report.quirk_deltas(
    [_row("zs", "zs", 0.5, 0.6, 0.7), _row("zs+a", "zs", 0.4, 0.5, 0.9)],
    [{"quirk": "a", "name": "zs+a", "baseline": "zs"}],
  )
  path = report.figure_quirks(deltas, str(tmp_path / "q.png"))
  assert os.path.getsize(path) > 5_000


def test_metric_table_averages_the_same_cells_on_both_sides():
  """Like with like: a cell missing on our side (or failed) leaves the
  paper's average too; both means run over the same cells."""
  rows = [
    dict(method="zs", model="clip_b16", dataset="cub", pt=0.30),
    dict(method="zs", model="clip_b16", dataset="dogs", pt=0.90),
  ]
  published = {
    ("pt", "zs", "clip_b16", "cub"): 29.38,
    ("pt", "zs", "clip_b16", "dogs"): 92.96,
    ("pt", "zs", "clip_b16", "caltech101"): 62.99,
  }
  failed = {("zs", "clip_b16", "caltech101")}
  table = report.metric_table(rows, "pt", published, failed=failed)
  ours, paper = np.mean([30.0, 90.0]), np.mean([29.38, 92.96])
  assert f"{ours:.2f} / {paper:.2f} ({ours - paper:+.2f}) (2/3 cells)" in table
  assert "| failed |" in table
  # Without the paper's values the average is ours over the cells we have.
  plain = report.metric_table(rows, "pt", failed=failed)
  assert f"| {ours:.2f} (2/3 cells) |" in plain
  # A NaN of ours (no correct prediction) leaves both means as well.
  rows[1]["pt"] = float("nan")
  table = report.metric_table(rows, "pt", published)
  assert "| 30.00 / 29.38 (+0.62) (1/2 cells) |" in table


def test_metric_table_shows_each_methods_first_cell_and_its_seeds():
  """A grid's later cells of the same method, model and dataset (an
  ablation's learning rate, a held-out heatmap) stay out of the study's
  tables; the seeds of the first cell are averaged."""
  base = dict(method="ft", model="clip_b16", dataset="cub")
  rows = [
    dict(base, group="ft", pt=0.40),
    dict(base, group="ft", pt=0.50),  # its second seed
    dict(base, group="ft-lr0.0001", pt=0.10),
    dict(base, group="ft@gradcam", pt=0.05),
    dict(base, method="zs", group="zs@rollout", pt=0.70),
  ]
  table = report.metric_table(rows, "pt")
  assert "| ft | 45.00 | 45.00 |" in table
  assert "| zs | 70.00 | 70.00 |" in table  # its only cell


@pytest.mark.slow
def test_quirk_ablation_on_the_synthetic_benchmark(tmp_path):
  """The command of docs/release.md, reduced: two methods, 8 steps, 60 test
  images, and the 256 training images 8 steps of 32 read."""
  workdir = tmp_path / "quirks"
  cli.main(
    "--config=configs/quirks.py:dataset=synthetic,methods=zs+lp,test_size=60",
    "--config.train.total_steps=8",
    "--config.datasets.synthetic.train_data.builder_kwargs.train_size=256",
    "--config.sanity.images=0",  # not what this test compares
    workdir=workdir,
    check=True,
    timeout=1200,
  )
  text = (workdir / "report.md").read_text()
  assert "## Release quirks: what each one moves" in text
  assert "## Release quirks: Δ PT per cell (pp)" in text
  assert (workdir / "figures" / "quirks.png").stat().st_size > 5_000
  with open(workdir / "results.json") as f:
    rows = {r["name"]: r for r in json.load(f)["rows"]}
  # The tables are the runs' differences.
  d = 100 * (rows["lp+frozen_head"]["pt"] - rows["lp"]["pt"])
  assert f"| frozen_head | n/a | {d:+.2f} | {d:+.2f} |" in text
  # Policies that have nothing to act on here leave every number alone.
  for quirk in ("empty_mask", "nan_map"):
    for key in ("accuracy", "pt", "ir", "rr", "rw", "wr", "ww"):
      assert rows[f"zs+{quirk}"][key] == rows["zs"][key]
