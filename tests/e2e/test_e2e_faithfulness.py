"""evaluate.faithfulness through the command: ROAD's curves on the demo model.

The per-sample areas land in the records, their means in the summary, the
table in report.md names the fill, results.csv carries it, and another fill
in the same workdir is another configuration (refused, or `--fresh`).
"""

import csv
import io
import json

import numpy as np
import pytest

from rationality_jax import resources
from rationality_jax.report import records
from tests import cli

DEMO = str(resources.demo_model())
ARGS = (
  f"--config=configs/evaluate.py:model={DEMO}",
  "--config.train_data.builder_kwargs.train_size=64",
  "--config.train_data.builder_kwargs.test_size=16",
  "--config.evaluate.faithfulness=deletion+insertion",
  "--config.evaluate.faithfulness_steps=4",
)


@pytest.mark.slow
def test_road_curves_from_the_command(tmp_path):
  workdir = tmp_path / "road"
  cli.run(
    *ARGS,
    f"--config.data.dir={tmp_path / 'data'}",
    "--config.evaluate.faithfulness_fill=road",
    workdir=workdir,
    check=True,
  )
  arrays = records.load(str(workdir)).arrays()
  for curve in ("deletion", "insertion"):
    auc = arrays[f"{curve}_auc"]
    assert auc.shape == (16,) and np.isfinite(auc).all()
    assert ((auc >= 0) & (auc <= 1)).all()  # areas of a probability
  summary = json.loads((workdir / "summary.json").read_text())
  np.testing.assert_allclose(
    summary["mean_deletion_auc"], arrays["deletion_auc"].mean(), rtol=1e-5
  )
  report = (workdir / "report.md").read_text()
  assert "| ROAD (noisy linear imputation) |" in report
  (row,) = csv.DictReader(io.StringIO((workdir / "results.csv").read_text()))
  assert row["faithfulness_fill"] == "road"
  # RISE's fills give other areas: another configuration for this workdir.
  rise = (*ARGS, f"--config.data.dir={tmp_path / 'data'}")
  refused = cli.run(*rise, workdir=workdir, check=False)
  assert "another configuration" in cli.last_line(refused)
  cli.run(*rise, "--fresh", workdir=workdir, check=True)
  (fresh,) = workdir.glob("fresh-*")
  other = records.load(str(fresh)).arrays()["deletion_auc"]
  assert np.isfinite(other).all() and not np.allclose(
    other, arrays["deletion_auc"]
  )
