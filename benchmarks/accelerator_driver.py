r"""The machinery of the accelerator table (`benchmarks/accelerator.py`).

`Row` (one measurement: a Python callable or a command, its estimated cost,
its goal, its availability check), `Context` (what a Python row gets), the
worker process that runs the Python rows one after another and reports over
a pipe (`worker`, `Worker`), the table written whole after every row
(`Table`: accelerator.md and accelerator.json), and `drive`, which runs the
rows in order within a deadline: a row whose estimate does not fit what is
left is "not reached", one still running at the deadline is stopped (the
worker's whole process group) and "timed out", one whose check fails "not
available in this checkout". What the rows are, and the command line:
`benchmarks/accelerator.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import configparser
import contextlib
import dataclasses
import datetime
import gc
import importlib
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"

# The script a worker process runs (`accelerator.py --worker`).
ENTRY = BENCHMARKS / "accelerator.py"

MEASURED = "measured"
NOT_REACHED = "not reached"
NOT_AVAILABLE = "not available in this checkout"
FAILED = "failed"
TIMED_OUT = "timed out"
PENDING = "pending"
RUNNING = "running"
STATUSES = (MEASURED, NOT_REACHED, NOT_AVAILABLE, FAILED, TIMED_OUT)


class NotAvailable(Exception):
  """The row's feature is not in this checkout (the message says which)."""


@dataclasses.dataclass(frozen=True)
class Row:
  """One measurement (`accelerator.py`'s docstring, "Adding a row")."""

  name: str
  run: Callable[[Context], dict] | Sequence
  cost_s: float
  dry_cost_s: float = 10.0
  goal: str = "-"
  available: Callable[[], str | None] | None = None
  dry: Sequence | None = None
  parse: Callable[[list[str]], dict] | None = None

  @property
  def is_command(self) -> bool:
    return not callable(self.run)

  def check(self) -> str | None:
    """None, or why this checkout cannot run the row (`available`)."""
    if self.available is None:
      return None
    try:
      return self.available()
    except Exception as error:  # a broken check: the row cannot run
      return f"{type(error).__name__}: {error}"

  def commands(self, dry_run: bool) -> list[list[str]]:
    """The row's commands (lists of arguments), ``{python}`` filled in."""
    spec = self.dry if dry_run and self.dry is not None else self.run
    if spec and isinstance(spec[0], str):
      spec = [spec]
    return [
      [arg.replace("{python}", sys.executable) for arg in c] for c in spec
    ]


class Context:
  """What a Python row gets in the worker."""

  def __init__(self, dry_run: bool, scratch: str, send: Callable[..., None]):
    self.dry_run = dry_run
    self.scratch = scratch
    self.cache: dict = {}  # kept across the rows of one worker
    self._send = send
    self.row = ""

  def report(self, **partial) -> None:
    """Numbers measured so far (kept if the row is stopped at the budget)."""
    self._send(kind="partial", row=self.row, **partial)

  def sizes(self, full, dry):
    return dry if self.dry_run else full

  @property
  def reps(self) -> int:
    return 1 if self.dry_run else 3

  def reference(self):
    """The matmul reference, compiled once per worker (`machine.py`): 8192^2
    bfloat16 on an accelerator, 4096^2 float32 on a CPU, 256^2 in the dry
    run."""
    if "reference" not in self.cache:
      import machine

      self.cache["reference"] = (
        machine.MatmulReference(256)
        if self.dry_run
        else machine.matmul_reference()
      )
    return self.cache["reference"]

  def matmul_flops_per_s(self) -> float:
    """The best of a few timed reference products (as `evaluate.py`)."""
    reference = self.reference()
    return max(
      reference.flops / reference.time().wall for _ in range(self.reps + 1)
    )

  def device(self) -> dict:
    import jax

    device = jax.devices()[0]
    return {
      "platform": device.platform,
      "device_kind": device.device_kind,
      "device_count": jax.device_count(),
    }

  def vision_model(self, dtype: str = "bfloat16"):
    """CLIP ViT-B/16 (tiny in the dry run) with random weights drawn on the
    host by shape (`train.quick_params`: no initialiser to compile), computing
    in `dtype` with float32 params."""
    key = ("model", dtype)
    if key not in self.cache:
      from train import quick_params

      from rationality_jax import models

      arch = self.sizes("b16", "tiny")
      module = models.VisionLanguageModel(models.families.ARCHITECTURES[arch])
      self.cache[key] = (
        f"random:{arch}",
        *models.with_precision(module, quick_params(module), dtype, "float32"),
      )
    return self.cache[key]


