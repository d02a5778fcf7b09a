"""The guided methods' report: held-out heatmaps and few masks.

  sections, figures = report.guided_report(rows, figures_dir)

A method trained on its explanation (guided, guided_ft, rrr) is scored by
the heatmap it was trained on and by heatmaps it was not (Goodhart: the
trained map can move without the model's reasons moving). Each evaluated
model (grouped by its training's fingerprint, so one training evaluated
under several heatmaps is one line) gets a line of accuracy and PT / IR per
heatmap (`heatmap_table`); the methods with a ``masks_per_class`` option get
PT and accuracy against it (`masks_table`, `figure_masks`: one line per
method, the held-out heatmaps' curves dashed and dotted). Repeated seeds of
one setting are averaged (mean ± standard deviation). Everything is read
from each run directory's ``config.json``, ``fingerprint.json`` and records.
"""

from __future__ import annotations

from collections.abc import Sequence
import json
import os

import numpy as np

from rationality_jax import files
from rationality_jax import methods
from rationality_jax.report import figures

# The heatmap the guided methods train on first, then the held-out ones.
HEATMAP_ORDER = ("chefer", "gradcam", "rollout")
HELD_OUT_STYLES = ("--", ":", "-.")


def _config(run_dir: str) -> dict:
  return files.read_json(os.path.join(run_dir, "config.json"))


def masks_per_class(config: dict):
  """The run's ``masks_per_class`` (int, -1 = every image) or None: from
  its method's own options section (`Method.options_section`)."""
  name = config.get("method", "")
  if name not in methods.METHODS:
    return None
  section = config.get(methods.METHODS[name].options_section, {})
  if isinstance(section, dict) and "masks_per_class" in section:
    return int(section["masks_per_class"])
  return None


def annotate(rows: Sequence[dict]) -> list[dict]:
  """Copies of the clean rows with ``heatmap_name``, ``masks_per_class``,
  ``seed`` and ``trained_key`` (the training's fingerprint) from the run
  directory."""
  out = []
  for row in rows:
    if row.get("corruption") or not row.get("run_dir"):
      continue
    config = _config(row["run_dir"])
    fingerprint = files.read_json(
      os.path.join(row["run_dir"], "fingerprint.json")
    )
    trained = dict(fingerprint.get("trained", {}))
    out.append(
      dict(
        row,
        heatmap_name=config["heatmap"]["name"],
        masks_per_class=masks_per_class(config),
        seed=config.get("seed"),
        trained_key=json.dumps(
          [trained, fingerprint.get("data")], sort_keys=True
        ),
        model_key=_setting(trained, fingerprint.get("data"), masks=True),
        setting_key=_setting(trained, fingerprint.get("data")),
      )
    )
  return out


def primary(run_dirs: Sequence[str]) -> list[str]:
  """The first evaluation of each trained model among `run_dirs` (the others
  score the same model with held-out heatmaps), in order."""
  seen, out = set(), []
  for run_dir in run_dirs:
    path = os.path.join(run_dir, "fingerprint.json")
    fingerprint = files.read_json(path) if os.path.exists(path) else {}
    key = json.dumps(
      [fingerprint.get("trained", run_dir), fingerprint.get("data")],
      sort_keys=True,
    )
    if key not in seen:
      seen.add(key)
      out.append(run_dir)
  return out


def _setting(trained: dict, data, masks: bool = False) -> str:
  """What a training fingerprint fixes but its seed (runs of several seeds
  are averaged) and, unless `masks`, its masks (the points of one curve)."""
  trained = json.loads(json.dumps(trained))
  trained.pop("seed", None)
  for options in trained.get("options", {}).values():
    if isinstance(options, dict) and not masks:
      options.pop("masks_per_class", None)
    if isinstance(options, dict):
      options.pop("mask_seed", None)
  return json.dumps([trained, data], sort_keys=True)


