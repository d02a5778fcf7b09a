"""The console is for people; the log file is for everything else.

  console.setup(workdir, verbosity=None)  # absl/orbax/jax INFO -> <workdir>/log.txt
  console.stage("train lp (2 steps)")     # one line per stage
  with console.progress(total, "train", unit="step") as bar: bar.update(1)
  console.table(text)                     # the final table

A run prints its stages, a progress bar with rate and time left for every
long loop, warnings and the final table. Library logs (absl INFO, orbax's
"Closing ..." lines) go to ``<workdir>/log.txt`` with full tracebacks;
``--verbosity=N`` (absl's flag, given explicitly) echoes them to the
console again. Only process 0 prints.
"""

from __future__ import annotations

import contextlib
import logging as py_logging
import os
import sys
import warnings

from absl import logging
import jax

LOG_FILE = "log.txt"
_state = {"file": None, "path": None}


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


def setup(workdir: str, verbosity: int | None = None) -> str:
  """Routes library logging to ``<workdir>/log.txt``; returns its path.

  Args:
    workdir: the run's directory (created).
    verbosity: None: the console shows warnings and errors only; an absl
      verbosity (0 = INFO, 1 = DEBUG...): the console shows that much too.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOG_FILE)
  if _state["path"] == path:
    return path
  # Kept open for the process's life: every later log line goes there.
  log = open(path, "a", buffering=1)  # noqa: SIM115
  if _state["file"] is not None:
    _state["file"].close()
  _state.update(file=log, path=path)
  logging.use_absl_handler()
  absl_handler = logging.get_absl_handler()
  absl_handler.python_handler.stream = log
  absl_handler.setLevel(py_logging.DEBUG)
  logging.set_verbosity(
    logging.INFO if verbosity is None else max(verbosity, 0)
  )
  root = py_logging.getLogger()
  for handler in list(root.handlers):
    if getattr(handler, "_rationality_console", False):
      root.removeHandler(handler)
  echo = py_logging.StreamHandler(sys.stderr)
  echo._rationality_console = True
  echo.setFormatter(_ConsoleFormatter())
  echo.setLevel(
    py_logging.WARNING
    if verbosity is None
    else logging.ABSL_TO_STANDARD.get(min(verbosity, 1), py_logging.DEBUG)
  )
  root.addHandler(echo)
  py_logging.captureWarnings(True)
  warnings.simplefilter("default")
  return path


def log_path() -> str | None:
  return _state["path"]


def stage(text: str) -> None:
  """One line on the console (process 0) and in the log."""
  logging.info("stage: %s", text)
  if _is_main():
    print(text, flush=True)


def warning(text: str) -> None:
  """A warning line on the console (process 0) and in the log."""
  logging.warning("%s", text)


def table(text: str) -> None:
  logging.info("table:\n%s", text)
  if _is_main():
    print(text, flush=True)


class _NoBar:
  n = 0

  def update(self, n=1):
    self.n += n

  def set_postfix_str(self, *args, **kwargs):
    del args, kwargs

  def close(self):
    pass


@contextlib.contextmanager
def progress(total: int, desc: str, unit: str = "it", initial: int = 0):
  """A progress bar with rate and time left (process 0; others get a no-op)."""
  if not _is_main():
    yield _NoBar()
    return
  import tqdm

  tty = sys.stderr.isatty()
  bar = tqdm.tqdm(
    total=total,
    initial=initial,
    desc=desc,
    unit=unit,
    dynamic_ncols=tty,
    mininterval=1.0 if tty else 30.0,
    leave=True,
    file=sys.stderr,
    bar_format=None
    if tty
    else "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, "
    "{rate_fmt}]{postfix}",
  )
  try:
    yield bar
  finally:
    bar.close()
