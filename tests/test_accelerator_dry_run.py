"""benchmarks/accelerator.sh: the GPU/TPU table's script, run on the CPU.

The dry run (tiny models, one repetition, PyTorch tiny on the CPU) goes
through the same shell script, driver, worker process and rows as a lent
accelerator would, and must write every row of `accelerator.ROWS` to both
files; the driver's scheduling (not reached, not available, failed, timed
out, a command row's parse) is checked on fake command rows in-process.
"""

import functools
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@functools.cache
def _accelerator():
  """benchmarks/accelerator.py as a module (benchmarks/ stays off sys.path)."""
  name = "accelerator_under_test"
  spec = importlib.util.spec_from_file_location(
    name, REPO / "benchmarks" / "accelerator.py"
  )
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  benchmarks = str(REPO / "benchmarks")
  sys.path.insert(0, benchmarks)  # for its `accelerator_driver`
  try:
    spec.loader.exec_module(module)
  finally:
    sys.path.remove(benchmarks)
  return module


@pytest.mark.slow  # ~35 s of CPU: tiny models, but every row and process
def test_dry_run_writes_every_row(tmp_path):
  acc = _accelerator()
  out = tmp_path / "out"
  start = time.monotonic()
  result = subprocess.run(
    [
      "bash",
      str(REPO / "benchmarks" / "accelerator.sh"),
      "--dry-run",
      "--python",
      sys.executable,
      "--out",
      str(out),
      "--budget",
      "900",
    ],
    capture_output=True,
    text=True,
    timeout=900,
    cwd=tmp_path,
  )
  elapsed = time.monotonic() - start
  log = (out / "accelerator.log").read_text() if out.exists() else ""
  assert result.returncode == 0, result.stdout + result.stderr + log
  table = (out / "accelerator.md").read_text()
  document = json.loads((out / "accelerator.json").read_text())
  assert document["dry_run"] is True
  assert "CPU dry run" in table
  assert document["environment"]["backend"] == "cpu"
  names = [row.name for row in acc.ROWS]
  assert [r["row"] for r in document["rows"]] == names
  lines = [line for line in table.splitlines() if line.startswith("| ")]
  for number, name in enumerate(names, 1):
    (line,) = [line for line in lines if f" {name} |" in line]
    assert line.startswith(f"| {number} | {name} | ")
  for row, record in zip(acc.ROWS, document["rows"]):
    reason = row.check()
    if reason:  # e.g. a feature another branch is building
      assert record["status"] == acc.driver.NOT_AVAILABLE, record
      assert record["reason"] == reason
      assert f"| {acc.driver.NOT_AVAILABLE} | {reason} |" in table
      continue
    # The generous budget leaves every row time: each must be measured.
    assert record["status"] == acc.driver.MEASURED, (record, log[-5000:])
    assert record["result"], record
    assert record["compile_s"] is not None and record["compile_s"] >= 0
    assert record["row_s"] > 0
    assert record["goal_met"] is None  # no goal is judged on a dry run
  ft = document["rows"][0]
  assert ft["batch"] == 32 and ft["model"] == "random:tiny"
  assert ft["flops_per_image"] > 0 and ft["mfu_of_matmul"] > 0
  print(f"dry run: {elapsed:.1f} s")  # shown with -s; --durations has it too


def _command(code: str) -> list[str]:
  return ["{python}", "-c", code]


def test_rows_that_do_not_fit_or_cannot_run_are_written(tmp_path):
  acc = _accelerator()
  # benchmarks/train.py --method ft,guided: a table row per method.
  table_lines = (
    "print('| rationality_jax (jit), ft | 1.5 | 2.0 | 0.250 | 128.0 |'); "
    "print('| rationality_jax (jit), guided | 1.5 | 2.0 | 0.500 | 64.0 |')"
  )
  rows = [
    acc.Row(
      "parsed",
      [_command(table_lines)],
      cost_s=0,
      dry_cost_s=0,
      parse=acc.guided_vs_ft,
    ),
    acc.Row(
      "absent",
      _command("raise SystemExit(9)"),
      cost_s=0,
      dry_cost_s=0,
      available=lambda: "no such feature here",
    ),
    acc.Row("too dear", _command("pass"), cost_s=0, dry_cost_s=10_000),
    acc.Row("broken", _command("raise SystemExit(3)"), cost_s=0, dry_cost_s=0),
    acc.Row(
      "endless",
      _command("import time; time.sleep(120)"),
      cost_s=0,
      dry_cost_s=0,
    ),
    acc.Row("after the end", _command("pass"), cost_s=0, dry_cost_s=1),
  ]
  start = time.time()
  table = acc.drive(
    rows, str(tmp_path), True, start + 6, budget_s=6, quiet=True
  )
  assert time.time() - start < 60  # the endless row was stopped
  status = {name: r["status"] for name, r in table.records.items()}
  assert set(status.values()) <= set(acc.driver.STATUSES)
  assert status == {
    "parsed": acc.driver.MEASURED,
    "absent": acc.driver.NOT_AVAILABLE,
    "too dear": acc.driver.NOT_REACHED,
    "broken": acc.driver.FAILED,
    "endless": acc.driver.TIMED_OUT,
    "after the end": acc.driver.NOT_REACHED,
  }
  parsed = table.records["parsed"]
  assert parsed["result"] == (
    "guided 0.500 s/step, FT 0.250 s/step: 2.00x FT's time"
  )
  assert parsed["compile_s"] == 1.5
  assert "exit 3" in table.records["broken"]["error"]
  assert table.records["too dear"]["result"].startswith("est. 10000 s > ")
  markdown = (tmp_path / "accelerator.md").read_text()
  document = json.loads((tmp_path / "accelerator.json").read_text())
  assert [r["row"] for r in document["rows"]] == [r.name for r in rows]
  for row in rows:
    assert f"| - | {row.name} | {status[row.name]} |" in markdown
  assert "| no such feature here |" in markdown
  assert "accelerator.log" in os.listdir(tmp_path)


def test_setup_cfg_requirements_are_installed_here():
  # What accelerator.sh installs from the wheels or the index when missing;
  # the test environment has all of it.
  assert _accelerator().missing_requirements() == []