# The worker -----------------------------------------------------------------


def environment() -> dict:
  """The worker's view of the machine (after importing jax, without torch)."""
  import jax

  def version(name):
    try:
      return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      return None

  device = jax.devices()[0]
  return {
    "python": platform.python_version(),
    "jax": jax.__version__,
    "jaxlib": version("jaxlib"),
    "flax": version("flax"),
    "torch": version("torch"),
    "backend": jax.default_backend(),
    "device_kind": device.device_kind,
    "device_count": jax.device_count(),
    "cpu_cores": os.cpu_count(),
    "host": platform.node(),
  }


def worker(rows, fd: int, dry_run: bool, scratch: str) -> None:
  """Runs the `rows` named on stdin, one per line; reports over `fd`."""
  channel = os.fdopen(fd, "w", buffering=1)

  def send(**message):
    channel.write(json.dumps(message, default=_jsonable) + "\n")
    channel.flush()

  ctx = Context(dry_run, scratch, send)
  send(kind="hello", environment=environment())
  by_name = {row.name: row for row in rows}
  for line in sys.stdin:
    name = line.rstrip("\n")
    row = by_name[name]
    ctx.row = name
    print(f"\n=== {name} ===", flush=True)
    cpu = _cpu_seconds()
    try:
      result = row.run(ctx)
      # Host CPU seconds of the row: this process's threads and the
      # processes it waited for (input workers).
      result.setdefault("host_cpu_s", _cpu_seconds() - cpu)
      send(kind="done", row=name, status=MEASURED, **result)
    except NotAvailable as error:
      send(kind="done", row=name, status=NOT_AVAILABLE, reason=str(error))
    except Exception as error:
      traceback.print_exc()
      sys.stdout.flush()
      send(
        kind="done",
        row=name,
        status=FAILED,
        error=f"{type(error).__name__}: {error}"[:500],
      )
    gc.collect()


def _cpu_seconds() -> float:
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _jsonable(value):
  if hasattr(value, "tolist"):
    return value.tolist()
  if hasattr(value, "item"):
    return value.item()
  return str(value)


class Worker:
  """The driver's handle on one worker process."""

  def __init__(self, dry_run: bool, scratch: str, log, env: dict):
    read, write = os.pipe()
    command = [sys.executable, str(ENTRY), "--worker", str(write)]
    command += ["--scratch", scratch] + (["--dry-run"] if dry_run else [])
    self.process = subprocess.Popen(
      command,
      stdin=subprocess.PIPE,
      stdout=log,
      stderr=subprocess.STDOUT,
      pass_fds=(write,),
      start_new_session=True,  # its own process group: stopped as a whole
      cwd=REPO,
      env=env,
      text=True,
    )
    os.close(write)
    self.fd = read
    self.buffer = b""
    self.ready = False  # said hello

  def send(self, name: str) -> None:
    self.process.stdin.write(name + "\n")
    self.process.stdin.flush()

  def message(self, deadline: float) -> dict | None:
    """The next message, None at the deadline; EOFError if the worker ended."""
    while b"\n" not in self.buffer:
      left = deadline - time.time()
      if left <= 0:
        return None
      ready, _, _ = select.select([self.fd], [], [], left)
      if not ready:
        return None
      chunk = os.read(self.fd, 1 << 16)
      if not chunk:
        raise EOFError
      self.buffer += chunk
    line, self.buffer = self.buffer.split(b"\n", 1)
    return json.loads(line)

  def stop(self) -> None:
    """Kills the worker's process group (its input workers too)."""
    if self.fd is None:
      return
    with contextlib.suppress(ProcessLookupError):
      os.killpg(self.process.pid, signal.SIGKILL)
    self.process.wait()
    os.close(self.fd)
    self.fd = None


