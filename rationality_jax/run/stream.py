"""The evaluation loop: one process's shard of a split, streamed to records.

  stream.evaluate_records(explain_fn, trained, source, out_dir, spec=...,
                          batch_size=64, name="zs")

One jitted step per batch (`make_eval_step`: the explanation, RMA, RRA,
pointing game, prediction and finite flags of every sample) with one batch
in flight; the host side (records, chunks, progress markers, resume) is
`recorder.Recorder`.
"""

from __future__ import annotations

from collections.abc import Callable
import functools

import jax
import jax.numpy as jnp
import numpy as np

from rationality_jax import console
from rationality_jax import data
from rationality_jax import metrics
from rationality_jax import sharding
from rationality_jax.run import checkpoints
from rationality_jax.run import config as config_lib
from rationality_jax.run import recorder
from rationality_jax.run import resolve


@functools.lru_cache(maxsize=16)
def make_eval_step(explain_fn: Callable, curves: tuple = ()) -> Callable:
  """Jitted ``step(params, head, images, labels, masks) -> dict`` of [B] arrays.

  Cached per (`explain_fn`, `curves`), so a resumed evaluation in the same
  process does not compile again.

  Args:
    explain_fn: `explain.make_explainer(..., jit=False)`.
    curves: ((name, curve), ...) of `explain.make_perturbation_curve(...,
      jit=False)`: each adds the per-sample ``<name>_auc`` of the heatmap's
      deletion or insertion curve (of the explained class).

  Returns:
    step returning {'prediction' [B] int32 (-1 where the logits are not
    finite), 'correct' [B] bool, 'confidence' [B] float32 (the softmax
    probability of the prediction; NaN where the logits are not finite),
    'rma', 'rra', 'pointing_game' [B] float32, 'mask_area' [B] int32,
    'heatmap_mass', 'heatmap_std' [B] float32, 'logits_finite',
    'heatmap_finite' [B] bool, '<curve>_auc' [B] float32, 'heatmap' [B, S,
    S] float32}.
  """

  @jax.jit
  def step(params, head, images, labels, masks):
    out = explain_fn(params, head, images, labels, masks)
    logits, heatmap = out["logits"], out["heatmap"]
    logits_finite = jnp.all(jnp.isfinite(logits), axis=-1)
    prediction = jnp.where(
      logits_finite, jnp.argmax(logits, axis=-1).astype(jnp.int32), -1
    )
    aucs = {
      f"{name}_auc": curve(params, head, images, heatmap, out["classes"])["auc"]
      for name, curve in curves
    }
    probabilities = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return {
      "prediction": prediction,
      "correct": prediction == labels,
      "confidence": jnp.where(
        logits_finite, jnp.max(probabilities, axis=-1), jnp.nan
      ),
      "logits_finite": logits_finite,
      **metrics.evidence_columns(heatmap, masks),
      "rra": metrics.relevance_rank_accuracy(heatmap, masks),
      "pointing_game": metrics.pointing_game(heatmap, masks),
      **aucs,
      "heatmap": heatmap,
    }

  return step


def _stream(it, rec, bar, trained, step) -> None:
  """Every batch of `it` through `step`, recorded by `rec`, with one batch
  in flight: the next batch is put on the devices and its step dispatched
  (asynchronously) before the previous one's results are read, so reading,
  decoding and recording overlap the device's work."""
  local_mesh = sharding.local_mesh()
  batch_sharding = sharding.batch_sharding(local_mesh)
  params = jax.device_put(trained.params, sharding.replicated(local_mesh))
  head = jax.device_put(trained.head, sharding.replicated(local_mesh))
  count = jax.process_count()
  pending = None
  for batches, local in enumerate(it, start=1):
    state = it.get_state()  # the position after this batch
    if batches == 1:
      resolve.check_images(local["image"].shape, trained.module, "eval")
    batch = {
      k: jax.device_put(np.asarray(local[k]), batch_sharding)
      for k in ("image", "label", "mask")
    }
    out = step(params, head, batch["image"], batch["label"], batch["mask"])
    if pending is not None:
      bar.update(rec.record(*pending) * count)
      _after_batch(pending[0])
    pending = (batches, local, out, state)
  if pending is not None:
    bar.update(rec.record(*pending) * count)
    _after_batch(pending[0])


def _after_batch(batches: int) -> None:
  """Called after each batch; tests replace it to simulate a kill."""
  del batches


def evaluate_records(
  explain_fn: Callable,
  trained: checkpoints.Trained,
  source,
  out_dir: str,
  *,
  spec: str,
  batch_size: int,
  name: str,
  figure_ids=(),
  batches_per_chunk: int = 1,
  num_threads: int = 2,
  num_workers: int = 0,
  positions=None,
  curves: tuple = (),
  gallery=None,
) -> None:
  """This process's shard of `source` -> records in ``out_dir/records``.

  Resumes from this process's progress marker; skips ids already recorded
  by any process (`recorder.Recorder`). `positions`: when `source` is a
  `data.Subset` of the evaluated split, its positions there (the records'
  ``index`` column is always the split's). `curves`: `make_eval_step`'s.
  `gallery`: the `report.gallery.Plan` of the thumbnails kept for
  report.html.
  """
  process, count = jax.process_index(), jax.process_count()
  if batch_size % count:
    raise config_lib.ConfigError(
      f"config.evaluate.batch_size: {batch_size} is not divisible by the "
      f"{count} processes"
    )
  rec = recorder.Recorder(
    out_dir, name, figure_ids, batches_per_chunk, positions, gallery
  )
  if rec.shard_complete():
    return
  it = data.make_iterator(
    source,
    spec,
    batch_size,
    mesh=None,
    shuffle=False,
    num_epochs=1,
    drop_remainder=False,
    process_index=process,
    process_count=count,
    num_threads=num_threads,
    prefetch=2 * batch_size,
    num_workers=num_workers,
  )
  try:
    rec.resume(it)
    done = len(rec.done_ids)
    # A repair's subset comes after what is recorded: the bar counts both.
    total = len(source) if positions is None else done + len(source)
    with console.progress(total, name, "img", initial=done) as bar:
      _stream(it, rec, bar, trained, make_eval_step(explain_fn, curves))
    rec.finish(it.get_state(), len(range(process, len(source), count)))
  finally:
    it.close()  # ends the input's worker processes, if any
