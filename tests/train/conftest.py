"""tests/train: a tiny synthetic dataset shared by the session, the worker's helpers."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
WORKER = HERE / "train_worker.py"


def _load_worker():
  spec = importlib.util.spec_from_file_location("train_worker", WORKER)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="session")
def worker():
  """The helpers of train_worker.py (tiny_config, flat_params) and `run(spec, env)`.

  The workers share the suite's XLA compilation cache (tests/conftest.py sets
  it in the environment they inherit): the reference run here and the resumed
  runs in subprocesses compile the same tiny programs.
  """
  module = _load_worker()

  def start(spec, stdout=subprocess.PIPE, **env):
    """Runs the worker on `spec` in a subprocess (stdout: a pipe or a file; stderr follows)."""
    import json

    environ = dict(os.environ, JAX_PLATFORMS="cpu", **env)
    stderr = subprocess.PIPE if stdout is subprocess.PIPE else subprocess.STDOUT
    return subprocess.Popen(
      [sys.executable, str(WORKER), json.dumps(spec)],
      env=environ,
      stdout=stdout,
      stderr=stderr,
      text=True,
    )

  module.start = start
  return module


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, worker):
  """synthetic_rationality at 16 px: 64 train / 32 test examples, built once."""
  from rationality_jax import data

  directory = str(tmp_path_factory.mktemp("train_data"))
  config = worker.tiny_config("lp", directory)
  data.build(
    "synthetic_rationality", directory, **config.train_data.builder_kwargs
  )
  return directory