# The driver -----------------------------------------------------------------


class Table:
  """The records of every row, written whole to the .md and .json files."""

  def __init__(
    self, rows, out: str, dry_run: bool, budget_s: float, deadline, numbering
  ):
    self.rows = rows
    self.numbering = list(numbering)  # the rows' numbers in the table
    self.out = out
    self.dry_run = dry_run
    self.started = time.time()
    self.budget_s = budget_s
    self.deadline = deadline
    self.environment: dict = {}
    self.records = {
      row.name: {
        "row": row.name,
        "status": PENDING,
        "result": "",
        "goal": row.goal,
        "goal_met": None,
        "compile_s": None,
        "row_s": None,
        "estimate_s": row.dry_cost_s if dry_run else row.cost_s,
      }
      for row in rows
    }

  def set(self, name: str, **fields) -> None:
    self.records[name].update(fields)
    self.write()

  def markdown(self) -> str:
    env = self.environment
    when = datetime.datetime.fromtimestamp(self.started, datetime.UTC)
    lines = [
      "# Accelerator table (`benchmarks/accelerator.sh`)",
      "",
    ]
    if self.dry_run:
      lines += [
        "**CPU dry run**: tiny models, one repetition. The numbers test the "
        "script, not the machine; no goal is judged.",
        "",
      ]
    device = (
      f"{env.get('device_kind', '?')} x{env.get('device_count', '?')} "
      f"({env.get('backend', '?')})"
      if env
      else "device unknown (no worker started)"
    )
    lines += [
      f"{device}, jax {env.get('jax', '?')}, torch {env.get('torch', '-')}, "
      f"Python {env.get('python', '?')}, {env.get('cpu_cores', '?')} CPU "
      f"cores; budget {self.budget_s:.0f} s, started "
      f"{when:%Y-%m-%d %H:%M} UTC, {time.time() - self.started:.0f} s so far.",
      "",
      "| # | row | status | result | goal | met | compile s | row s | est. s |",
      "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in self.rows:
      r = self.records[row.name]
      i = self.numbering.index(row) + 1 if row in self.numbering else "-"
      met = {True: "yes", False: "no", None: "-"}[r["goal_met"]]
      result = r["result"] or r.get("reason") or r.get("error") or ""
      cells = [
        str(i),
        row.name,
        r["status"],
        result.replace("|", "/"),
        r["goal"],
        met,
        _seconds(r["compile_s"]),
        _seconds(r["row_s"]),
        f"{r['estimate_s']:.0f}",
      ]
      lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

  def write(self) -> None:
    document = {
      "dry_run": self.dry_run,
      "budget_s": self.budget_s,
      "started": self.started,
      "elapsed_s": time.time() - self.started,
      "environment": self.environment,
      "rows": [self.records[row.name] for row in self.rows],
    }
    _write(os.path.join(self.out, "accelerator.md"), self.markdown())
    _write(
      os.path.join(self.out, "accelerator.json"),
      json.dumps(document, indent=1, default=_jsonable) + "\n",
    )


def _seconds(value) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "-"
  return f"{value:.1f}"


def _write(path: str, text: str) -> None:
  partial = path + ".partial"
  with open(partial, "w") as f:
    f.write(text)
  os.replace(partial, path)


def _worker_env(dry_run: bool) -> dict:
  env = dict(os.environ)
  paths = [str(REPO), str(BENCHMARKS)]
  if env.get("PYTHONPATH"):
    paths.append(env["PYTHONPATH"])
  env["PYTHONPATH"] = os.pathsep.join(paths)
  env.setdefault("PYTHONUNBUFFERED", "1")
  env.setdefault("HF_HUB_OFFLINE", "1")
  env.setdefault("TRANSFORMERS_OFFLINE", "1")
  if dry_run:
    env["JAX_PLATFORMS"] = "cpu"
    # Tiny models compile for longer than they run: LLVM at -O0 takes a
    # third off the compile times (the numbers are not the point here).
    env["XLA_FLAGS"] = " ".join(
      [
        env.get("XLA_FLAGS", ""),
        "--xla_backend_optimization_level=0",
        "--xla_llvm_disable_expensive_passes=true",
      ]
    ).strip()
  else:
    # JAX takes 75% of a GPU's memory at its first use by default; PyTorch
    # runs in the same worker (the heatmap rows): leave it more room.
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.6")
  return env


def run_command_row(row: Row, table: Table, log, env: dict, dry_run: bool):
  """A command row: its commands in order, each stopped at the deadline."""
  outputs = []
  for command in row.commands(dry_run):
    log.write(f"\n=== {row.name}: {' '.join(command)} ===\n")
    log.flush()
    left = table.deadline - time.time()
    process = subprocess.Popen(
      command,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      cwd=REPO,
      env=env,
      text=True,
      start_new_session=True,
    )
    try:
      output, _ = process.communicate(timeout=max(left, 0.1))
    except subprocess.TimeoutExpired:
      os.killpg(process.pid, signal.SIGKILL)
      output, _ = process.communicate()
      log.write(output)
      return {"status": TIMED_OUT, "result": "stopped at the budget"}
    log.write(output)
    log.flush()
    if process.returncode:
      tail = output.strip().splitlines()[-1:] or [""]
      return {
        "status": FAILED,
        "error": f"exit {process.returncode}: {tail[0][:300]}",
      }
    outputs.append(output)
  if row.parse is None:
    tables = [
      line for o in outputs for line in o.splitlines() if line.startswith("|")
    ]
    return {
      "status": MEASURED,
      "result": "see accelerator.log",
      "table": tables,
    }
  try:
    return {"status": MEASURED, **row.parse(outputs)}
  except Exception as error:
    return {"status": FAILED, "error": f"parsing the output: {error}"}


class WorkerSlot:
  """The one worker process of a run: started early (it imports while the
  driver checks the rows), asked for its hello when first needed, stopped
  at the deadline and started afresh for the next Python row."""

  def __init__(self, table: Table, dry_run: bool, scratch: str, log, env):
    self.table = table
    self.args = dry_run, scratch, log, env
    self.worker: Worker | None = None

  def start(self) -> None:
    if self.worker is None or self.worker.process.poll() is not None:
      self.worker = Worker(*self.args)

  def stop(self) -> None:
    if self.worker is not None:
      self.worker.stop()
      self.worker = None

  def ready(self) -> Worker | None:
    """The worker once it has said hello (None if it did not)."""
    self.start()
    if self.worker.ready:
      return self.worker
    try:
      hello = self.worker.message(self.table.deadline)
    except EOFError:
      hello = None
    if hello is None or hello.get("kind") != "hello":
      self.stop()
      return None
    self.worker.ready = True
    self.table.environment = hello["environment"]
    self.table.write()
    return self.worker

  def run(self, row: Row) -> dict:
    """`row` in the worker: its fields for the table."""
    worker_ = self.ready()
    if worker_ is None:
      if time.time() >= self.table.deadline:
        return {"status": TIMED_OUT, "result": "the worker was still starting"}
      return {"status": FAILED, "error": "the worker did not start (log)"}
    worker_.send(row.name)
    partial = {}
    while True:
      try:
        message = worker_.message(self.table.deadline)
      except EOFError:
        code = worker_.process.wait()
        self.stop()
        return {
          **partial,
          "status": FAILED,
          "error": f"the worker exited with code {code} (log)",
        }
      if message is None:  # the budget is spent: stop the row
        self.stop()
        return {
          **partial,
          "status": TIMED_OUT,
          "result": "stopped at the budget",
        }
      kind = message.pop("kind")
      message.pop("row", None)
      if kind == "partial":
        partial.update(message)
        self.table.set(row.name, **partial)
      elif kind == "done":
        return {**partial, **message}


def drive(
  rows,
  out: str,
  dry_run: bool,
  deadline: float,
  budget_s: float,
  quiet: bool = False,
  numbering=(),
) -> Table:
  """Runs `rows` within the deadline; returns the table (also on disk).
  `numbering`: the full list the table's row numbers refer to."""
  os.makedirs(out, exist_ok=True)
  table = Table(rows, out, dry_run, budget_s, deadline, numbering)
  table.write()
  scratch = tempfile.mkdtemp(prefix="accelerator_")
  env = _worker_env(dry_run)
  log = open(  # noqa: SIM115 (closed in the finally below)
    os.path.join(out, "accelerator.log"), "a", buffering=1
  )
  slot = WorkerSlot(table, dry_run, scratch, log, env)
  current = []

  def say(text):
    if not quiet:
      print(text, flush=True)

  def interrupted(signum, frame):
    if current:
      table.set(current[-1], status=TIMED_OUT, result="interrupted")
    for name, record in table.records.items():
      if record["status"] == PENDING:
        table.set(name, status=NOT_REACHED, result="the run was interrupted")
    raise SystemExit(128 + signum)  # the finally below stops the worker

  previous = signal.signal(signal.SIGTERM, interrupted)
  try:
    if any(not row.is_command for row in rows):
      slot.start()
    for row in rows:
      reason = row.check()
      if reason:
        table.set(row.name, status=NOT_AVAILABLE, reason=reason)
    for row in rows:
      record = table.records[row.name]
      left = table.deadline - time.time()
      if record["status"] == NOT_AVAILABLE:
        say(f"{row.name}: {NOT_AVAILABLE} ({record['reason']})")
        continue
      if record["estimate_s"] > left:
        fit = f"est. {record['estimate_s']:.0f} s > {max(left, 0):.0f} s left"
        table.set(row.name, status=NOT_REACHED, result=fit)
        say(f"{row.name}: {NOT_REACHED} ({fit})")
        continue
      current.append(row.name)
      table.set(row.name, status=RUNNING)
      say(f"{row.name}: running ({left:.0f} s left)")
      start = time.time()
      fields = (
        run_command_row(row, table, log, env, dry_run)
        if row.is_command
        else slot.run(row)
      )
      table.set(row.name, row_s=time.time() - start, **fields)
      current.pop()
      r = table.records[row.name]
      say(f"{row.name}: {r['status']}: {r['result'] or r.get('error', '')}")
  finally:
    signal.signal(signal.SIGTERM, previous)
    slot.stop()
    log.close()
    shutil.rmtree(scratch, ignore_errors=True)
  return table


def missing_requirements() -> list[str]:
  """setup.cfg's install_requires (and torch) that are not installed at a
  version the requirement takes."""
  parser = configparser.ConfigParser()
  parser.read(REPO / "setup.cfg")
  lines = parser["options"]["install_requires"].splitlines()
  lines += parser["options.extras_require"]["torch"].splitlines()
  try:
    from packaging.requirements import Requirement
  except ImportError:
    Requirement = None
  missing = []
  for line in lines:
    line = line.split("#")[0].strip()
    if not line:
      continue
    name = re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0]
    try:
      installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      missing.append(line)
      continue
    wrong = (
      Requirement is not None
      and name != "torch"  # any torch will do
      and not Requirement(line).specifier.contains(installed, prereleases=True)
    )
    if wrong:
      missing.append(line)
  return missing


def select_rows(rows, spec: str | None) -> list[Row]:
  """--rows: comma-separated 1-based numbers or parts of names."""
  if not spec:
    return list(rows)
  chosen = []
  for part in spec.split(","):
    part = part.strip()
    if part.isdigit():
      chosen.append(rows[int(part) - 1])
    else:
      matches = [r for r in rows if part.lower() in r.name.lower()]
      if not matches:
        raise SystemExit(f"--rows: no row matches {part!r}")
      chosen += matches
  return [r for r in rows if r in chosen]
