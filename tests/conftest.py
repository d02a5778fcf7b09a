"""Shared test setup: offline hubs, CPU only, deterministic, fast by default.

One persistent XLA compilation cache serves the whole run: this process, the
xdist workers and every subprocess the tests start (the command line, the
multi-process workers) read the ``JAX_*`` variables set here. It lives in
``~/.cache/rationality_jax/xla/jax-<version>-jaxlib-<version>/`` (one folder
per version pair; ``$XDG_CACHE_HOME`` moves ``~/.cache``), so a machine that
keeps its home keeps it between runs. ``RATIONALITY_JAX_TEST_XLA_CACHE``
names another root (``off`` turns the cache off); a ``JAX_COMPILATION_CACHE_DIR``
already set is used as it is. A cache hit only saves compile time: no test
depends on one.

Concurrent writers: with no size limit (the default, kept here) JAX writes an
entry in place, without a lock, and never overwrites one. A reader that
catches an entry half written, or an entry left truncated by a killed
process, fails zlib's checksum; JAX then warns ("Error reading persistent
compilation cache entry", in log.txt for the command line) and compiles
instead - never a wrong executable. `_drop_broken_entries` removes such
entries once, at the start of the next run. (A size limit would add a lock,
but JAX 0.10 rescans the whole folder on every write under it, and an entry
orphaned by a kill then stops all writes: jax-ml/jax#39880.)
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import os
import pathlib
import shutil
import sys
import tempfile
import time

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# `from tests import checkpoint_factories` works from every test directory:
# --import-mode=importlib (setup.cfg) puts nothing on sys.path by itself.
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

# ------------------------------------------------- the compilation cache ----

CACHE_ROOT_VARIABLE = "RATIONALITY_JAX_TEST_XLA_CACHE"
_OFF = ("", "0", "off", "false", "no", "none")
_CHECKED = ".checked"  # entries older than this file passed the check


def _versions() -> str:
  return "jax-{}-jaxlib-{}".format(
    importlib.metadata.version("jax"), importlib.metadata.version("jaxlib")
  )


def _writable(path: str) -> bool:
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path):
      return True
  except OSError:
    return False


def xla_cache_dir() -> str | None:
  """The cache folder of this run (None: off); see the module docstring."""
  if "JAX_COMPILATION_CACHE_DIR" in os.environ:  # the user's, or our parent's
    return os.environ["JAX_COMPILATION_CACHE_DIR"] or None
  root = os.environ.get(CACHE_ROOT_VARIABLE)
  if root is None:
    home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    root = os.path.join(home, "rationality_jax", "xla")
  elif root.strip().lower() in _OFF:
    return None
  path = os.path.join(root, _versions())
  if not _writable(path):  # a read-only home: this run's own cache
    path = os.path.join(
      tempfile.gettempdir(), f"rationality_jax_xla_{os.getuid()}"
    )
    path = os.path.join(path, _versions())
    if not _writable(path):
      return None
  return path


def _drop_broken_entries(path: str) -> int:
  """Deletes entries that do not decompress (half written when a process was
  killed); each entry is checked once, after the run that wrote it."""
  try:  # JAX's own codec (zlib, or zstd where installed)
    from jax._src.compilation_cache import decompress_executable
  except ImportError:
    return 0
  stamp = os.path.join(path, _CHECKED)
  since = os.path.getmtime(stamp) if os.path.exists(stamp) else 0.0
  started = time.time()
  dropped = 0
  for entry in os.scandir(path):
    if not entry.name.endswith("-cache"):
      continue
    try:
      if entry.stat().st_mtime < since - 60:  # some slack for clock skew
        continue
      with open(entry.path, "rb") as f:
        blob = f.read()
    except OSError:  # removed by another run meanwhile
      continue
    try:
      decompress_executable(blob)
    except Exception:  # truncated: zlib/zstd refuse it
      try:
        os.unlink(entry.path)
        dropped += 1
      except OSError:
        pass
  pathlib.Path(stamp).touch()
  os.utime(stamp, (started, started))
  return dropped


def _use_xla_cache() -> str | None:
  path = xla_cache_dir()
  if path is None:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = ""  # also off in subprocesses
    return None
  os.environ["JAX_COMPILATION_CACHE_DIR"] = path
  # Every program, however small or quick to compile.
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
  return path


XLA_CACHE = _use_xla_cache()


def pytest_configure(config):
  import jax

  # jax may have been imported before this file (a plugin): set it here too.
  jax.config.update("jax_compilation_cache_dir", XLA_CACHE)
  if XLA_CACHE is None:
    return
  for name in (
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
  ):
    value = os.environ[name]
    jax.config.update(
      name.lower(), float(value) if "SECS" in name else int(value)
    )
  if not hasattr(config, "workerinput"):  # the controller, before any worker
    try:
      _drop_broken_entries(XLA_CACHE)
      os.utime(XLA_CACHE)  # used now (.ci/run drops folders unused 30 days)
    except OSError:  # not there yet, or not ours to tidy: JAX copes
      pass


def pytest_collection_modifyitems(config, items):
  """The modules with a test marked ``slow`` run first, each module's tests
  kept together in their order (so module fixtures are built once): under
  ``-n 2`` the long tests are spread over both workers at the start
  instead of one worker finishing them alone at the end."""
  slow_modules = {
    item.module.__name__ for item in items if item.get_closest_marker("slow")
  }
  items.sort(key=lambda item: item.module.__name__ not in slow_modules)


def pytest_report_header(config):
  return f"XLA compilation cache: {XLA_CACHE or 'off'}"


def load_config(name: str, arg: str | None = None):
  """`get_config(arg)` of configs/<name>.py, as `rationality_jax.main` loads it."""
  from rationality_jax.run import config as config_lib

  return config_lib.from_file(CONFIGS / f"{name}.py", arg)


@pytest.fixture(scope="session")
def config_file():
  """`load_config`: a config file's get_config(arg) (configs/ on the path)."""
  return load_config


