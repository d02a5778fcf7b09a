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
  """An 8-bit PNG, or a 16-bit grayscale one for a uint16 array."""
  array = np.asarray(array)
  if array.dtype != np.uint16:
    array = array.astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format="PNG")
  return buf.getvalue()


def write_tar(path, members: dict, mode="w"):
  """members: {name: bytes}; mode 'w' (tar) or 'w:gz' (tgz)."""
  kwargs = {"fileobj": path} if hasattr(path, "write") else {"name": path}
  with tarfile.open(mode=mode, **kwargs) as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def tar_bytes(members: dict) -> bytes:
  """An uncompressed tar of {name: bytes}, in memory (for nested tars)."""
  buf = io.BytesIO()
  write_tar(buf, members)
  return buf.getvalue()


def cmyk_jpeg(h, w, seed=0) -> bytes:
  """A CMYK JPEG, as ImageNet's training set has a few."""
  rng = np.random.default_rng(seed)
  im = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "CMYK")
  buf = io.BytesIO()
  im.save(buf, format="JPEG", quality=95)
  return buf.getvalue()


def solid(h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def fake():
  """Namespace of archive helpers for builder tests."""

  class F:
    pass

  for fn in (jpeg, png, write_tar, tar_bytes, cmyk_jpeg, solid):
    setattr(F, fn.__name__, staticmethod(fn))
  return F
