"""A run directory's manifest, ``run.json``: what it holds and whether it is done.

  manifest.read(run_dir)                    # {} when there is none
  manifest.file_entry(run_dir, "summary.json")   # {'bytes', 'sha256'}
  manifest.verify(run_dir, entries)         # {path: 'missing' | 'changed'}

The driver writes it (`rationality_jax.run.record`: status ``running`` at
the claim, ``complete`` once every output is written, each listed with its
size and sha256); whoever reads a run's results back checks it here first
(`rationality_jax.report.records`), so that a partial or edited run is never
read as a finished one.
"""

from __future__ import annotations

import hashlib
import os

from rationality_jax import files

MANIFEST = "run.json"
RUNNING, COMPLETE = "running", "complete"


def read(directory: str) -> dict:
  """The manifest of a run directory ({} when it has none)."""
  path = os.path.join(directory, MANIFEST)
  return files.read_json(path) if os.path.exists(path) else {}


def sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def file_entry(directory: str, name: str) -> dict:
  """{'bytes', 'sha256'} of ``directory/name`` (a manifest's entry)."""
  path = os.path.join(directory, name)
  return {"bytes": os.path.getsize(path), "sha256": sha256(path)}


def verify(directory: str, entries: dict[str, dict]) -> dict[str, str]:
  """{path: 'missing' | 'changed'} of the `entries` ({path: file_entry})
  that are not as the manifest recorded them."""
  problems = {}
  for name, entry in entries.items():
    path = os.path.join(directory, name)
    if not os.path.exists(path):
      problems[name] = "missing"
    elif (
      os.path.getsize(path) != entry["bytes"] or sha256(path) != entry["sha256"]
    ):
      problems[name] = "changed"
  return problems


def describe(problems: dict[str, str]) -> str:
  """'records/p0-of-1/chunk_000003.npz missing, summary.json changed'."""
  return ", ".join(
    f"{name} {state}" for name, state in sorted(problems.items())
  )
