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
  """An exclusive lock on `workdir`: ``fcntl.flock`` on the directory itself.

  The kernel releases it when the holder exits, however it exits (SIGKILL
  included), so a crashed run never leaves a stale lock. Taking it writes
  nothing: the holder writes its PID and host to ``<workdir>/.lock`` with
  `announce` once its run has claimed the directory, and a second process
  names them in its refusal. Each process of a multi-process run locks its
  own file ``name`` instead (they share the directory). On a filesystem
  without flock (some NFS setups) the lock raises rather than silently not
  locking.
  """

  def __init__(self, workdir: str | os.PathLike, name: str = LOCK):
    self.directory = os.fspath(workdir)
    self.path = os.path.join(self.directory, LOCK)
    self.name = name
    self._fd = None

  def __enter__(self) -> WorkdirLock:
    if self.name == LOCK:
      fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
    else:
      fd = os.open(
        os.path.join(self.directory, self.name), os.O_RDWR | os.O_CREAT
      )
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      holder = "unknown"
      if os.path.exists(self.path):
        with open(self.path) as f:
          holder = f.read().strip() or holder
      raise WorkdirBusyError(
        f"{self.directory} is in use by another run ({holder}); "
        "wait for it to finish or use another --workdir."
      ) from None
    self._fd = fd
    return self

  def announce(self) -> None:
    """Records this process as the holder (for a second process's message)."""
    write_text(self.path, f"pid {os.getpid()} on {os.uname().nodename}\n")

  def __exit__(self, *exc) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None
