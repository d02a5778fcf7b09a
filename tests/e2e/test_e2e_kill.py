"""SIGKILL during an evaluation; the same command again gives the uninterrupted report."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
ARGS = [
  "--config=configs/evaluate.py:model=assets/demo_clip",
  "--config.train_data.builder_kwargs.test_size=120",
  "--config.evaluate.batch_size=8",
]


def _command(workdir):
  return [
    sys.executable,
    "-m",
    "rationality_jax.main",
    *ARGS,
    f"--workdir={workdir}",
  ]


def _env():
  return dict(os.environ, JAX_PLATFORMS="cpu")


def _rows(workdir):
  rows = json.loads((workdir / "results.json").read_text())["rows"]
  for row in rows:
    row.pop("run_dir")
  return rows


@pytest.mark.slow
def test_sigkill_mid_evaluation_then_rerun_gives_the_same_report(tmp_path):
  whole, killed = tmp_path / "whole", tmp_path / "killed"
  done = subprocess.run(
    _command(whole),
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
    env=_env(),
  )
  assert done.returncode == 0, done.stderr[-3000:]

  process = subprocess.Popen(
    _command(killed),
    cwd=REPO,
    env=_env(),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
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

  again = subprocess.run(
    _command(killed),
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
    env=_env(),
  )
  assert again.returncode == 0, again.stderr[-3000:]
  assert "resuming" in again.stdout
  assert _rows(killed) == _rows(whole)
  assert _rows(whole)[0]["n"] == 120
  assert (killed / "records.csv").read_text() == (
    whole / "records.csv"
  ).read_text()
