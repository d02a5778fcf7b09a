"""Shared test setup: offline hubs, CPU only, deterministic, fast by default."""

import os
import pathlib
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# `from tests import checkpoint_factories` works from every test directory:
# --import-mode=importlib (setup.cfg) puts nothing on sys.path by itself.
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))


def load_config(name: str, arg: str | None = None):
  """`get_config(arg)` of configs/<name>.py, as `rationality_jax.main` loads it."""
  from rationality_jax.run import config as config_lib

  return config_lib.from_file(CONFIGS / f"{name}.py", arg)


@pytest.fixture(scope="session")
def config_file():
  """`load_config`: a config file's get_config(arg) (configs/ on the path)."""
  return load_config