# ------------------------------------------- state shared by the workers ----


@contextlib.contextmanager
def _locked(path: pathlib.Path):
  with open(path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)  # blocking; released when closed
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory):
  """A folder of this run that every xdist worker sees (no xdist: this one's)."""
  base = tmp_path_factory.getbasetemp()
  root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  path = root / "shared"
  path.mkdir(exist_ok=True)
  return path


@pytest.fixture(scope="session")
def once(shared_dir):
  """``once(name, make) -> folder``: ``make(folder)`` (an empty folder) runs
  once per test run, whichever worker asks first (the others wait for it,
  then reuse it).

  For state that several tests only read: a built dataset, a made
  checkpoint, a finished run (a test that changes it works on a
  `shutil.copytree` of it). A failed `make` leaves nothing behind; the next
  test that asks tries again.
  """

  def get(name: str, make) -> pathlib.Path:
    folder = shared_dir / name
    done = shared_dir / f"{name}.done"
    with _locked(shared_dir / f"{name}.lock"):
      if not done.exists():
        if folder.exists():
          shutil.rmtree(folder)
        folder.mkdir()
        try:
          make(folder)
        except BaseException:
          shutil.rmtree(folder, ignore_errors=True)
          raise
        done.touch()
    return folder

  return get


@pytest.fixture(scope="session")
def checkpoint(once):
  """``checkpoint(name, **kwargs) -> path``: `checkpoint_factories.make`'s
  format-exact checkpoint, made once per run and shared (read-only)."""
  from tests import checkpoint_factories as factories

  def get(name: str, **kwargs) -> str:
    key = "-".join([name, *(f"{k}={v}" for k, v in sorted(kwargs.items()))])
    folder = once(
      f"checkpoint-{key}", lambda d: factories.make(name, d, **kwargs)
    )
    filename = factories.FACTORIES[name][1].format(**{"patch": 16, **kwargs})
    return str(folder / filename)

  return get


@pytest.fixture(scope="session")
def quick_demo(once):
  """(workdir, stdout, stderr) of the quick demo, run once per test run by
  the documented command itself (``python -m rationality_jax.main``, its
  re-execution included), shared read-only: a test that changes it works on
  a copy."""
  from tests import cli

  def make(folder):
    result = cli.main(
      "--config=configs/demo.py:quick=1",
      workdir=folder / "workdir",
      check=True,
      literal=True,
    )
    (folder / "stdout.txt").write_text(result.stdout)
    (folder / "stderr.txt").write_text(result.stderr)

  folder = once("quick_demo", make)
  return (
    folder / "workdir",
    (folder / "stdout.txt").read_text(),
    (folder / "stderr.txt").read_text(),
  )
