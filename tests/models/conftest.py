"""Reference models for the model tests (builders in tests/checkpoint_factories.py):
transformers PyTorch models with random weights saved offline, and the same
weights written in the original layouts (OpenAI CLIP, ALBEF, original BLIP)."""

import os

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tests import checkpoint_factories  # noqa: E402 (needs torch, checked above)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
  """(HF CLIPModel, its save_pretrained directory)."""
  directory = str(tmp_path_factory.mktemp("tiny_clip"))
  return checkpoint_factories.make_clip(directory), directory


@pytest.fixture(scope="session")
def head_dim_64_clip(tmp_path_factory):
  """(HF CLIPModel with 64-dim heads, its directory): convertible to OpenAI's layout."""
  directory = str(tmp_path_factory.mktemp("clip_hd64"))
  return checkpoint_factories.make_clip(
    directory,
    vision=checkpoint_factories.HEAD_DIM_64_VISION,
    text=checkpoint_factories.HEAD_DIM_64_CLIP_TEXT,
  ), directory


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory):
  """(HF BlipForImageTextRetrieval, its save_pretrained directory)."""
  directory = str(tmp_path_factory.mktemp("tiny_blip"))
  return checkpoint_factories.make_blip(directory), directory


def pytest_report_header():
  return (
    f"models tests: torch {torch.__version__}, transformers {transformers.__version__}, "
    f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE')}"
  )


@pytest.fixture(scope="session")
def ref():
  """tests/checkpoint_factories.py: the reference builders and key remappers."""
  return checkpoint_factories
