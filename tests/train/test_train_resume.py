"""SIGTERM saves and exits; kill -9 loses only the steps since the last save.

Both resume bitwise.
"""

import json
import os
import signal
import time

import pytest

from rationality_jax.run import train
from rationality_jax.run.config import ConfigError

STEPS = 60
OVERRIDES = {
  "train.total_steps": STEPS,
  "train.checkpoint.every_steps": 5,
  "train.checkpoint.keep": 2,
  "train.log_every": 5,
}


def _tail(path, chars=3000):
  with open(path) as f:
    return f.read()[-chars:]


def _steps(workdir):
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return []
  return sorted(
    int(d)
    for d in os.listdir(directory)
    if d.isdigit()
    and os.path.exists(os.path.join(directory, d, "commit_success.txt"))
  )


def _start(worker, spec, log):
  return worker.start(spec, stdout=log)


def _wait_for_checkpoint_after(process, workdir, step, log_path, timeout=600):
  start = time.time()
  while time.time() - start < timeout:
    if [s for s in _steps(workdir) if s > step]:
      return
    if process.poll() is not None:
      raise AssertionError(
        f"run ended (rc {process.returncode}) before a checkpoint after "
        f"step {step}:\n" + _tail(log_path)
      )
    time.sleep(0.01)
  raise AssertionError("no checkpoint in time")


@pytest.mark.slow
def test_train_sigterm_and_kill_then_resume_bitwise(data_dir, worker, tmp_path):
  reference_dir = str(tmp_path / "reference")
  train.train_and_evaluate(
    worker.tiny_config("flcp", data_dir, **OVERRIDES), reference_dir
  )
  reference = worker.flat_params(reference_dir)

  workdir = str(tmp_path / "interrupted")
  spec = {
    "method": "flcp",
    "data_dir": data_dir,
    "workdir": workdir,
    "overrides": OVERRIDES,
  }
  log_path = str(tmp_path / "log.txt")

  with open(log_path, "w") as log:  # 1) SIGTERM after the first periodic save
    process = _start(worker, spec, log)
    _wait_for_checkpoint_after(process, workdir, 0, log_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=300) == train.SIGTERM_EXIT, _tail(log_path)
  stopped = _steps(workdir)[-1]
  assert 5 <= stopped < STEPS

  with open(
    log_path, "w"
  ) as log:  # 2) resume, then kill -9 after the next save
    process = _start(worker, spec, log)
    _wait_for_checkpoint_after(process, workdir, stopped, log_path)
    process.kill()
    assert process.wait(timeout=60) == -signal.SIGKILL
  killed = _steps(workdir)[-1]
  assert stopped < killed < STEPS

  result = train.train_and_evaluate(
    worker.tiny_config("flcp", data_dir, **OVERRIDES), workdir
  )
  assert result["step"] == STEPS and result["losses"][0][0] > killed
  resumed = worker.flat_params(workdir)
  assert resumed.keys() == reference.keys()
  for name in reference:
    assert resumed[name].tobytes() == reference[name].tobytes(), name


class _Stopped(Exception):
  """Stands for a crash after a few steps."""


@pytest.mark.slow
def test_input_worker_processes_train_the_same_and_resume(
  data_dir, worker, tmp_path, monkeypatch
):
  """train.input_workers: batches decoded in 2 processes train bitwise like
  threads, and a run stopped after a checkpoint resumes from the workers'
  saved input state."""
  overrides = {
    "train.batch_size": 16,  # 4 batches per epoch: the order matters
    "train.total_steps": 8,
    "train.checkpoint.every_steps": 3,
  }
  reference_dir = str(tmp_path / "threads")
  train.train_and_evaluate(
    worker.tiny_config("flcp", data_dir, **overrides), reference_dir
  )
  reference = worker.flat_params(reference_dir)

  workdir = str(tmp_path / "workers")
  config = worker.tiny_config(
    "flcp", data_dir, **overrides, **{"train.input_workers": 2}
  )
  global_batch, calls = train.sharding.global_batch, []

  def stop_at_step_5(*args):
    calls.append(1)
    if len(calls) == 5:
      raise _Stopped()
    return global_batch(*args)

  monkeypatch.setattr(train.sharding, "global_batch", stop_at_step_5)
  with pytest.raises(_Stopped):
    train.train_and_evaluate(config, workdir)
  monkeypatch.undo()
  assert _steps(workdir)[-1] == 3
  with pytest.raises(ConfigError, match=r"config\.train\.input_workers"):
    train.train_and_evaluate(  # another worker count
      worker.tiny_config("flcp", data_dir, **overrides), workdir
    )
  # A checkpoint from the version whose workers handed over single examples
  # (no input record in its meta) is refused, not resumed at a wrong place.
  meta_path = os.path.join(workdir, "checkpoints", "3", "meta", "metadata")
  with open(meta_path) as f:
    meta = json.load(f)
  assert meta["input"] == {"num_workers": 2, "worker_unit": "batch"}
  with open(meta_path, "w") as f:
    json.dump({k: v for k, v in meta.items() if k != "input"}, f)
  with pytest.raises(ConfigError, match="handed over single examples"):
    train.train_and_evaluate(config, workdir)
  with open(meta_path, "w") as f:
    json.dump(meta, f)
  result = train.train_and_evaluate(config, workdir)
  assert result["step"] == 8 and result["losses"][0][0] == 4
  resumed = worker.flat_params(workdir)
  for name in reference:
    assert resumed[name].tobytes() == reference[name].tobytes(), name
