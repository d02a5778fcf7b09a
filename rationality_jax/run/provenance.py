"""What determines a stage's result, recorded beside it and checked on rerun.

Every run directory (a training run, an evaluation, a WiSE-FT alpha, a grid)
holds ``fingerprint.json``: the model file's identity, the method and its
options, the data, the heatmap - whatever changes its numbers (see
`rationality_jax.run.resolve.train_fingerprint` / `eval_fingerprint`). A rerun
with the same fingerprint resumes or reuses it; with another one it is
refused in one line naming the differing fields (`record.plan`, which also
picks ``fresh-<digest>/`` for ``--fresh``).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax

from rationality_jax import files

FINGERPRINT = "fingerprint.json"


def fingerprint_digest(fingerprint: Any) -> str:
  """A short stable hash of a JSON-able fingerprint."""
  blob = json.dumps(fingerprint, sort_keys=True, default=str).encode()
  return hashlib.sha256(blob).hexdigest()[:12]


class StaleWorkdirError(RuntimeError):
  """A directory holds the results of another configuration."""


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
  """Dotted paths where two JSON values differ."""
  if isinstance(old, dict) and isinstance(new, dict):
    out = []
    for key in sorted(set(old) | set(new)):
      out += differences(old.get(key), new.get(key), f"{prefix}{key}.")
    return out
  return [] if old == new else [prefix.rstrip(".") or "(value)"]


def mismatch(
  directory: str, fingerprint: dict, what: str, ignore: tuple[str, ...] = ()
) -> str | None:
  """Why `directory` cannot hold a run of `fingerprint` (it holds `what` of
  another configuration), or None (new, or the same configuration).

  `ignore`: dotted fields not known yet (a grid's cell before its training:
  ``trained.step``).
  """
  path = os.path.join(directory, FINGERPRINT)
  if not os.path.exists(path):
    return None
  old = files.read_json(path)
  fingerprint = files.jsonable(fingerprint)
  differing = [f for f in differences(old, fingerprint) if f not in ignore]
  if not differing:
    return None
  # The first three levels name a field well enough ("trained.model.path").
  fields = list(dict.fromkeys(".".join(f.split(".")[:3]) for f in differing))
  more = f" and {len(fields) - 4} more" if len(fields) > 4 else ""
  return (
    f"{directory} holds {what} of another configuration (differs in "
    f"{', '.join(fields[:4])}{more})"
  )


def record(directory: str, fingerprint: dict) -> None:
  """Writes `fingerprint` beside the run (process 0)."""
  if jax.process_index() == 0:
    files.write_json(
      os.path.join(directory, FINGERPRINT), files.jsonable(fingerprint)
    )
