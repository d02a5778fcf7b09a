"""Helpers for tests/data: tiny archives in the originals' layouts."""

import io
import tarfile

import numpy as np
from PIL import Image
import pytest


def jpeg(array, quality=95) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(np.asarray(array, np.uint8)).save(
    buf, format="JPEG", quality=quality
  )
  return buf.getvalue()


def png(array) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(np.asarray(array, np.uint8)).save(buf, format="PNG")
  return buf.getvalue()


def write_tar(path, members: dict, mode="w"):
  """members: {name: bytes}; mode 'w' (tar) or 'w:gz' (tgz)."""
  with tarfile.open(path, mode) as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def solid(h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def fake():
  """Namespace of archive helpers for builder tests."""

  class F:
    pass

  for fn in (jpeg, png, write_tar, solid):
    setattr(F, fn.__name__, staticmethod(fn))
  return F
