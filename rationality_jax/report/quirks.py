"""The quirk ablation: each release quirk switched on alone against a baseline.

cells = report.quirk_cells(baseline_cell, {quirk: overrides}, sources)
deltas = report.quirk_deltas(rows, report.quirk_pairs(config.cells))
sections = report.quirk_sections(deltas)     # summary + a table per metric
report.figure_quirks(deltas, "quirks.png")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
import copy

import numpy as np

from rationality_jax.report import figures


def quirk_pairs(cells: Iterable[Mapping]) -> list[dict]:
  """{quirk, name, baseline, source} of the grid cells that switch a quirk on
  against a baseline cell (a cell's optional ``quirk`` and ``baseline``
  keys, set by `quirk_cells`)."""
  return [
    {
      "quirk": c["quirk"],
      "name": c["name"],
      "baseline": c["baseline"],
      "source": c.get("quirk_source", ""),
    }
    for c in cells
    if c.get("quirk")
  ]


def quirk_cells(
  baseline: dict,
  quirks: dict[str, dict],
  sources: dict[str, str] | None = None,
  separator: str = "+",
) -> list[dict]:
  """The quirk ablation of one cell: `baseline` itself, then one cell per
  quirk with that quirk's overrides on top (named ``<baseline><sep><quirk>``).

  Args:
    baseline: a `config.cell`.
    quirks: {quirk name: dotted overrides}.
    sources: {quirk name: what the release does, and where}, for the report.
  """
  cells = [baseline]
  for quirk, overrides in quirks.items():
    cell = copy.deepcopy(baseline)
    cell["name"] = f"{baseline['name']}{separator}{quirk}"
    cell["set"] = {**baseline["set"], **overrides}
    cell.update(
      quirk=quirk,
      baseline=baseline["name"],
      quirk_source=(sources or {}).get(quirk, ""),
    )
    cells.append(cell)
  return cells


DELTA_METRICS = (("accuracy", "accuracy"), ("pt", "PT"), ("ir", "IR"))


def quirk_deltas(rows: Sequence[dict], pairs: Iterable[Mapping]) -> list[dict]:
  """How much each quirk moves accuracy, PT and IR against its baseline.

  Args:
    rows: `collect` rows (a run's ``name`` is its cell's).
    pairs: {'quirk', 'name' (the cell with the quirk on), 'baseline' (the
      same cell without it), optional 'source' (what the release does, and
      in which file)} per quirk and cell.

  Returns:
    one dict per pair: quirk, name, baseline, source, method, model, dataset, the
    quirk run's accuracy / pt / ir, and d_accuracy / d_pt / d_ir (quirk
    minus baseline, fractions; NaN where either run is missing or the
    metric undefined: a missing run is never a zero).
  """
  by_name = {r["name"]: r for r in rows if not r.get("corruption")}
  out = []
  for pair in pairs:
    run, base = by_name.get(pair["name"]), by_name.get(pair["baseline"])
    known = base or run or {}
    entry = {
      "quirk": pair["quirk"],
      "name": pair["name"],
      "baseline": pair["baseline"],
      "source": pair.get("source", ""),
      **{k: known.get(k, "") for k in ("method", "model", "dataset")},
    }
    for metric, _ in DELTA_METRICS:
      value = float(run[metric]) if run else float("nan")
      entry[metric] = value
      entry[f"d_{metric}"] = (
        value - float(base[metric]) if run and base else float("nan")
      )
    out.append(entry)
  return out


def _signed(value: float) -> str:
  return "-" if np.isnan(value) else f"{100 * value:+.2f}"


def quirk_table(deltas: Sequence[dict], metric: str) -> str:
  """Markdown: a row per quirk, a column per baseline cell, and the average.

  Cells are the quirk's change of `metric` in percentage points; "n/a"
  where the quirk does not apply to the cell (the release never did it
  there), "-" where a run is missing or the metric undefined (never
  counted as 0). The average runs over the cells with a value and says
  over how many when that is not all the cells the quirk applies to.
  """
  baselines = list(dict.fromkeys(d["baseline"] for d in deltas))
  quirks = list(dict.fromkeys(d["quirk"] for d in deltas))
  header = ["quirk", *baselines, "avg"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for quirk in quirks:
    mine = {
      d["baseline"]: d[f"d_{metric}"] for d in deltas if d["quirk"] == quirk
    }
    cells = [quirk]
    for baseline in baselines:
      cells.append(_signed(mine[baseline]) if baseline in mine else "n/a")
    values = [v for v in mine.values() if not np.isnan(v)]
    text = _signed(float(np.mean(values))) if values else "-"
    if values and len(values) < len(mine):
      text += f" ({len(values)}/{len(mine)} cells)"
    cells.append(text)
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def quirk_summary(deltas: Sequence[dict]) -> str:
  """Markdown: per quirk, its mean change of accuracy, PT and IR (pp), over
  how many cells, and what the release does where (when known)."""
  quirks = list(dict.fromkeys(d["quirk"] for d in deltas))
  sources = {}
  for d in deltas:
    if d.get("source"):
      sources.setdefault(d["quirk"], d["source"])
  with_source = bool(sources)
  header = ["quirk", *(f"Δ {label}" for _, label in DELTA_METRICS), "cells"]
  header += ["the release's choice (file)"] if with_source else []
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for quirk in quirks:
    mine = [d for d in deltas if d["quirk"] == quirk]
    cells = [quirk]
    for metric, _ in DELTA_METRICS:
      values = [
        d[f"d_{metric}"] for d in mine if not np.isnan(d[f"d_{metric}"])
      ]
      cells.append(_signed(float(np.mean(values))) if values else "-")
    cells.append(str(len(mine)))
    cells += [sources.get(quirk, "")] if with_source else []
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def quirk_sections(deltas: Sequence[dict]) -> list[tuple]:
  """The report's quirk-ablation sections: the summary, then one table per
  metric (per cell)."""
  intro = (
    "Each release quirk switched on alone against the same cell without "
    "it (same model, same training unless the quirk changes training): "
    "quirk minus baseline, percentage points."
  )
  body = f"{intro}\n\n{quirk_summary(deltas)}"
  sections = [("Release quirks: what each one moves", body)]
  for metric, label in DELTA_METRICS:
    sections.append(
      (f"Release quirks: Δ {label} per cell (pp)", quirk_table(deltas, metric))
    )
  return sections


def figure_quirks(deltas: Sequence[dict], path: str) -> str:
  """Δ accuracy, Δ PT and Δ IR per quirk: the mean as a bar, each cell a dot."""
  plt = figures.pyplot()
  quirks = list(dict.fromkeys(d["quirk"] for d in deltas))
  baselines = list(dict.fromkeys(d["baseline"] for d in deltas))
  colours = plt.get_cmap("tab10")
  fig, axes = plt.subplots(
    1,
    len(DELTA_METRICS),
    figsize=(4 * len(DELTA_METRICS), 0.45 * len(quirks) + 1.5),
    sharey=True,
    constrained_layout=True,
  )
  y = np.arange(len(quirks))
  for ax, (metric, label) in zip(axes, DELTA_METRICS):
    means = []
    for quirk in quirks:
      values = [
        100 * d[f"d_{metric}"]
        for d in deltas
        if d["quirk"] == quirk and not np.isnan(d[f"d_{metric}"])
      ]
      means.append(np.mean(values) if values else 0.0)
    ax.barh(y, means, color="0.8")
    for k, baseline in enumerate(baselines):
      points = [
        (quirks.index(d["quirk"]), 100 * d[f"d_{metric}"])
        for d in deltas
        if d["baseline"] == baseline and not np.isnan(d[f"d_{metric}"])
      ]
      if points:
        rows, values = zip(*points)
        ax.scatter(
          values, rows, s=14, color=colours(k % 10), label=baseline, zorder=3
        )
    ax.axvline(0, color="k", linewidth=0.6)
    ax.set_title(f"Δ {label} (pp)")
    ax.grid(alpha=0.3, axis="x")
  axes[0].set_yticks(y, quirks)
  axes[0].invert_yaxis()
  axes[-1].legend(fontsize=7, loc="best")
  figures.save(plt, fig, path)
  return path
