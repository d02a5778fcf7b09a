"""configs/sanity.py through the command: the cascading model-randomisation
test of the demo model's heatmaps, its record and its flag.

The demo model has 2 blocks, so each heatmap gets 3 steps (the trained model,
then the top block re-initialised, then both); the `random` control ignores
the model and must be flagged, Chefer's relevance must decorrelate.
"""

import json

import pytest

from rationality_jax import resources
from tests import cli

DEMO = str(resources.demo_model())


@pytest.mark.slow
def test_sanity_mode_flags_the_control_and_passes_chefer(tmp_path):
  workdir = tmp_path / "sanity"
  done = cli.main(
    f"--config=configs/sanity.py:model={DEMO},heatmaps=chefer+random,images=8",
    "--config.train_data.builder_kwargs.train_size=64",
    "--config.train_data.builder_kwargs.test_size=16",
    workdir=workdir,
    check=True,
  )
  results = json.loads((workdir / "sanity.json").read_text())
  results = results.get("heatmaps", results)
  assert sorted(results) == ["chefer", "random"]
  for name, result in results.items():
    steps = result["steps"]
    assert [s["step"] for s in steps] == [0, 1, 2], name
    # Step 0 compares the trained model's maps with themselves.
    assert steps[0]["spearman"] == steps[0]["ssim"] == 1.0, name
  assert results["random"]["flagged"]
  assert min(s["spearman"] for s in results["random"]["steps"]) > 0.99
  chefer = results["chefer"]
  assert not chefer["flagged"] and chefer["steps"][-1]["spearman"] < 0.5
  report = (workdir / "report.md").read_text()
  assert "| random | 2 | 1.000 | 1.000 | FLAGGED |" in report
  assert (workdir / "sanity.png").stat().st_size > 10_000
  assert json.loads((workdir / "run.json").read_text())["status"] == "complete"
  # The console names the flagged heatmap.
  assert "sanity: random's maps stay similar" in done.stdout + done.stderr
