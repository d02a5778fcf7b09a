"""Hugging Face hub names -> a snapshot directory in huggingface_hub's cache.

``snapshot(hub_id)`` returns ``<cache>/models--<org>--<name>/snapshots/<rev>``
(the HF directory format `models.load` reads), downloading ``config.json``
and the safetensors weights first unless offline. The cache is
``$HF_HUB_CACHE`` (read at call time; else huggingface_hub's default, under
``$HF_HOME``). Offline (``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``,
or ``download=False``) only the cache is read.
"""

from __future__ import annotations

import os

from rationality_jax.models.convert import CheckpointError

# What a download fetches: the config and the safetensors weights.
FILES = (
  "config.json",
  "model.safetensors",
  "model.safetensors.index.json",
  "model-*-of-*.safetensors",
)


def offline() -> bool:
  """Whether the environment forbids hub access (read now, not at import)."""
  return any(
    os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
  )


def snapshot(hub_id: str, download: bool = True) -> str:
  """The local snapshot directory of ``hub_id`` (e.g. ``openai/clip-vit-base-patch16``).

  Args:
    hub_id: a model repository on the hub.
    download: fetch it when not cached and the environment allows it.

  Raises:
    CheckpointError: no cached copy and none can be fetched; says how to
      fetch it.
  """
  import huggingface_hub

  local_only = offline() or not download
  try:
    return huggingface_hub.snapshot_download(
      hub_id,
      cache_dir=os.environ.get("HF_HUB_CACHE") or None,
      allow_patterns=list(FILES),
      local_files_only=local_only,
    )
  except (
    OSError,
    ValueError,
  ) as error:  # hub errors are OSErrors; bad ids ValueErrors
    how = (
      f"fetch it once with network access (`huggingface-cli download {hub_id}`"
      f", or `hf download {hub_id}`), or set HF_HUB_OFFLINE=0 to let "
      "models.load download it"
    )
    reason = (
      "no copy in the local hub cache and downloads are off"
      if local_only
      else f"it could not be downloaded ({type(error).__name__}: {error})"
    )
    raise CheckpointError(
      f"cannot load hub model {hub_id!r}: {reason} (cache: "
      f"{os.environ.get('HF_HUB_CACHE') or 'huggingface_hub default'}); "
      f"{how}."
    ) from error
