"""The reduced demo end to end: the report's numbers are the per-sample records'."""

import csv
import json
import shutil
import subprocess

import numpy as np
import pytest

from tests import cli

DEMO = "--config=configs/demo.py:quick=1"


def _records(path):
  with open(path) as f:
    rows = list(csv.DictReader(f))
  return {k: np.asarray([r[k] for r in rows]) for k in rows[0]}


def _from_records(records, threshold=0.5):
  """Accuracy, PT, IR, counts and means, computed here with plain numpy."""
  label, prediction = (
    records["label"].astype(int),
    records["prediction"].astype(int),
  )
  correct = records["correct"].astype(int) == 1
  rma = records["rma"].astype(float)
  assert np.array_equal(correct, label == prediction)
  valid = rma >= threshold
  rr, rw = int(np.sum(correct & valid)), int(np.sum(correct & ~valid))
  wr, ww = int(np.sum(~correct & valid)), int(np.sum(~correct & ~valid))
  return {
    "n": len(label),
    "accuracy": correct.mean(),
    "rr": rr,
    "rw": rw,
    "wr": wr,
    "ww": ww,
    "pt": rr / (rr + rw) if rr + rw else float("nan"),
    "ir": rr / (rr + wr) if rr + wr else float("nan"),
    "mean_rma": rma.mean(),
    "mean_rra": records["rra"].astype(float).mean(),
    "mean_pointing_game": records["pointing_game"].astype(float).mean(),
  }


@pytest.fixture(scope="module")
def demo(quick_demo):
  """The quick demo's workdir (shared with tests/report) and its output."""
  workdir, stdout, stderr = quick_demo
  return workdir, subprocess.CompletedProcess([], 0, stdout, stderr)


@pytest.mark.slow
def test_demo_writes_report_tables_and_figures(demo):
  workdir, result = demo
  report = (workdir / "report.md").read_text()
  for heading in (
    "## All runs",
    "Prediction trustworthiness (PT, %), the study's Table 1",
    "Inference reliability (IR, %), the study's Table 2",
  ):
    assert heading in report
  # The console ends with the table and the report's path.
  lines = result.stdout.strip().splitlines()
  assert lines[-1].startswith("report: ") and lines[-2].startswith("| ft |")
  assert len((result.stdout + result.stderr).splitlines()) < 60
  for name in ("pt_ir_threshold.png", "heatmaps_demo_clip_synthetic.png"):
    png = workdir / "figures" / name
    assert (
      png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
      and png.stat().st_size > 10_000
    )
  rows = json.loads((workdir / "results.json").read_text())["rows"]
  assert [r["method"] for r in rows] == ["zs", "lp", "ft"]
  # The grid's randomisation test of its heatmap (sanity.images = 16).
  assert "## Sanity checks" in report
  assert "| demo_clip | chefer(start_layer=0) | " in report
  (checked,) = (workdir / "sanity" / "demo_clip").glob("chefer*/sanity.json")
  steps = json.loads(checked.read_text())
  steps = steps.get("heatmaps", steps)["chefer"]["steps"]
  assert [s["step"] for s in steps] == [0, 1, 2]
  with open(workdir / "results.csv") as f:
    assert [r["method"] for r in csv.DictReader(f)] == ["zs", "lp", "ft"]


def test_report_numbers_are_the_records_numbers(demo):
  workdir, _ = demo
  rows = json.loads((workdir / "results.json").read_text())["rows"]
  report = (workdir / "report.md").read_text()
  with open(workdir / "results.csv") as f:
    csv_rows = list(csv.DictReader(f))
  for row, csv_row in zip(rows, csv_rows):
    expected = _from_records(
      _records(workdir / "eval" / row["name"] / "records.csv")
    )
    assert expected["n"] == 100
    for key, value in expected.items():
      for got in (row[key], float(csv_row[key])):
        if np.isnan(value):
          assert np.isnan(got), key
        else:
          assert got == pytest.approx(value, abs=1e-6), (row["name"], key)
    line = next(
      r for r in report.splitlines() if r.startswith(f"| {row['name']} |")
    )
    cells = [c.strip() for c in line.strip("|").split("|")]
    for cell, k in zip(cells[5:8], ("accuracy", "pt", "ir")):
      if np.isnan(expected[k]):
        assert cell == "-", (row["name"], k, cell)
        continue
      # "estimate [low, high]": the records' number and its 95% interval.
      estimate, interval = cell.split(" ", 1)
      assert estimate == f"{100 * expected[k]:.2f}", (row["name"], k, cell)
      low, high = (float(x) for x in interval.strip("[]").split(","))
      assert [low, high] == pytest.approx(
        [100 * x for x in row[f"{k}_ci"]], abs=0.005
      )
      assert low <= float(estimate) <= high
    assert [int(c) for c in cells[11:16]] == [
      expected[k] for k in ("rr", "rw", "wr", "ww", "n")
    ]
    run = json.loads(
      (workdir / "eval" / row["name"] / "summary.json").read_text()
    )
    assert run["rr"] == expected["rr"] and run["n"] == 100


@pytest.mark.slow
def test_rerun_resumes_everything_and_changes_nothing(demo, tmp_path):
  # A copy (the shared workdir stays as made), moved: a workdir is relocatable.
  workdir = tmp_path / "demo"
  shutil.copytree(demo[0], workdir)

  def results():
    with open(workdir / "results.csv") as f:
      return list(csv.DictReader(f))

  before = results()
  cli.main(DEMO, workdir=workdir, check=True, literal=True)
  after = results()
  # Every number as it was; each run's directory is where it now lives.
  for row in after:
    assert row.pop("run_dir") == str(workdir / "eval" / row["name"])
  assert after == [
    {k: v for k, v in r.items() if k != "run_dir"} for r in before
  ]
  timings = json.loads((workdir / "timings.json").read_text())
  assert timings["train lp"] < 1 and timings["cell lp"] < 10
