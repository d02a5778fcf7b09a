"""What determines a stage's result, recorded beside it and checked on rerun.

  directory = provenance.claim(directory, fingerprint, "a training run",
                               fresh=False)

Every stage directory (a training run, an evaluation) holds
``fingerprint.json``: the model file's identity, the method and its options,
the data, the heatmap, the overrides - whatever changes its numbers (see
`rationality_jax.run.resolve.train_fingerprint` / `eval_fingerprint`). A rerun
with the same fingerprint resumes or reuses the stage; with another one it is
refused in one line naming the differing fields, or, with ``fresh``, runs in
a new subdirectory ``fresh-<hash>`` of the stale one.
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


def claim(
  directory: str, fingerprint: dict, what: str, fresh: bool = False
) -> str:
  """Records `fingerprint` in `directory` or checks it; returns the directory to use.

  Raises:
    StaleWorkdirError: `directory` holds `what` of another configuration and
      `fresh` is False.
  """
  fingerprint = files.jsonable(fingerprint)
  path = os.path.join(directory, FINGERPRINT)
  if os.path.exists(path):
    old = files.read_json(path)
    if old != fingerprint:
      if fresh:
        new = os.path.join(
          directory, f"fresh-{fingerprint_digest(fingerprint)}"
        )
        return claim(new, fingerprint, what, fresh=False)
      # The first three levels name a field well enough ("trained.model.path").
      fields = list(
        dict.fromkeys(
          ".".join(f.split(".")[:3]) for f in differences(old, fingerprint)
        )
      )
      more = f" and {len(fields) - 4} more" if len(fields) > 4 else ""
      raise StaleWorkdirError(
        f"{directory} holds {what} of another configuration (differs in "
        f"{', '.join(fields[:4])}{more}); use another --workdir, or --fresh "
        "to start anew in a subdirectory."
      )
    return directory
  if jax.process_index() == 0:
    files.write_json(path, fingerprint)
  return directory
