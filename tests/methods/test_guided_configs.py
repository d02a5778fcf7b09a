"""The guided methods in the grids: the demo's cells, the paper's part
``guided`` (names, overrides, shared trainings) and a tiny grid through the
report (the held-out table, the masks-per-class table and figure)."""

import json
import os

import pytest

from rationality_jax.run import cells as cells_lib
from rationality_jax.run import grid
from rationality_jax.run import validate


def _runs(config):
  return {c["name"]: cells_lib.for_cell(config, c) for c in config.cells}


def test_demo_has_the_cure_beside_ft(config_file):
  config = config_file("demo")
  validate.validate(config)
  runs = _runs(config)
  ft = runs["ft"]
  for name in ("guided", "guided_ft", "rrr"):
    run = runs[name]
    assert run.method == name
    assert run.train.total_steps == ft.train.total_steps == 60
    assert run.train.batch_size == ft.train.batch_size
    assert run.train_data.to_dict() == ft.train_data.to_dict()
    assert run.heatmap.name == "chefer"
  assert runs["guided"].guided.lambda_seg == 0.9
  for method in ("zs", "flcp", "ft", "guided", "guided_ft", "rrr"):
    for heatmap in ("gradcam", "rollout"):
      held = runs[f"{method}@{heatmap}"]
      assert held.heatmap.name == heatmap
      assert held.evaluate.figure_images == 0  # not in the heatmap figure
      # One training, scored by several heatmaps.
      assert grid.train_dir(held, "W") == grid.train_dir(runs[method], "W")
  few = _runs(config_file("demo", "masks=1"))
  assert few["guided-k3"].guided.masks_per_class == 3
  assert few["rrr-k10@rollout"].rrr.masks_per_class == 10
  assert grid.train_dir(few["guided-k3"], "W") != grid.train_dir(
    runs["guided"], "W"
  )


@pytest.mark.parametrize("preset", ["paper", "default"])
def test_paper_guided_part(preset, config_file, tmp_path):
  config = config_file(
    "paper",
    f"preset={preset},parts=main+guided,guided=guided+guided_ft+rrr",
  )
  checkpoint = tmp_path / "model.pt"  # identity() hashes it, never loads it
  checkpoint.write_bytes(b"not loaded here")
  for model in config.models.values():
    model.path = str(checkpoint)
  runs = _runs(config)
  names = [c["name"] for c in config.cells]
  assert len(names) == len(set(names))
  guided = {n for n, r in runs.items() if r.method in ("guided", "rrr")}
  # 4 models x 3 datasets (ImageNet's training split has no masks) x 4 k x
  # (Chefer, Grad-CAM, rollout).
  assert len(guided) == 2 * 4 * 3 * 4 * 3
  assert not any("imagenet" in n for n in guided)
  assert {runs[n].guided.masks_per_class for n in guided if "guided-" in n} == {
    1,
    3,
    10,
    -1,
  }
  k3 = runs["clip_b16-cub-guided-k3"]
  assert k3.train.optim.lr == 1e-5 and k3.heatmap.name == "chefer"
  # Trained on the map its cell evaluates: FLCP's blocks in the paper preset.
  assert k3.guided.start_layer == k3.heatmap.start_layer
  assert k3.heatmap.start_layer == (-1 if preset == "paper" else 0)
  ft_like = runs["albef_b16-dogs-guided_ft-k10"]
  assert ft_like.heatmap.start_layer == 0 and ft_like.train.optim.lr == 1e-5
  rollout = runs["clip_b16-cub-guided-k3@rollout"]
  assert (rollout.heatmap.name, rollout.heatmap.start_layer) == ("rollout", 0)
  assert rollout.evaluate.figure_images == 0
  assert grid.train_dir(rollout, "W") == grid.train_dir(k3, "W")
  assert grid.train_dir(runs["clip_b16-cub-guided-k10"], "W") != grid.train_dir(
    k3, "W"
  )
  assert runs["clip_b16-cub-rrr-kall"].rrr.masks_per_class == -1
  assert runs["clip_b16-cub-rrr-kall"].evaluate.figure_images == 6
  # Baselines: the main part's cells, and ZS/FLCP/FT under the held-out maps.
  assert runs["clip_b16-cub-ft@gradcam"].method == "ft"
  assert "clip_b16-imagenet-zs" in runs
  for name in ("clip_b16-cub-guided-kall", "blip_b16-caltech101-rrr-k1"):
    run = runs[name]
    run.model.path = "random:tiny"
    validate.validate_run(run)
  # Opt-in: the default parts have no guided cell.
  default = _runs(config_file("paper", f"preset={preset}"))
  assert not any(r.method in ("guided", "rrr") for r in default.values())


def test_paper_guided_part_alone_brings_its_baselines(config_file):
  config = config_file(
    "paper", "preset=release,parts=guided,models=clip_b16,datasets=cub"
  )
  runs = _runs(config)
  assert {"clip_b16-cub-zs", "clip_b16-cub-lp", "clip_b16-cub-ft"} <= set(runs)
  guided = runs["clip_b16-cub-guided-k1"]
  # The release's quirks of its objective (FLCP), in float32.
  assert guided.heatmap.start_layer == guided.guided.start_layer == -1
  assert guided.preprocess.mask_order == "release"
  assert guided.model.accelerator_dtype == ""
  assert runs["clip_b16-cub-flcp"].model.accelerator_dtype == "float16"


@pytest.mark.slow
def test_tiny_guided_grid_reports_held_out_heatmaps_and_masks(
  tmp_path, config_file
):
  """A tiny grid (random:tiny at 16 px, 2 steps): guided at 1 mask per class
  and at every mask, each under Chefer and Grad-CAM, beside ZS."""
  config = config_file("demo", "quick=1")
  config.models.demo_clip = cells_lib.model_section(
    "random:tiny", name="tiny", image_size=16
  )
  config.datasets.synthetic.train_data.builder_kwargs.update(
    image_size=16, train_size=32, test_size=16
  )
  config.train.update(total_steps=2, batch_size=16)
  # Neither the randomisation test nor report.html's thumbnails are asked of
  # this grid (tests/report and tests/explain check them).
  config.evaluate.update(batch_size=16, figure_images=2, gallery_images=0)
  config.sanity.images = 0
  cells = [cells_lib.cell("zs", "demo_clip", "synthetic", method="zs")]
  for k in (1, -1):
    for heatmap in ("chefer", "gradcam"):
      cells.append(
        cells_lib.cell(
          f"guided-k{k}@{heatmap}",
          "demo_clip",
          "synthetic",
          method="guided",
          **{
            "guided.masks_per_class": k,
            "heatmap.name": heatmap,
            "train.optim.lr": 1e-3,
          },
        )
      )
  cells.append(
    cells_lib.cell(
      "zs@gradcam",
      "demo_clip",
      "synthetic",
      method="zs",
      **{"heatmap.name": "gradcam"},
    )
  )
  config.cells = cells
  result = grid.run(config, str(tmp_path))
  assert not result["failed"]
  with open(result["paths"]["report.md"]) as f:
    report = f.read()
  assert "## Trained and held-out heatmaps" in report
  assert "## Masks per class" in report
  assert "| PT k=1 | PT k=all |" in report
  assert os.path.exists(tmp_path / "figures" / "masks_per_class.png")
  trained = sorted(os.listdir(tmp_path / "train"))
  assert len(trained) == 2  # k=1 and k=-1, each scored by two heatmaps
  for name in trained:
    meta_dirs = tmp_path / "train" / name
    record = json.loads((meta_dirs / "config.json").read_text())
    assert record["method"] == "guided"
