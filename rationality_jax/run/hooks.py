"""Hooks of the training loop: progress, TensorBoard, preemption, finite checks.

The loop (`rationality_jax.run.train`) calls each hook on the host, between
steps, with the host's step count; none of them talks to the device unless a
log step asks for the metrics.

  reporter = Reporter(workdir, first, last, batch_size)  # progress bar + TB
  preemption = Preemption(manager)          # SIGTERM -> save, exit 143
  check_finite(step, metrics, config)       # NaN/inf loss or gradient stops
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import jax
import numpy as np

from rationality_jax import console

TENSORBOARD = "tensorboard"
SIGTERM_EXIT = 143


def summary_writer(logdir: str):
  """A tensorboardX SummaryWriter (scalars only, so torch is kept from loading with it)."""
  if "tensorboardX" not in sys.modules and "torch" not in sys.modules:
    # tensorboardX imports torch only to accept its tensors.
    sys.modules["torch"] = None
    try:
      import tensorboardX  # noqa: F401 - imported here with torch blocked
    finally:
      del sys.modules["torch"]
  from tensorboardX import SummaryWriter

  return SummaryWriter(logdir)


class Reporter:
  """Progress bar (rate, time left, loss) + TensorBoard scalars, process 0."""

  def __init__(self, workdir: str, first: int, last: int, batch_size: int):
    self.active = jax.process_index() == 0
    self.batch_size = batch_size
    self.last = (first, time.perf_counter())
    self._bar_context = console.progress(last, "train", "step", initial=first)
    self.bar = self._bar_context.__enter__()
    self.writer = (
      summary_writer(os.path.join(workdir, TENSORBOARD))
      if self.active
      else None
    )

  def step(self, step: int) -> None:
    self.bar.update(step - self.bar.n)

  def __call__(self, step: int, metrics: dict[str, float]) -> None:
    last_step, last_time = self.last
    now = time.perf_counter()
    metrics = dict(
      metrics,
      examples_per_second=(step - last_step)
      * self.batch_size
      / max(now - last_time, 1e-9),
    )
    self.last = (step, now)
    self.step(step)
    if not self.active:
      return
    for name, value in metrics.items():
      self.writer.add_scalar(f"train/{name}", value, step)
    self.writer.flush()
    self.bar.set_postfix_str(f"loss {metrics['loss']:.4f}")

  def close(self):
    self._bar_context.__exit__(None, None, None)
    if self.writer is not None:
      self.writer.close()


def check_finite(step: int, metrics: dict[str, float], config) -> None:
  """Stops the run on a NaN/inf loss or gradient norm with what to try."""
  bad = [k for k in ("loss", "grad_norm") if not np.isfinite(metrics[k])]
  if bad:
    raise FloatingPointError(
      f"{' and '.join(bad)} not finite at step {step} (loss "
      f"{metrics['loss']}, gradient norm {metrics['grad_norm']}; method "
      f"{config.method}, lr {config.train.optim.lr}): nothing from this step "
      "on is saved. Lower train.optim.lr, set train.optim.grad_clip_norm, "
      "or check the inputs' normalization."
    )


class Preemption:
  """SIGTERM -> `requested` (single process); multi-host asks jax's preemption sync."""

  def __init__(self, manager):
    self.manager = manager
    self.received = False
    self.previous = None
    if (
      jax.process_count() == 1
      and threading.current_thread() is threading.main_thread()
    ):
      self.previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.received = True

  def requested(self, step: int) -> bool:
    if jax.process_count() > 1:
      return self.manager.reached_preemption(step)
    return self.received

  def restore(self):
    if self.previous is not None:
      signal.signal(signal.SIGTERM, self.previous)
