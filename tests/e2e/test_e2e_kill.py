"""SIGKILL during an evaluation; the same command again gives the uninterrupted report."""

import json
import signal
import subprocess
import time

import pytest

from tests import cli

ARGS = [
  "--config=configs/evaluate.py:model=assets/demo_clip",
  "--config.train_data.builder_kwargs.test_size=120",
  # Only the test split is evaluated: a small train split is built faster.
  "--config.train_data.builder_kwargs.train_size=16",
  "--config.evaluate.batch_size=8",
]


def _rows(workdir):
  rows = json.loads((workdir / "results.json").read_text())["rows"]
  for row in rows:
    row.pop("run_dir")
  return rows


@pytest.mark.slow
def test_sigkill_mid_evaluation_then_rerun_gives_the_same_report(tmp_path):
  whole, killed = tmp_path / "whole", tmp_path / "killed"
  cli.main(*ARGS, workdir=whole, check=True)
  process = cli.start(
    *ARGS, workdir=killed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
  )
  progress = killed / "records" / "p0-of-1" / "progress.json"
  deadline = time.time() + 600
  state = None
  while time.time() < deadline and process.poll() is None:
    if progress.exists():
      try:
        state = json.loads(progress.read_text())
      except ValueError:
        state = None
      if state and state["chunks"] >= 2:
        break
    time.sleep(0.02)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert state is not None and not state["complete"], (
    "the evaluation ended before the kill"
  )

  again = cli.main(*ARGS, workdir=killed, check=True)
  assert "resuming" in again.stdout
  assert _rows(killed) == _rows(whole)
  assert _rows(whole)[0]["n"] == 120
  assert (killed / "records.csv").read_text() == (
    whole / "records.csv"
  ).read_text()