def _heatmaps(rows) -> list[str]:
  names = {r["heatmap_name"] for r in rows}
  ordered = [h for h in HEATMAP_ORDER if h in names]
  return ordered + sorted(names - set(ordered))


def _pct(values) -> str:
  values = [100 * float(v) for v in values if not np.isnan(float(v))]
  if not values:
    return "-"
  if len(values) == 1:
    return f"{values[0]:.2f}"
  # As the report's Seeds table: mean ± standard deviation over the seeds.
  return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def heatmap_table(rows: Sequence[dict]) -> str:
  """Markdown: a line per evaluated setting scored under more than one
  heatmap (accuracy, then PT and IR per heatmap; over several seeds, mean ±
  standard deviation and the number of seeds); '' when there is none."""
  groups: dict[str, list[dict]] = {}
  for row in rows:
    groups.setdefault(row["model_key"], []).append(row)
  groups = {
    k: g for k, g in groups.items() if len({r["heatmap_name"] for r in g}) > 1
  }
  if not groups:
    return ""
  heatmaps = _heatmaps([r for g in groups.values() for r in g])
  header = [
    "run",
    "seeds",
    "accuracy",
    *(f"PT {h}" for h in heatmaps),
    *(f"IR {h}" for h in heatmaps),
  ]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for group in groups.values():
    by_heatmap: dict[str, list[dict]] = {}
    for r in group:
      by_heatmap.setdefault(r["heatmap_name"], []).append(r)
    first = by_heatmap.get(heatmaps[0], group)
    seeds = len({r["seed"] for r in group})
    name = first[0].get("group") or first[0]["name"]  # the cell, not a seed
    cells = [name, str(seeds), _pct([r["accuracy"] for r in first])]
    for metric in ("pt", "ir"):
      for h in heatmaps:
        cells.append(_pct([r[metric] for r in by_heatmap.get(h, [])]))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _k_label(k: int) -> str:
  return "all" if k < 0 else str(k)


def masks_curves(rows: Sequence[dict]) -> dict:
  """{(model, dataset): {(label, heatmap): {k: [rows]}}} of the runs with a
  ``masks_per_class``: a line per method and setting (the method's name;
  with several settings of one method, the first cell's name)."""
  curves: dict = {}
  settings: dict = {}
  for row in rows:
    if row["masks_per_class"] is None:
      continue
    panel = (row["model"], row["dataset"])
    named = settings.setdefault((panel, row["method"]), {})
    named.setdefault(row["setting_key"], row["name"])
  for row in rows:
    k = row["masks_per_class"]
    if k is None:
      continue
    panel = (row["model"], row["dataset"])
    named = settings[(panel, row["method"])]
    label = row["method"] if len(named) == 1 else named[row["setting_key"]]
    line = curves.setdefault(panel, {}).setdefault(
      (label, row["heatmap_name"]), {}
    )
    line.setdefault(k, []).append(row)
  return curves


def _ks(lines: dict) -> list[int]:
  ks = sorted({k for line in lines.values() for k in line if k >= 0})
  return ks + ([-1] if any(-1 in line for line in lines.values()) else [])


def masks_table(rows: Sequence[dict]) -> str:
  """Markdown: PT and accuracy against masks per class, a line per (model,
  dataset, method, heatmap); mean ± standard deviation over seeds. '' when
  no method was trained with more than one number of masks."""
  curves = masks_curves(rows)
  if all(len(_ks(lines)) < 2 for lines in curves.values()):
    return ""
  out = []
  for (model, dataset), lines in curves.items():
    ks = _ks(lines)
    header = [
      "model",
      "dataset",
      "method",
      "heatmap",
      *(f"PT k={_k_label(k)}" for k in ks),
      *(f"acc k={_k_label(k)}" for k in ks),
    ]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (method, heatmap), line in sorted(lines.items()):
      cells = [model, dataset, method, heatmap]
      for metric in ("pt", "accuracy"):
        for k in ks:
          cells.append(_pct([r[metric] for r in line.get(k, [])]))
      out.append("| " + " | ".join(cells) + " |")
    out.append("")
  return "\n".join(out).rstrip()


