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


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
  """One persistent XLA cache for this session's runs, in-process and in workers.

  The tests compile the same tiny programs in several processes (a reference
  run here, the resumed runs in subprocesses); sharing the cache saves most of
  their compile time. Restored at the end of the session.
  """
  import jax

  directory = str(tmp_path_factory.mktemp("xla_cache"))
  names = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
  )
  previous = {name: getattr(jax.config, name) for name in names}
  from jax._src import compilation_cache

  for name, value in zip(names, (directory, 0.0, 0)):
    jax.config.update(name, value)
  compilation_cache.reset_cache()  # re-read the settings even if jax compiled before
  yield directory
  for name, value in previous.items():
    jax.config.update(name, value)
  compilation_cache.reset_cache()


@pytest.fixture(scope="session")
def worker(compilation_cache):
  """The helpers of train_worker.py (tiny_config, flat_params) and `run(spec, env)`."""
  module = _load_worker()

  def start(spec, stdout=subprocess.PIPE, **env):
    """Runs the worker on `spec` in a subprocess (stdout: a pipe or a file; stderr follows)."""
    import json

    environ = dict(
      os.environ,
      JAX_PLATFORMS="cpu",
      JAX_COMPILATION_CACHE_DIR=compilation_cache,
      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
      **env,
    )
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
