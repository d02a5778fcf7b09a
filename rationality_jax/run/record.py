"""A run directory describes itself: validate, then claim, then write.

  directory = record.plan(workdir, fingerprint, "a training run", fresh)
  with record.open_run(directory, fingerprint, config, "train") as run:
    ...                                  # checks that need the data
    run.start(total_steps=120)           # the claim: the record is written
    ...                                  # the stage's work
    run.complete(outputs=["train_result.json"])

`plan` only reads: it checks that the directory can be a run directory and
holds nothing of another configuration (`provenance`), and picks
``fresh-<digest>/`` inside it with ``fresh``. `open_run` takes the
directory's lock (one writer; taking it writes nothing) and checks again
under it; a refusal up to `start` leaves the workdir as it was (a directory
it had to create is removed again if still empty). `start` moves the log in
(`console.claim`), names this process as the lock's holder and writes

    config.json       the resolved run config of what the directory holds
    fingerprint.json  what determines its results (`provenance`)
    run.json          the manifest: kind, status ('running' / 'complete'),
                      the command, times, the stage's facts (a training
                      run's total steps, ...), and once complete every
                      output with its size and sha256 (an evaluation also
                      every records chunk with its number of examples)

`rationality_jax.manifest` reads the manifest back and compares a complete
run's files with it: what is missing or changed since it completed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import contextlib
import datetime
import os
import sys
from typing import Any

import jax
import ml_collections

from rationality_jax import console
from rationality_jax import files
from rationality_jax import manifest as manifest_lib
from rationality_jax.run import config as config_lib
from rationality_jax.run import provenance

CONFIG = "config.json"


def usable(directory: str) -> None:
  """Refuses a workdir that cannot be a run directory, naming why."""
  directory = os.path.abspath(directory)
  if os.path.exists(directory) and not os.path.isdir(directory):
    raise config_lib.ConfigError(
      f"--workdir: {directory} is a file, not a directory; give a directory"
    )
  existing = directory
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.access(existing, os.W_OK | os.X_OK):
    raise config_lib.ConfigError(
      f"--workdir: {existing} is not writable; give a directory this user "
      "can write"
    )


def plan(
  directory: str,
  fingerprint: dict,
  what: str,
  fresh: bool = False,
  inner: Iterable[tuple] = (),
  container: bool = False,
) -> str:
  """The directory a run will write (reads only; see the module docstring).

  Args:
    directory: the workdir asked for.
    fingerprint: what determines the run's results.
    what: what the run is, for the refusal ("evaluation records").
    fresh: when `directory` holds another configuration, use
      ``<directory>/fresh-<digest>`` instead of refusing.
    inner: (relative directory, fingerprint, what[, fields to ignore]) of
      the runs this one makes inside its directory (an evaluation's
      training run, a grid's cells).
    container: the directory's own results are its inner runs' (a grid, a
      WiSE-FT stage): only those are compared.

  Raises:
    provenance.StaleWorkdirError: another configuration's results are there.
    config_lib.ConfigError: the directory cannot be a run directory.
  """
  directory = os.path.abspath(directory)
  usable(directory)

  inner = list(inner)

  def stale(base: str) -> str | None:
    claims = [] if container else [(base, fingerprint, what, ())]
    for relative, inner_fingerprint, inner_what, *ignore in inner:
      claims.append(
        (
          os.path.join(base, relative),
          inner_fingerprint,
          inner_what,
          ignore[0] if ignore else (),
        )
      )
    for d, f, w, ignore in claims:
      message = provenance.mismatch(d, f, w, ignore)
      if message:
        return message
    return None

  message = stale(directory)
  if message is None:
    return directory
  if not fresh:
    raise provenance.StaleWorkdirError(
      f"{message}; use another --workdir, or --fresh to start anew in a "
      "subdirectory."
    )
  new = os.path.join(
    directory, f"fresh-{provenance.fingerprint_digest(fingerprint)}"
  )
  message = stale(new)
  if message:
    raise provenance.StaleWorkdirError(message)
  console.stage(
    f"--fresh: {directory} holds another configuration; this run: {new}"
  )
  return new


class Run:
  """An open run directory (`open_run`): its manifest as it is written."""

  def __init__(self, directory, fingerprint, config, kind, lock):
    self.directory = directory
    self.fingerprint = fingerprint
    self.config = config
    self.kind = kind
    self.lock = lock
    self.started = False
    self.manifest: dict = {}

  def _write(self) -> None:
    if jax.process_index() == 0:
      files.write_json(
        os.path.join(self.directory, manifest_lib.MANIFEST), self.manifest
      )

  def start(self, **facts) -> None:
    """The claim: writes config.json, fingerprint.json and the manifest
    (status 'running', with `facts`), after everything that could refuse
    the run without having done any of its work."""
    console.claim(self.directory)
    previous = manifest_lib.read(self.directory)
    self.manifest = {
      **previous,
      **facts,
      "kind": self.kind,
      "status": manifest_lib.RUNNING,
      "command": " ".join(sys.argv),
      "started": _now(),
      "fingerprint": provenance.fingerprint_digest(
        files.jsonable(self.fingerprint)
      ),
    }
    if jax.process_index() == 0:
      self.lock.announce()
      files.write_json(
        os.path.join(self.directory, CONFIG), config_lib.to_dict(self.config)
      )
      provenance.record(self.directory, self.fingerprint)
    self._write()
    self.started = True

  def update(self, **facts) -> None:
    """Adds facts of the run to its manifest."""
    self.manifest.update(facts)
    self._write()

  def complete(
    self,
    outputs: Iterable[str] = (),
    status: str = manifest_lib.COMPLETE,
    **facts,
  ) -> None:
    """Marks the run complete (or `status`, e.g. 'failed'), listing
    `outputs` (paths relative to the directory) with their sizes and
    digests, and `facts`. Process 0 writes the outputs and the manifest;
    the others do not read files they may not see yet."""
    listed = {}
    if jax.process_index() == 0:
      listed = {o: manifest_lib.file_entry(self.directory, o) for o in outputs}
    self.manifest.update(facts, status=status, finished=_now(), outputs=listed)
    self._write()


def _now() -> str:
  return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def open_run(
  directory: str,
  fingerprint: dict,
  config: ml_collections.ConfigDict,
  kind: str,
  *,
  what: str = "",
  container: bool = False,
) -> Iterator[Run]:
  """Locks a planned run directory and checks it again; `Run.start` claims
  it (module docstring)."""
  created = not os.path.exists(directory)
  os.makedirs(directory, exist_ok=True)
  lock_name = (
    files.LOCK if jax.process_count() == 1 else f".lock.{jax.process_index()}"
  )
  run = None
  try:
    with files.WorkdirLock(directory, name=lock_name) as lock:
      message = (
        None
        if container
        else provenance.mismatch(directory, fingerprint, what or kind)
      )
      if message:  # another run wrote it since `plan` looked
        raise provenance.StaleWorkdirError(message)
      run = Run(directory, fingerprint, config, kind, lock)
      yield run
  except BaseException:
    if created and (run is None or not run.started):
      with contextlib.suppress(OSError):  # only if nothing was written
        os.rmdir(directory)
    raise


def training_progress(directory: str) -> dict[str, Any]:
  """{'step', 'total_steps', 'finished'} of a training run directory (its
  newest checkpoint against the total its manifest recorded)."""
  from rationality_jax.run import checkpoints

  manifest = manifest_lib.read(directory)
  step = checkpoints.latest_step(directory)
  total = manifest.get("total_steps")
  if total is None:  # a run directory made before manifests
    finished = os.path.exists(os.path.join(directory, "train_result.json"))
    total = step if finished else None
  return {
    "step": step,
    "total_steps": total,
    "finished": step is not None and total is not None and step >= total,
  }
