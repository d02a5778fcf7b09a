"""Per-image random keys from the image's own bits.

Noise that belongs to a sample (the random control's maps, ROAD's imputation
noise) is drawn from ``fold_in(key(seed), hash of the image's bits)``
(`image_keys`), so the same image gets the same noise in every run, whatever
its batch, its position in the batch, the batch size or the sharding (a
position in the batch would give the first image of every batch the same
noise). Identical images share their noise; any other difference, one bit of
one pixel, gives unrelated noise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_GOLDEN = np.uint32(0x9E3779B9)


def _mix(h: jax.Array) -> jax.Array:
  """MurmurHash3's 32-bit finalizer: every input bit moves every output bit."""
  h = h ^ (h >> 16)
  h = h * np.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * np.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def image_hashes(images: jax.Array) -> jax.Array:
  """[B, ...] images -> [B] uint32, a hash of each image's float32 bits.

  Each value is mixed with its position, then the mixes are summed modulo
  2**32 (exact and order-free, so any reduction order gives the same hash).
  """
  bits = jax.lax.bitcast_convert_type(
    jnp.asarray(images, jnp.float32), jnp.uint32
  ).reshape(images.shape[0], -1)
  positions = jnp.arange(bits.shape[1], dtype=jnp.uint32) * _GOLDEN
  return jnp.sum(_mix(bits ^ positions), axis=1, dtype=jnp.uint32)


def image_keys(images: jax.Array, seed: int) -> jax.Array:
  """[B, ...] images -> [B] keys: ``fold_in(key(seed), image_hashes(images))``."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
    jax.random.key(seed), image_hashes(images)
  )
