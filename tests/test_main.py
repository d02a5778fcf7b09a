"""The command line: a config runs end to end; bad configs fail with one clear line."""

import json

import pytest

from tests import cli


def _main(*args):
  """The documented ``python -m rationality_jax.main`` itself: these tests
  cover the command line, its re-execution on a CPU included (tests/cli.py)."""
  return cli.main(*args, literal=True)


def test_selfcheck_runs_and_writes_results(tmp_path):
  result = _main(
    "--config=configs/metrics_selfcheck.py",
    f"--workdir={tmp_path}",
    "--config.num_samples=64",
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert "all checks passed" in result.stdout
  written = json.loads((tmp_path / "selfcheck.json").read_text())
  assert written["num_samples"] == 64 and written["failures"] == []
  assert written["max_abs_rma_error"] < 1e-5
  assert sum(written["counts"].values()) == 64


@pytest.mark.parametrize(
  "args, message",
  [
    (
      ["--config=configs/metrics_selfcheck.py", "--config.nosuchkey=3"],
      "nosuchkey",
    ),
    (
      ["--config=configs/no_such_config.py"],
      "config file 'configs/no_such_config.py' not found",
    ),
    (
      ["--config=configs/metrics_selfcheck.py", "--config.seed=abc"],
      "--config.seed=abc",
    ),
  ],
)
def test_bad_config_is_one_clear_error(tmp_path, args, message):
  # The process the command re-executes itself as (one interpreter start):
  # the flags are parsed there; the other tests here cover the re-execution.
  result = cli.main(*args, f"--workdir={tmp_path}")
  assert result.returncode != 0
  assert message in result.stderr
  assert "Traceback" not in result.stderr


def test_workdir_is_required():
  result = _main("--config=configs/metrics_selfcheck.py")
  assert result.returncode != 0 and "--workdir" in result.stderr
