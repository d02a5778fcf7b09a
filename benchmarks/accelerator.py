r"""The accelerator table: every GPU/TPU measurement of docs/benchmarks.md in one
run that fits a time budget, each row written as soon as it is measured.

    bash benchmarks/accelerator.sh [--budget 540] [--out DIR] [--wheels DIR]
    python benchmarks/accelerator.py [--budget 540 | --deadline EPOCH]
        [--out DIR] [--dry-run] [--rows 1,3,rma]
    python benchmarks/accelerator.py --list        # the rows, their estimates
    python benchmarks/accelerator.py --missing     # requirements not installed

`benchmarks/accelerator.sh` installs what is missing and calls this script
(docs/scale.md, "Measuring an accelerator in one command"): the rows
(`ROWS`) are here, the machinery that runs them (worker process, table,
scheduling) in `benchmarks/accelerator_driver.py`. The rows run in order of
importance. Before each, its estimated cost (seconds on an
accelerator; `dry_cost_s` on the CPU dry run) is compared with what is left
of the budget: a row that does not fit is written "not reached" and the next
one is tried; a row still running when the budget ends is stopped and
written "timed out" (with what it had reported: its compile time, say). A
row whose feature this checkout lacks is written "not available in this
checkout". Nothing is dropped: every row of `ROWS` is in both files.

Output (under --out; default $OUT when set, else ./accelerator_out), three
files, rewritten whole after every row so that a run cut short leaves what
it measured: `accelerator.md` (the table), `accelerator.json` (every number
of every row, the environment), `accelerator.log` (everything the rows
printed).

How rows run. Python rows run in one worker process (`--worker`, started by
the driver: jax, the model code and PyTorch are imported once, not once per
row), which reports each row's result over a pipe; the driver stops it at
the budget (its whole process group, input workers included) and starts a
fresh one for the next row that fits. Command rows run as subprocesses of the
driver. Each row reports its own compile time (the device executable's
compilation or first call), shown in the table's "compile s" column.

Adding a row is one entry of `ROWS`:

    Row("name", run, cost_s=60, goal="...")

where `run` is a Python callable ``run(ctx) -> dict`` (runs in the worker;
`Context` gives the dry-run flag, a scratch directory, a per-process cache
and the matmul reference; the dict's keys: 'result' (the table's text),
'goal_met' (bool or None), 'compile_s', and any numbers for the JSON; raise
`NotAvailable(reason)` when the feature is missing) or a command (a list of
arguments, or a list of such lists run in order, from the repository's
root; ``{python}`` is this interpreter; ``dry=`` gives the dry run's
arguments, ``parse=`` turns the outputs into the dict). ``available=`` is a
check the driver runs before anything is measured (it may import
rationality_jax, not start a backend): it returns None, or why the row
cannot run in this checkout.

The dry run (`--dry-run`, CPU, tiny models, one repetition) runs the same
driver, worker and rows; `tests/test_accelerator_dry_run.py` runs it in CI.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import os
import sys
import time

import accelerator_driver as driver  # noqa: F401 (the statuses, for tests)
from accelerator_driver import BENCHMARKS
from accelerator_driver import REPO
from accelerator_driver import Context
from accelerator_driver import NotAvailable
from accelerator_driver import Row
from accelerator_driver import drive
from accelerator_driver import missing_requirements
from accelerator_driver import select_rows
from accelerator_driver import worker

IMAGENET_VAL = 50_000


# The rows ------------------------------------------------------------------


def _mfu_cells(ctx: Context, achieved: float, peak: float) -> tuple[str, dict]:
  import machine

  device = ctx.device()
  sheet = machine.datasheet_tflops(device["device_kind"])
  numbers = {
    "achieved_tflops": achieved / 1e12,
    "matmul_tflops": peak / 1e12,
    "mfu_of_matmul": achieved / peak,
    "datasheet_tflops": sheet,
    "mfu_of_datasheet": None if sheet is None else achieved / (sheet * 1e12),
  }
  text = (
    f"MFU {achieved / peak:.2f} of the measured matmul "
    f"({achieved / 1e12:.4g} of {peak / 1e12:.4g} TFLOP/s)"
  )
  if sheet is not None:
    text += f", {numbers['mfu_of_datasheet']:.2f} of the datasheet's {sheet:g}"
  return text, numbers


def ft_row(batch: int, goal: float) -> Callable[[Context], dict]:
  """FT step (image tower + projection + head, Adam) in bfloat16 at `batch`:
  `evaluate.ft_step`, its MFU against the measured matmul."""

  def run(ctx: Context) -> dict:
    from evaluate import ft_step

    model, module, params = ctx.vision_model("bfloat16")
    peak = ctx.matmul_flops_per_s()
    ft = ft_step(
      module,
      params,
      batch,
      ctx.reps,
      on_compiled=lambda s: ctx.report(compile_s=s),
    )
    achieved = ft["images_per_s"] * ft["flops_per_image"]
    text, numbers = _mfu_cells(ctx, achieved, peak)
    return {
      "result": f"{text}; {ft['images_per_s']:,.0f} images/s, "
      f"{ft['flops_per_image'] / 1e9:.3g} GFLOP/image ({model})",
      "goal_met": None if ctx.dry_run else numbers["mfu_of_matmul"] >= goal,
      "compile_s": ft["compile_s"],
      "model": model,
      "batch": batch,
      **numbers,
      **ft,
    }

  return run


def heatmap_row(start_layer: int) -> Callable[[Context], dict]:
  """Chefer heatmap + RMA: ours against the PyTorch reference on the same
  device (`heatmaps.setup` / `heatmaps.measure`), float32 with TF32 on a GPU."""

  def run(ctx: Context) -> dict:
    import jax

    try:
      import torch
    except ImportError as error:
      raise NotAvailable(f"no torch ({error})") from None
    import heatmaps

    backend = jax.default_backend()
    if backend == "cpu":
      torch_device = "cpu"
    elif backend == "gpu" and torch.cuda.is_available():
      torch_device = "cuda"
    else:  # a TPU, or a torch without CUDA: no PyTorch on this device
      torch_device = None
    batch = ctx.sizes(64, 4)
    key = ("heatmaps", batch)
    if key not in ctx.cache:
      ctx.cache[key] = heatmaps.setup(
        batch, 200, torch_device or "cpu", ctx.sizes("b16", "tiny")
      )
    modes = ["weights", "frozen"] if torch_device else []
    row = heatmaps.measure(
      ctx.cache[key], start_layer, ctx.sizes(5, 1), modes, ctx.reference()
    )
    text = (
      f"ours {row['ours_images_per_s']:,.1f} images/s "
      f"({row['fraction_of_matmul']:.2f} of the matmul)"
    )
    for mode in modes:
      text += (
        f"; PyTorch ({mode}) {row[f'torch_{mode}_images_per_s']:,.1f}: "
        f"{row[f'speedup_vs_torch_{mode}']:.2f}x"
      )
    if modes:
      text += f"; max abs diff {row['max_abs_diff_heatmap']:.1e}"
    else:
      text += f"; PyTorch not on this device ({backend}): ours only"
    speedups = [row[f"speedup_vs_torch_{m}"] for m in modes]
    return {
      "result": text + f" (batch {batch}, float32)",
      "goal_met": None if ctx.dry_run or not modes else min(speedups) >= 1.5,
      "compile_s": row["ours_compile_s"],
      "torch_device": torch_device,
      **row,
    }

  return run


def evaluation_row(workers: int | None) -> Callable[[Context], dict]:
  """The whole evaluation (`stream.evaluate_records` on stand-in 500x375
  JPEGs: read, decode, preprocess, heatmap, scores, records on disk) against
  the heatmap step alone (`evaluate.evaluation_rows`), bfloat16, all 12
  blocks; `workers` input processes (None: one per core)."""

  def run(ctx: Context) -> dict:
    from evaluate import evaluation_rows

    cores = os.cpu_count() or 1
    # One per core; one in the dry run (each starts a Python of its own).
    n_workers = (1 if ctx.dry_run else cores) if workers is None else workers
    model, module, params = ctx.vision_model("bfloat16")
    args = argparse.Namespace(
      model=model,
      images=ctx.sizes(4096, 16),
      batch=ctx.sizes(128, 8),
      start_layer=0,
      dtype="bfloat16",
      reps=ctx.sizes(2, 1),
      input_workers=n_workers,
      distinct=256,
      warmup=not ctx.dry_run,
    )
    root = os.path.join(ctx.scratch, "evaluation")  # built once, shared
    os.makedirs(root, exist_ok=True)
    m = evaluation_rows(
      args,
      ("heatmaps", "evaluation"),
      module,
      params,
      root,
      lambda *cells: None,
      cache=ctx.cache,
    )
    n, rate = m["images"], m["eval_rate"]
    # Steady rate from the difference of the timed runs and the shorter
    # warm-up run; what is left of the warm-up is the pipeline's start-up.
    n0, t0 = m.get("warmup_images", 0), m.get("warmup_seconds", 0.0)
    t = n / rate
    steady = (n - n0) / (t - t0) if n > n0 > 0 and t > t0 else rate
    startup = max(t0 - n0 / steady, 0.0)
    projected = startup + IMAGENET_VAL / steady
    slower = m["heat_rate"] / rate - 1
    how = (
      f"start-up {startup:.1f} s + {steady:,.0f}/s"
      if n0
      else "at that rate, no warm-up run"
    )
    return {
      "result": f"evaluation {rate:,.0f} images/s, heatmaps alone "
      f"{m['heat_rate']:,.0f} ({100 * slower:+.0f}%); 50,000 images in "
      f"~{projected:,.1f} s ({how}); {n} JPEGs, batch {args.batch}, "
      f"{n_workers} input worker{'' if n_workers == 1 else 's'}",
      "goal_met": None if ctx.dry_run else projected < 30,
      "compile_s": m["compile_s"],
      "input_workers": n_workers,
      "steady_images_per_s": steady,
      "startup_s": startup,
      "projected_50000_s": projected,
      "slower_than_heatmaps": slower,
      **m,
    }

  return run


def rma_row(ctx: Context) -> dict:
  """`metrics.rma` jitted on the device over N heatmaps (float32) and masks
  (uint8) already there, against a device copy of the same bytes
  (`benchmarks/metrics.py`'s rounds)."""
  import jax
  import jax.numpy as jnp
  from machine import Timing
  from metrics import _timed_rounds  # benchmarks/metrics.py
  import numpy as np

  from rationality_jax import metrics

  n, size = ctx.sizes((10_000, 224), (64, 32))
  k1, k2 = jax.random.split(jax.random.key(0))
  heatmaps = jax.random.uniform(k1, (n, size, size), jnp.float32)
  masks = (jax.random.uniform(k2, (n, size, size)) < 0.3).astype(jnp.uint8)
  jax.block_until_ready((heatmaps, masks))  # not part of the compile time
  rma = jax.jit(metrics.rma)
  copy = jax.jit(lambda h, m: (jnp.copy(h), jnp.copy(m)))
  compile_s = Timing(lambda: jax.block_until_ready(rma(heatmaps, masks))).wall
  ctx.report(compile_s=compile_s)
  h, m = np.asarray(heatmaps[:8]), np.asarray(masks[:8]).astype(np.float32)
  np.testing.assert_allclose(
    np.asarray(rma(heatmaps, masks)[:8]),
    np.einsum("nhw,nhw->n", h, m) / h.sum((1, 2)),
    rtol=1e-4,
  )
  times = _timed_rounds(
    {
      "ours": lambda: jax.block_until_ready(rma(heatmaps, masks)),
      "copy": lambda: jax.block_until_ready(copy(heatmaps, masks)),
    },
    ctx.sizes(15, 1),
  )
  ours_s, copy_s = (
    float(np.median(times["ours"])),
    float(np.median(times["copy"])),
  )
  nbytes = heatmaps.nbytes + masks.nbytes
  ratio = float(np.median(times["ours"] / times["copy"]))
  return {
    "result": f"{n / ours_s:,.0f} heatmaps/s ({size} px), "
    f"{nbytes / ours_s / 1e9:,.1f} GB/s read; a device copy of the same "
    f"bytes {copy_s * 1e3:.3g} ms, ours {ratio:.2f}x its time "
    f"({n:,} maps, {nbytes / 1e9:.2f} GB)",
    "goal_met": None if ctx.dry_run else ratio <= 1.2,
    "compile_s": compile_s,
    "n": n,
    "size": size,
    "ours_s": ours_s,
    "copy_s": copy_s,
    "ours_over_copy": ratio,
    "seconds": {k: v.tolist() for k, v in times.items()},
  }


BOOTSTRAP = "bootstrap_intervals"  # rationality_jax.metrics' function


def bootstrap_available() -> str | None:
  from rationality_jax import metrics

  if hasattr(metrics, BOOTSTRAP):
    return None
  return f"rationality_jax.metrics has no {BOOTSTRAP}"


def bootstrap_row(ctx: Context) -> dict:
  """Percentile bootstrap intervals of accuracy, PT and IR from 50,000
  per-sample records, 1,000 resamples, after a first (compiling) call."""
  import jax
  from machine import Timing
  from metrics import _timed_rounds  # benchmarks/metrics.py
  import numpy as np

  from rationality_jax import metrics

  intervals = getattr(metrics, BOOTSTRAP, None)
  if intervals is None:
    raise NotAvailable(bootstrap_available())
  n, resamples = ctx.sizes((50_000, 1_000), (1_000, 100))
  rng = np.random.default_rng(1)
  correct = jax.device_put(rng.random(n) < 0.7)
  valid = jax.device_put((rng.random(n) < 0.5).astype(np.float32))
  key = jax.random.key(0)

  def once():
    return jax.block_until_ready(
      intervals(correct, valid, key=key, resamples=resamples)
    )

  compile_s = Timing(once).wall
  times = _timed_rounds({"ours": once}, ctx.sizes(7, 1))["ours"]
  return {
    "result": f"{np.median(times) * 1e3:.3g} ms for {n:,} records x "
    f"{resamples:,} resamples (median of {len(times)})",
    "goal_met": None,
    "compile_s": compile_s,
    "seconds": times.tolist(),
  }


GUIDED = "guided"  # rationality_jax.methods' name of the method
TRAIN = ["{python}", "benchmarks/train.py", "--skip-torch"]
TRAIN_FULL = [*TRAIN, "--model", "b16", "--batch", "32", "--dtype", "bfloat16"]
TRAIN_DRY = [*TRAIN, "--model", "tiny", "--batch", "4", "--steps", "1"]


def guided_available() -> str | None:
  from rationality_jax import methods

  if GUIDED not in methods.METHODS:
    return f"no method {GUIDED!r} in rationality_jax.methods"
  if '"--method"' not in (BENCHMARKS / "train.py").read_text():
    return "benchmarks/train.py takes no --method"
  return None


def train_table(output: str) -> dict[str, dict]:
  """{method: its 'rationality_jax (jit), <method>' row} of
  `benchmarks/train.py --method a,b`'s table."""
  rows = {}
  for line in output.splitlines():
    if line.startswith("| rationality_jax"):
      cells = [c.strip() for c in line.strip().strip("|").split("|")]
      method = cells[0].rpartition(", ")[2]
      rows[method] = {"compile_s": float(cells[1]), "step_s": float(cells[3])}
  if not rows:
    raise ValueError(
      "no '| rationality_jax' row in benchmarks/train.py's output"
    )
  return rows


def guided_vs_ft(outputs: list[str]) -> dict:
  """Both steps from one process (one model, batch and matmul reference)."""
  rows = train_table(outputs[0])
  ft, guided = rows["ft"], rows[GUIDED]
  ratio = guided["step_s"] / ft["step_s"]
  return {
    "result": f"guided {guided['step_s']:.3f} s/step, FT "
    f"{ft['step_s']:.3f} s/step: {ratio:.2f}x FT's time",
    "goal_met": None,
    "compile_s": guided["compile_s"],
    "ft": ft,
    "guided": guided,
  }


ROWS = [
  Row(
    "FT step MFU, bfloat16, batch 32",
    ft_row(32, 0.40),
    cost_s=75,
    dry_cost_s=10,
    goal="MFU >= 0.40",
  ),
  Row(
    "FT step MFU, bfloat16, batch 256",
    ft_row(256, 0.50),
    cost_s=100,
    dry_cost_s=10,
    goal="MFU >= 0.50",
  ),
  Row(
    "heatmaps, all 12 blocks, vs PyTorch on the same device",
    heatmap_row(0),
    cost_s=110,
    dry_cost_s=15,
    goal="ours >= 1.5x PyTorch",
  ),
  Row(
    "heatmaps, last block, vs PyTorch on the same device",
    heatmap_row(-1),
    cost_s=60,
    dry_cost_s=8,
    goal="ours >= 1.5x PyTorch",
  ),
  Row(
    "whole evaluation (JPEGs, input workers = cores) vs heatmaps alone",
    evaluation_row(None),
    cost_s=120,
    dry_cost_s=20,
    goal="50,000 images < 30 s",
  ),
  Row("RMA on device", rma_row, cost_s=25, dry_cost_s=5, goal="<= 1.2x a copy"),
  Row(
    "guided step vs FT",
    [[*TRAIN_FULL, "--method", f"ft,{GUIDED}"]],
    cost_s=200,  # one process compiling both steps and counting FLOPs
    dry_cost_s=25,
    available=guided_available,
    dry=[[*TRAIN_DRY, "--method", f"ft,{GUIDED}"]],
    parse=guided_vs_ft,
  ),
  Row(
    "bootstrap intervals 50,000 x 1,000",
    bootstrap_row,
    cost_s=20,
    dry_cost_s=5,
    available=bootstrap_available,
  ),
  Row(
    "whole evaluation, input threads only (no worker processes)",
    evaluation_row(0),
    cost_s=60,
    dry_cost_s=10,
    goal="50,000 images < 30 s",
  ),
]


def main(argv=None) -> int:
  # This checkout's rationality_jax (and benchmarks/), not an installed copy:
  # the availability checks and the worker (_worker_env) read this one.
  for path in (str(BENCHMARKS), str(REPO)):
    if path in sys.path:
      sys.path.remove(path)
    sys.path.insert(0, path)
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--budget", type=float, default=540.0)
  parser.add_argument(
    "--deadline",
    type=float,
    default=None,
    help="end of the budget as a Unix time (accelerator.sh passes it, so "
    "that installing counts against the budget)",
  )
  parser.add_argument(
    "--out", default=os.environ.get("OUT") or "accelerator_out"
  )
  parser.add_argument("--dry-run", action="store_true")
  parser.add_argument("--rows", default=None)
  parser.add_argument("--list", action="store_true")
  parser.add_argument("--missing", action="store_true")
  parser.add_argument(
    "--worker", type=int, default=None, help=argparse.SUPPRESS
  )
  parser.add_argument("--scratch", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker is not None:
    worker(ROWS, args.worker, args.dry_run, args.scratch)
    return 0
  if args.missing:
    print("\n".join(missing_requirements()))
    return 0
  rows = select_rows(ROWS, args.rows)
  if args.list:
    for i, row in enumerate(ROWS, 1):
      kind = "command" if row.is_command else "python"
      print(
        f"{i}. {row.name} ({kind}; est. {row.cost_s:.0f} s, dry run "
        f"{row.dry_cost_s:.0f} s; goal: {row.goal})"
      )
    return 0
  deadline = args.deadline or time.time() + args.budget
  table = drive(
    rows, args.out, args.dry_run, deadline, args.budget, numbering=ROWS
  )
  print("\n" + table.markdown())
  print(f"written: {os.path.join(args.out, 'accelerator.md')}, .json, .log")
  return 0


if __name__ == "__main__":
  sys.exit(main())
