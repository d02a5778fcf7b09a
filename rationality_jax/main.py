r"""Command-line entry point.

    python -m rationality_jax.main --config=configs/<name>.py[:arg] --workdir=DIR \
        [--config.key=value ...] [--fresh] [--verbosity=0] [--host_memory=auto]

The config file defines `get_config(arg=None)` returning the run config
(`rationality_jax.run.config`, locked: a misspelt override is an error) whose
`mode` names what runs (docs/run_config.md):

  selfcheck  metrics on a problem with a known answer (configs/metrics_selfcheck.py)
  pretrain   the demo's small CLIP, contrastively (configs/demo_pretrain.py)
  train      one adaptation method (configs/train.py)
  wise_ft    WiSE-FT: a finished run interpolated with its start (configs/wise_ft.py)
  evaluate   heatmaps, RMA, PT/IR, records and report of one model (configs/evaluate.py)
  grid       train + evaluate every cell, one report (configs/demo.py, configs/paper.py)

The console shows stages, progress bars, warnings and the final table; the
library logs and any traceback go to ``DIR/log.txt`` (``--verbosity=0``
shows them). Nothing is written into DIR before the run is validated and has
claimed it (`rationality_jax.run.record`): then DIR holds the resolved config
(``config.json``), ``fingerprint.json`` and the manifest ``run.json``. One
run per workdir: a second one is refused, naming the first's PID. A failure
ends with one line naming its cause and exit status 1 (a refused run's log
stays in a temporary file the line names). On a CPU the process
re-executes itself once with glibc keeping freed memory (``--host_memory``,
`rationality_jax.run.runtime`).
"""

from __future__ import annotations

import os
import sys
import traceback

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from rationality_jax import console
from rationality_jax.run import config as config_lib
from rationality_jax.run import modes
from rationality_jax.run import runtime
from rationality_jax.run import validate

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Experiment config file (python, get_config(arg)).",
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for all outputs.")
_FRESH = flags.DEFINE_bool(
  "fresh",
  False,
  "When the workdir holds results of another configuration, start anew in a "
  "subdirectory instead of refusing.",
)
_HOST_MEMORY = flags.DEFINE_enum(
  "host_memory",
  "auto",
  list(runtime.HOST_MEMORY_CHOICES),
  "reuse: glibc keeps freed memory, so XLA:CPU's large temporaries cost no "
  "page faults (rationality_jax.run.runtime); auto: reuse when computing on the "
  "CPU; fresh: the default allocator.",
)
flags.mark_flags_as_required(["config", "workdir"])


def run(config, workdir: str, fresh: bool = False):
  """Validates `config`, then runs ``config.mode`` (which plans, claims and
  records its run directory in `workdir`: `rationality_jax.run.record`)."""
  validate.validate(config)
  if "distributed" in config:
    from rationality_jax import sharding

    sharding.initialize_distributed(config.distributed)
  return modes.MODES[config.mode](config, workdir, fresh)


USAGE = (
  "usage: python -m rationality_jax.main --config=configs/<name>.py[:arg] "
  "--workdir=DIR [--config.key=value]"
)


def _load_config_file(spec: str) -> None:
  """Loads ``--config``'s file as absl will, exiting with one line (file,
  line, error) when the file or its ``get_config(arg)`` fails."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    sys.exit(
      f"error: config file {path!r} not found (working directory "
      f"{os.getcwd()!r}); the configs live in configs/."
    )
  # Configs import their shared pieces (`import common`) from beside them.
  sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
  try:
    config_lib.from_file(path, arg or None)
  except SyntaxError as e:
    sys.exit(f"error: {path} line {e.lineno}: SyntaxError: {e.msg}")
  except Exception as e:  # the file's own error, in one line
    where = spec if arg else path
    sys.exit(f"error: {where}: {type(e).__name__}: {_first_line(e)}")


def _first_line(e: BaseException) -> str:
  text = str(e).strip()
  if isinstance(e, (KeyError, AttributeError)) and len(e.args) == 1:
    text = str(e.args[0])  # a KeyError's str() is its repr
    if " " not in text and text[:1] == text[-1:] and text[:1] in "'\"":
      text = text[1:-1]  # a bare quoted key: 'train_size' -> train_size
  return text.splitlines()[0] if text else ""


def parse_flags(argv):
  """Parses flags; a bad --config file or override exits with one clear line."""
  for arg in argv[1:]:
    if arg.startswith("--config="):
      _load_config_file(arg[len("--config=") :])
  try:
    args = flags.FLAGS(argv)
    _CONFIG.value.get("mode")  # The config file loads lazily: load it now.
  except flags.Error as e:
    sys.exit(f"error: {_first_line(e)}\n{USAGE}")
  except (KeyError, AttributeError, OSError, ValueError, TypeError) as e:
    config_args = [a for a in argv[1:] if a.startswith("--config")]
    sys.exit(
      f"error: cannot build the config from {' '.join(config_args)}: "
      f"{type(e).__name__}: {_first_line(e)} (an override must name an "
      "existing key of the config file)"
    )
  return args


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  verbosity = flags.FLAGS["verbosity"]
  sys.exit(
    execute(
      _CONFIG.value,
      _WORKDIR.value,
      fresh=_FRESH.value,
      verbosity=verbosity.value if verbosity.present else None,
    )
  )


def execute(config, workdir: str, fresh: bool = False, verbosity=None) -> int:
  """The command once its flags are parsed: the console set up
  (`console.setup`), then `run`; returns the exit status, 1 after printing
  a failure's one line (its traceback goes to the log)."""
  console.setup(verbosity)
  logging.info("command: %s", " ".join(sys.argv))
  try:
    run(config, workdir, fresh=fresh)
  except SystemExit:
    raise
  except BaseException as e:
    logging.error("failed:\n%s", traceback.format_exc())
    message = "interrupted" if isinstance(e, KeyboardInterrupt) else ""
    message = message or _first_line(e)
    sys.stderr.flush()
    print(
      f"error: {type(e).__name__}: {message} (traceback in "
      f"{console.log_path()})",
      file=sys.stderr,
      flush=True,
    )
    return 1
  return 0


def _host_memory(argv) -> str:
  """--host_memory's value, read before absl parses flags (see `runtime`)."""
  for i, arg in enumerate(argv):
    if arg.startswith("--host_memory="):
      return arg.split("=", 1)[1]
    if arg == "--host_memory" and i + 1 < len(argv):
      return argv[i + 1]
  return "auto"


if __name__ == "__main__":
  choice = _host_memory(sys.argv)
  if choice in runtime.HOST_MEMORY_CHOICES:  # else absl names the bad value
    runtime.reuse_host_memory(choice)
  app.run(main, flags_parser=parse_flags)
