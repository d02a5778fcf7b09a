"""Figures of evaluated runs (matplotlib, Agg, written atomically).

report.figure_threshold_curves(run_dirs, "pt_ir_threshold.png")
report.figure_heatmaps(run_dirs, images, masks, "heatmaps.png", ids=ids)
report.figure_corruptions(rows, "corruptions.png")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import os

import numpy as np

from rationality_jax import files
from rationality_jax.report import records as records_lib
from rationality_jax.report import statistics
from rationality_jax.report.rows import META


def pyplot():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _label(run_dir: str) -> str:
  meta = files.read_json(os.path.join(run_dir, META))
  return meta.get("name") or os.path.basename(run_dir.rstrip("/"))


def figure_threshold_curves(
  run_dirs: Sequence[str],
  path: str,
  thresholds: Sequence[float] = tuple(np.linspace(0.05, 0.95, 19)),
) -> str:
  """PT and IR against the validity threshold, a line per run with its 95%
  bootstrap band (`statistics.threshold_bands`; from the records)."""
  plt = pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
  for run_dir in run_dirs:
    c = records_lib.curve(run_dir, thresholds)
    bands = statistics.threshold_bands(
      records_lib.load(run_dir), thresholds, records_lib.policies(run_dir)
    )
    for ax, metric in zip(axes, ("pt", "ir")):
      (line,) = ax.plot(
        c["threshold"],
        100 * np.asarray(c[metric], float),
        marker="o",
        markersize=3,
        label=_label(run_dir),
      )
      low, high = bands[metric]
      ax.fill_between(
        c["threshold"],
        100 * low,
        100 * high,
        color=line.get_color(),
        alpha=0.15,
        linewidth=0,
      )
  return _save_pt_ir(
    plt,
    fig,
    axes,
    ("Prediction trustworthiness (PT)", "Inference reliability (IR)"),
    "validity threshold on RMA",
    8,
    path,
  )


def _save_pt_ir(
  plt, fig, axes, titles, xlabel: str, legend_size: int, path: str
) -> str:
  """Labels the PT and IR panels (percent, 0-100), writes the figure, closes it."""
  for ax, title in zip(axes, titles):
    ax.set_xlabel(xlabel)
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=legend_size)
  save(plt, fig, path)
  return path


def save(plt, fig, path: str) -> None:
  """Writes a figure atomically (a full disk never leaves a truncated PNG)."""
  with files.atomic(path) as tmp:
    fig.savefig(tmp, dpi=110)
  plt.close(fig)


def figure_heatmaps(
  run_dirs: Sequence[str],
  images: Mapping[str, np.ndarray],
  masks: Mapping[str, np.ndarray],
  path: str,
  ids: Sequence[str] | None = None,
) -> str:
  """The same images explained by every run (the study's Figure 3).

  Args:
    run_dirs: evaluated runs that kept heatmaps of the figure ids.
    images: {id: [S, S, 3] uint8} the images at the model's input resolution.
    masks: {id: [S, S]} their object masks (drawn as a contour).
    path: PNG to write.
    ids: which ids (default: those of `images` that every run kept).
  Returns:
    path.
  """
  plt = pyplot()
  heatmaps = {
    run_dir: records_lib.load_heatmaps(run_dir) for run_dir in run_dirs
  }
  records = {
    run_dir: records_lib.load(run_dir).arrays() for run_dir in run_dirs
  }
  if ids is None:
    ids = [i for i in images if all(i in h for h in heatmaps.values())]
  if not ids:
    raise ValueError(
      "no image has a heatmap in every run; evaluate with figure_ids."
    )
  fig, axes = plt.subplots(
    len(ids),
    len(run_dirs) + 1,
    squeeze=False,
    figsize=(1.6 * (len(run_dirs) + 1), 1.7 * len(ids)),
    constrained_layout=True,
  )
  for r, sample_id in enumerate(ids):
    axes[r, 0].imshow(images[sample_id])
    axes[r, 0].contour(
      np.asarray(masks[sample_id]) > 0, levels=[0.5], colors="w", linewidths=0.8
    )
    axes[r, 0].set_title(sample_id, fontsize=7)
    for c, run_dir in enumerate(run_dirs, start=1):
      rec = records[run_dir]
      row = int(np.nonzero(rec["ids"] == sample_id)[0][0])
      ax = axes[r, c]
      ax.imshow(images[sample_id])
      ax.imshow(
        heatmaps[run_dir][sample_id], cmap="jet", alpha=0.5, vmin=0, vmax=1
      )
      ax.contour(
        np.asarray(masks[sample_id]) > 0,
        levels=[0.5],
        colors="w",
        linewidths=0.8,
      )
      mark = "right" if rec["correct"][row] else "wrong"
      title = f"RMA {rec['rma'][row]:.2f}, {mark}"
      if r == 0:
        title = f"{_label(run_dir)}\n{title}"
      ax.set_title(title, fontsize=7)
  for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
  save(plt, fig, path)
  return path


def figure_corruptions(rows: Sequence[dict], path: str) -> str:
  """PT and IR against the corruption severity, a line per (method, corruption).

  Rows with an empty `corruption` are drawn at severity 0 (clean) for each
  corruption of the same method, model and dataset.
  """
  plt = pyplot()
  corrupted = [r for r in rows if r.get("corruption")]
  if not corrupted:
    raise ValueError(
      "no row has a corruption; evaluate ImageNet-C cells first."
    )
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
  groups = sorted(
    {
      (r["method"], r["model"], r["dataset"], r["corruption"])
      for r in corrupted
    }
  )
  for method, model, dataset, corruption in groups:
    points = [
      (int(r["severity"]), r)
      for r in corrupted
      if (r["method"], r["model"], r["dataset"], r["corruption"])
      == (method, model, dataset, corruption)
    ]
    points += [
      (0, r)
      for r in rows
      if not r.get("corruption")
      and (r["method"], r["model"]) == (method, model)
    ]
    points.sort(key=lambda p: p[0])
    for ax, metric in zip(axes, ("pt", "ir")):
      ax.plot(
        [p[0] for p in points],
        [100 * p[1][metric] for p in points],
        marker="o",
        markersize=3,
        label=f"{method} {model} {corruption}",
      )
  return _save_pt_ir(
    plt,
    fig,
    axes,
    ("PT against severity", "IR against severity"),
    "severity (0 = clean)",
    7,
    path,
  )
