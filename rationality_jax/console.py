"""The console is for people; the log file is for everything else.

  console.setup(verbosity=None)  # absl/orbax/jax INFO -> a temporary log file
  console.claim(run_dir)         # ... which moves to <run_dir>/log.txt
  console.stage("train lp (2 steps)")     # one line per stage
  with console.progress(total, "train", unit="step") as bar: bar.update(1)
  console.warning("3 samples with non-finite logits")
  console.table(text)                     # the final table

A run prints its stages, a progress bar with rate and time left for every
long loop, its own warnings and the final table. Library logs (absl INFO,
orbax's "Closing ..." lines, TFDS's notices, tracebacks) go to a temporary
file until the run has been validated and has claimed its directory, then to
``<run_dir>/log.txt`` (a refused run writes nothing into the workdir; its
error line names the temporary log); ``--verbosity=N`` (absl's flag, given
explicitly) echoes them to the console again. A log file that cannot be
written (a full disk) is given up silently: the failure that follows is the
run's one error line. Only process 0 prints. On a terminal the
bars redraw in place; in a log file (no TTY) each bar prints a line at most
every 30 s and one when it ends.
"""

from __future__ import annotations

import contextlib
import logging as py_logging
import os
import sys
import tempfile
import time
import warnings

from absl import logging
import jax

LOG_FILE = "log.txt"
LOGGER = "rationality_jax"
_state = {"file": None, "path": None, "temporary": False}
_logger = py_logging.getLogger(LOGGER)


def _is_main() -> bool:
  try:
    return jax.process_index() == 0
  except RuntimeError:
    return True


class _ConsoleFormatter(py_logging.Formatter):
  def format(self, record):
    message = record.getMessage()
    if record.levelno >= py_logging.ERROR:
      return f"error: {message}"
    if record.levelno >= py_logging.WARNING:
      return f"warning: {message}"
    return message


class _OursOnly(py_logging.Filter):
  """The console's default: this package's warnings, nobody else's logs."""

  def filter(self, record):
    return record.name.startswith(LOGGER)


def setup(verbosity: int | None = None) -> str:
  """Routes library logging to a temporary log file; returns its path.

  Args:
    verbosity: None: the console shows this package's warnings only; an
      absl verbosity (0 = INFO, 1 = DEBUG...): every library's log lines at
      that level too.
  """
  fd, path = tempfile.mkstemp(prefix="rationality_jax-", suffix=".log")
  _use(os.fdopen(fd, "a", buffering=1), path, temporary=True)
  logging.use_absl_handler()
  logging.get_absl_handler().python_handler.stream = _state["file"]
  logging.set_verbosity(logging.INFO if verbosity is None else verbosity)
  root = py_logging.getLogger()
  for handler in list(root.handlers):
    if getattr(handler, "_rationality_console", False):
      root.removeHandler(handler)
  echo = py_logging.StreamHandler(sys.stderr)
  echo._rationality_console = True
  echo.setFormatter(_ConsoleFormatter())
  if verbosity is None:
    echo.setLevel(py_logging.WARNING)
    echo.addFilter(_OursOnly())
  else:
    echo.setLevel(logging.ABSL_TO_STANDARD.get(verbosity, py_logging.DEBUG))
  root.addHandler(echo)
  py_logging.captureWarnings(True)
  # A handler that cannot write (a full disk) must not print a "--- Logging
  # error ---" block per record: the run's own error line says what failed.
  py_logging.raiseExceptions = False
  warnings.simplefilter("default")
  return path


def _use(stream, path: str | None, temporary: bool = False) -> None:
  if _state["file"] is not None:
    _state["file"].close()
    if _state["temporary"]:
      os.remove(_state["path"])
  _state.update(file=stream, path=path, temporary=temporary)


def close() -> None:
  """Closes `setup`'s log (a temporary one is removed): for a process that
  runs the command several times (tests/cli.py's in-process runs)."""
  _use(None, None)


def claim(run_dir: str) -> str | None:
  """Moves the temporary log into ``<run_dir>/log.txt`` (appended to what
  earlier runs there logged) once the run has claimed the directory; returns
  the log's path. The first claim wins: the runs a run makes inside its
  directory (a grid's cells) keep logging there. Without `setup` (a library
  user's own logging) nothing changes."""
  if not _state["temporary"]:
    return _state["path"]
  path = os.path.join(run_dir, LOG_FILE)
  _state["file"].flush()
  with open(_state["path"]) as f:
    earlier = f.read()
  log = open(path, "a", buffering=1)  # noqa: SIM115 - kept for the process's life
  log.write(earlier)
  _use(log, path)
  logging.get_absl_handler().python_handler.stream = log
  return path


def log_path() -> str | None:
  return _state["path"]


def stage(text: str) -> None:
  """One line on the console (process 0) and in the log."""
  logging.info("stage: %s", text)
  if _is_main():
    print(text, flush=True)


def warning(text: str) -> None:
  """A warning line on the console (process 0's) and in the log."""
  _logger.warning("%s", text)


def table(text: str) -> None:
  logging.info("table:\n%s", text)
  if _is_main():
    print(text, flush=True)


class _LineBar:
  """A progress bar for logs: a line every `every` seconds and at the end."""

  def __init__(self, total, desc, unit, initial, every=30.0):
    self.total, self.desc, self.unit = total, desc, unit
    self.n = self.start_n = initial
    self.every = every
    self.start = self.last = time.perf_counter()
    self.postfix = ""

  def _line(self) -> str:
    elapsed = time.perf_counter() - self.start
    done = self.n - self.start_n
    rate = done / elapsed if elapsed > 0 else 0.0
    if self.total is None:
      return (
        f"{self.desc}: {self.n} {self.unit} [{elapsed:.0f}s, "
        f"{rate:.2f} {self.unit}/s]"
      ) + (f" {self.postfix}" if self.postfix else "")
    left = (self.total - self.n) / rate if rate > 0 else float("nan")
    text = (
      f"{self.desc}: {self.n}/{self.total} {self.unit} "
      f"[{elapsed:.0f}s, {rate:.2f} {self.unit}/s, ~{left:.0f}s left]"
    )
    return text + (f" {self.postfix}" if self.postfix else "")

  def update(self, n=1):
    self.n += n
    now = time.perf_counter()
    if now - self.last >= self.every:
      self.last = now
      print(self._line(), file=sys.stderr, flush=True)

  def set_postfix_str(self, text="", refresh=True):
    del refresh
    self.postfix = text

  def close(self):
    print(self._line(), file=sys.stderr, flush=True)


class _NoBar:
  n = 0

  def update(self, n=1):
    self.n += n

  def set_postfix_str(self, *args, **kwargs):
    del args, kwargs

  def close(self):
    pass


@contextlib.contextmanager
def progress(total: int | None, desc: str, unit: str = "it", initial: int = 0):
  """A progress bar with rate and time left (process 0; others get a no-op).

  total None: unknown (count and rate only).
  """
  if not _is_main():
    bar = _NoBar()
  elif sys.stderr.isatty():
    import tqdm

    bar = tqdm.tqdm(
      total=total,
      initial=initial,
      desc=desc,
      unit=unit,
      dynamic_ncols=True,
      mininterval=1.0,
      file=sys.stderr,
    )
  else:
    bar = _LineBar(total, desc, unit, initial)
  try:
    yield bar
  finally:
    bar.close()
