"""Files that are never half-written, and one writer per workdir.

  files.write_json(path, value)            # temp file in the same folder + rename
  files.write_text(path, text)
  with files.atomic(path) as tmp: plt.savefig(tmp)   # any writer, same guarantee
  with files.WorkdirLock(workdir): ...     # a second process gets one clear line

A reader (or a rerun after a crash, a full disk or SIGKILL) sees either the
old file or the whole new one, never a truncated one: every output goes to a
temporary name beside its target and is renamed over it only once complete.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import fcntl
import json
import os
from typing import Any

import numpy as np

LOCK = ".lock"


@contextlib.contextmanager
def atomic(path: str | os.PathLike) -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it to `path` on success.

  On an exception the temporary file is removed and `path` is untouched. The
  temporary name keeps the target's extension (writers such as numpy and
  matplotlib choose the format from it).
  """
  path = os.fspath(path)
  folder, name = os.path.split(path)
  if folder:
    os.makedirs(folder, exist_ok=True)
  stem, ext = os.path.splitext(name)
  tmp = os.path.join(folder, f".{stem}.tmp{os.getpid()}{ext}")
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
  with atomic(path) as tmp, open(tmp, "w") as f:
    f.write(text)


def _jsonable(value):
  if isinstance(value, (np.integer, np.floating, np.bool_)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  return str(value)


def dumps(value: Any) -> str:
  """Stable JSON (sorted keys; numpy scalars and arrays as Python values)."""
  return json.dumps(value, indent=1, sort_keys=True, default=_jsonable)


def jsonable(value: Any) -> Any:
  """`value` as it reads back from JSON (for comparing with a stored copy)."""
  return json.loads(dumps(value))


def write_json(path: str | os.PathLike, value: Any) -> None:
  write_text(path, dumps(value))


def read_json(path: str | os.PathLike) -> Any:
  with open(path) as f:
    return json.load(f)


def write_npz(path: str | os.PathLike, **arrays) -> None:
  with atomic(path) as tmp:
    np.savez(tmp, **arrays)


class WorkdirBusyError(RuntimeError):
  """Another process holds the workdir."""


class WorkdirLock:
  """An exclusive lock on `workdir` (``fcntl.flock`` on ``<workdir>/.lock``).

  The kernel releases it when the holder exits, however it exits (SIGKILL
  included), so a crashed run never leaves a stale lock. The file records the
  holder's PID and host for the message the second process gets (each
  process of a multi-host run takes its own `name`). On a shared
  filesystem that does not support flock (some NFS setups) the lock raises
  rather than silently not locking.
  """

  def __init__(self, workdir: str | os.PathLike, name: str = LOCK):
    self.path = os.path.join(os.fspath(workdir), name)
    self._file = None

  def __enter__(self) -> WorkdirLock:
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    f = open(self.path, "a+")
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or "unknown"
      f.close()
      raise WorkdirBusyError(
        f"{os.path.dirname(self.path)} is in use by another run ({holder}); "
        "wait for it to finish or use another --workdir."
      ) from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
    f.flush()
    self._file = f
    return self

  def __exit__(self, *exc) -> None:
    if self._file is not None:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None
