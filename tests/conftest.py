"""Shared test setup: offline hubs, CPU only, deterministic, fast by default."""

import os
import pathlib
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# `from tests import checkpoint_factories` works from every test directory:
# --import-mode=importlib (setup.cfg) puts nothing on sys.path by itself.
REPO_ROOT = str(pathlib.Path(__file__).resolve().parents[1])
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)