def figure_masks(rows: Sequence[dict], path: str) -> str | None:
  """PT and accuracy against masks per class, a row of two panels per
  (model, dataset), a line per method; the trained heatmap's PT solid, the
  held-out heatmaps' dashed / dotted. None when no run has the option."""
  curves = masks_curves(rows)
  if not curves:
    return None
  plt = figures.pyplot()
  fig, axes = plt.subplots(
    len(curves),
    2,
    figsize=(13, 3.8 * len(curves)),
    squeeze=False,
    constrained_layout=True,
  )
  for (model, dataset), ax_row in zip(curves, axes):
    lines = curves[(model, dataset)]
    ks = _ks(lines)
    x = np.arange(len(ks))
    methods = list(dict.fromkeys(method for method, _ in sorted(lines)))
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    for (method, heatmap), line in sorted(lines.items()):
      heatmaps = _heatmaps(
        [
          r
          for (m, _), ln in lines.items()
          if m == method
          for g in ln.values()
          for r in g
        ]
      )
      rank = heatmaps.index(heatmap)
      style = "-" if rank == 0 else HELD_OUT_STYLES[(rank - 1) % 3]
      for ax, metric in zip(ax_row, ("pt", "accuracy")):
        if metric == "accuracy" and rank:  # one accuracy per model
          continue
        y = [
          np.mean([100 * r[metric] for r in line[k]]) if k in line else np.nan
          for k in ks
        ]
        ax.plot(
          x,
          y,
          style,
          marker="o",
          color=colours[method],
          label=f"{method} ({heatmap})" if metric == "pt" else method,
        )
    _zero_shot_lines(ax_row, rows, (model, dataset))
    for ax, title in zip(ax_row, ("PT", "accuracy")):
      ax.set_xticks(x, [_k_label(k) for k in ks])
      ax.set_xlabel("masks per class")
      ax.set_ylabel("%")
      ax.set_title(f"{title}, {model} {dataset}")
      ax.grid(alpha=0.3)
      ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
  figures.save(plt, fig, path)
  return path


def _zero_shot_lines(ax_row, rows, panel) -> None:
  """ZS's PT per heatmap (same line styles) and accuracy, grey, for reference."""
  zs = [
    r
    for r in rows
    if r["method"] == "zs" and (r["model"], r["dataset"]) == panel
  ]
  heatmaps = _heatmaps(zs)
  for rank, heatmap in enumerate(heatmaps):
    values = [100 * r["pt"] for r in zs if r["heatmap_name"] == heatmap]
    style = "-" if rank == 0 else HELD_OUT_STYLES[(rank - 1) % 3]
    ax_row[0].axhline(
      np.mean(values),
      color="grey",
      linestyle=style,
      lw=1,
      label=f"zs ({heatmap})",
    )
  if zs:
    accuracy = np.mean([100 * r["accuracy"] for r in zs])
    ax_row[1].axhline(accuracy, color="grey", lw=1, label="zs")


def guided_report(
  rows: Sequence[dict], figures_dir: str
) -> tuple[list[tuple[str, str]], list[str]]:
  """(report sections, figure paths) of the held-out heatmaps and the masks
  per class; empty when the grid has neither."""
  annotated = annotate(rows)
  sections, paths = [], []
  table = heatmap_table(annotated)
  if table:
    sections.append(
      (
        "Trained and held-out heatmaps",
        "Each model scored by every heatmap it was evaluated with (the "
        "guided methods train on Chefer's map; Grad-CAM and rollout are "
        "held out); over several seeds, mean ± standard deviation.\n\n" + table,
      )
    )
  table = masks_table(annotated)
  if table:
    sections.append(("Masks per class", table))
    path = figure_masks(
      annotated, os.path.join(figures_dir, "masks_per_class.png")
    )
    paths.append(path)
  return sections, paths
