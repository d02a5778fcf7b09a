"""Multi-host evaluation: 2 processes give exactly the records and report of 1.

Each process evaluates a disjoint shard, writes its own records and resumes
on its own; process 0 merges. Killing one process mid-way and rerunning both
resumes without loss or double counting.
"""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from tests import cli

ARGS = [
  "--config=configs/evaluate.py:model=assets/demo_clip",
  "--config.train_data.builder_kwargs.test_size=64",
  "--config.train_data.builder_kwargs.train_size=16",
  "--config.evaluate.batch_size=8",
]


def _distributed(process, port):
  return [
    "--config.distributed.initialize=True",
    f"--config.distributed.coordinator_address=localhost:{port}",
    "--config.distributed.num_processes=2",
    f"--config.distributed.process_id={process}",
    "--config.distributed.cpu_collectives=gloo",
  ]


def _port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _two_processes(workdir, **popen):
  port = _port()
  return [
    cli.start(
      *ARGS, *_distributed(i, port), workdir=workdir, text=True, **popen
    )
    for i in range(2)
  ]


def _results(workdir):
  rows = json.loads((workdir / "results.json").read_text())["rows"]
  for row in rows:
    row.pop("run_dir")
  return rows, (workdir / "records.csv").read_text()


@pytest.fixture(scope="session")
def one_process(once):
  """The single-process evaluation both tests compare with (run once)."""
  workdir = once(
    "multihost_one_process", lambda d: cli.main(*ARGS, workdir=d, check=True)
  )
  return _results(workdir)


@pytest.mark.slow
def test_two_processes_give_the_records_and_report_of_one(
  one_process, tmp_path
):
  processes = _two_processes(
    tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
  )
  outputs = [p.communicate(timeout=900) for p in processes]
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
  shards = sorted(os.listdir(tmp_path / "records"))
  assert shards == ["p0-of-2", "p1-of-2"]
  rows, csv = _results(tmp_path)
  assert csv == one_process[1]  # same ids, same values, same order
  assert rows == one_process[0] and rows[0]["n"] == 64


@pytest.mark.slow
def test_killed_process_then_rerun_resumes_without_loss(one_process, tmp_path):
  processes = _two_processes(
    tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
  )
  progress = tmp_path / "records" / "p1-of-2" / "progress.json"
  deadline = time.time() + 600
  while time.time() < deadline and processes[1].poll() is None:
    try:
      if json.loads(progress.read_text())["chunks"] >= 2:
        break
    except (OSError, ValueError):
      pass
    time.sleep(0.02)
  processes[1].send_signal(signal.SIGKILL)
  processes[1].wait()
  state = json.loads(progress.read_text())
  assert not state["complete"], "process 1 finished before the kill"
  # Process 0 cannot finish without its peer: the job is lost, as on a cluster.
  processes[0].send_signal(signal.SIGKILL)
  processes[0].wait()

  again = _two_processes(
    tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
  )
  outputs = [p.communicate(timeout=900) for p in again]
  for p, (_, err) in zip(again, outputs):
    assert p.returncode == 0, err[-3000:]
  rows, csv = _results(tmp_path)
  assert csv == one_process[1]
  assert rows == one_process[0]
