"""The documented command, run as a user runs it (for tests of any directory).

from tests import cli
result = cli.main("--config=configs/demo.py:quick=1", workdir=tmp_path)
cli.last_line(result)      # a failed run's one-line error
config = cli.config("--config=configs/train.py:method=lp", "--config.train.batch_size=8")
result = cli.run("--config=configs/evaluate.py:model=...", workdir=tmp_path)  # in-process

On a CPU, ``python -m rationality_jax.main ARGS`` re-executes itself at once
as ``python <package>/main.py ARGS`` with glibc's tunables in the
environment (`rationality_jax.run.runtime.reuse_host_memory`); the first
process only imports jax to do so. `command` starts that second process
directly - the same argv, environment and working directory, one interpreter
start instead of two. ``literal=True`` runs the documented ``python -m``
form itself, re-execution included (tests/test_main.py and the demo's test
do, so the re-execution stays covered).

`run` runs the command in this process instead, from the flags on: the same
flag machinery builds the config (`config`), then `main.execute` (console,
run, the one-line error) with the command's argv and working directory,
stdout and stderr captured; the logging and warning state is put back
after. For tests of what a run does to its workdir, where a subprocess
would only add an interpreter start (a few seconds each); what only the
process shows (exit codes of signals, re-execution, the flag parser's own
errors) stays with `main`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import pathlib
import subprocess
import sys
import warnings

REPO = pathlib.Path(__file__).resolve().parents[1]


def _main_file() -> str:
  """What ``-m rationality_jax.main`` runs (sys.argv[0] there), from this
  environment's rationality_jax."""
  return importlib.util.find_spec("rationality_jax.main").origin


def command(*args, workdir=None, literal=False) -> list[str]:
  """``python -m rationality_jax.main *args [--workdir=workdir]`` (`literal`),
  or the process it re-executes itself as (module docstring)."""
  extra = [] if workdir is None else [f"--workdir={workdir}"]
  start = ["-m", "rationality_jax.main"] if literal else [_main_file()]
  return [sys.executable, *start, *map(str, args), *extra]


def env(literal=False) -> dict:
  environ = dict(os.environ, JAX_PLATFORMS="cpu")
  if not literal:  # as reuse_host_memory sets it before re-executing
    from rationality_jax.run import runtime

    environ["GLIBC_TUNABLES"] = runtime.HOST_MEMORY_TUNABLES
  return environ


def main(*args, workdir=None, check=None, timeout=900, literal=False):
  """Runs the command from the checkout; `check` True/False asserts success/failure."""
  result = subprocess.run(
    command(*args, workdir=workdir, literal=literal),
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=timeout,
    env=env(literal),
  )
  if check is not None:
    assert (result.returncode == 0) == check, (
      result.stdout[-2000:],
      result.stderr[-3000:],
    )
  return result


def start(*args, workdir=None, literal=False, **popen) -> subprocess.Popen:
  """The command in the background (e.g. to kill it)."""
  return subprocess.Popen(
    command(*args, workdir=workdir, literal=literal),
    cwd=REPO,
    env=env(literal),
    **popen,
  )


def config(*args):
  """The config the command builds from `args` (``--config=configs/<x>.py[:arg]``
  and ``--config.<key>=<value>`` overrides), parsed here by the same flag
  machinery (ml_collections' config file flag, locked), without running it:
  for checks of what the command validates before any work."""
  from absl import flags
  from ml_collections import config_flags

  argv = ["rationality_jax.main"]
  for arg in map(str, args):
    if arg.startswith("--config="):
      path, _, rest = arg[len("--config=") :].partition(":")
      path = str(REPO / path)
      # As the command does: configs import their shared pieces from beside them.
      if os.path.dirname(path) not in sys.path:
        sys.path.insert(0, os.path.dirname(path))
      arg = f"--config={path}" + (f":{rest}" if rest else "")
    argv.append(arg)
  values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file(
    "config", None, "", flag_values=values, lock_config=True, sys_argv=argv
  )
  values(argv)
  return holder.value


def last_line(result) -> str:
  """The last line on stderr: a failed run's error."""
  return result.stderr.strip().splitlines()[-1]


@contextlib.contextmanager
def _as_the_command(argv):
  """The command's argv and working directory; the logging, warnings and
  console state of this process put back afterwards."""
  from absl import logging as absl_logging

  from rationality_jax import console

  root = logging.getLogger()
  handlers, level = list(root.handlers), root.level
  absl_handler = absl_logging.get_absl_handler().python_handler
  stream, verbosity = absl_handler.stream, absl_logging.get_verbosity()
  raise_exceptions, old_argv, cwd = (
    logging.raiseExceptions,
    sys.argv,
    os.getcwd(),
  )
  sys.argv = argv
  os.chdir(REPO)
  try:
    with warnings.catch_warnings():
      yield
  finally:
    console.close()
    logging.captureWarnings(False)
    root.handlers[:] = handlers
    root.setLevel(level)
    absl_handler.stream = stream
    absl_logging.set_verbosity(verbosity)
    logging.raiseExceptions = raise_exceptions
    sys.argv = old_argv
    os.chdir(cwd)


def run(*args, workdir, check=None) -> subprocess.CompletedProcess:
  """The command `main` would run, run in this process (module docstring):
  ``returncode``, ``stdout`` and ``stderr`` as `main` returns them."""
  from rationality_jax import main as main_lib

  args = [str(a) for a in args]
  fresh = "--fresh" in args
  config_args = [a for a in args if a != "--fresh"]
  argv = command(*args, workdir=workdir)[1:]
  out, err = io.StringIO(), io.StringIO()
  with (
    _as_the_command(argv),
    contextlib.redirect_stdout(out),
    contextlib.redirect_stderr(err),
  ):
    try:
      status = main_lib.execute(config(*config_args), str(workdir), fresh=fresh)
    except SystemExit as e:
      status = e.code if isinstance(e.code, int) else 1
      if not isinstance(e.code, int):
        print(e.code, file=sys.stderr)
  result = subprocess.CompletedProcess(
    argv, status, out.getvalue(), err.getvalue()
  )
  if check is not None:
    assert (status == 0) == check, (
      result.stdout[-2000:],
      result.stderr[-3000:],
    )
  return result
