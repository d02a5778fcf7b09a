"""Markdown tables of report rows: the study's per-metric tables and the rest.

report.metric_table(rows, "pt", published=report.PUBLISHED)  # Table 1's layout
report.long_table(rows)      # a row per run, every metric
report.console_table(rows)   # the console's final table
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from rationality_jax.report import rows as rows_lib
from rationality_jax.report.published import PAPER_DATASETS
from rationality_jax.report.published import PAPER_MODELS
from rationality_jax.report.rows import PERCENT
from rationality_jax.report.rows import UNDEFINED_REASONS


def _columns(rows) -> list[tuple[str, str]]:
  """(model, dataset) pairs in first-seen order (the study's order when present)."""
  seen = []
  for row in rows:
    key = (row["model"], row["dataset"])
    if key not in seen:
      seen.append(key)
  order = {
    k: i
    for i, k in enumerate((m, d) for m in PAPER_MODELS for d in PAPER_DATASETS)
  }
  return sorted(seen, key=lambda k: order.get(k, len(order) + seen.index(k)))


def _fmt(value, percent=True) -> str:
  if value is None or (isinstance(value, float) and np.isnan(value)):
    return "-"
  return f"{100 * value:.2f}" if percent else f"{value}"


def metric_table(
  rows: Sequence[dict],
  metric: str,
  published: Mapping | None = None,
  failed: Iterable[tuple] = (),
) -> str:
  """Markdown: a row per method, a column per (model, dataset), and the average.

  Only rows without a corruption enter (ImageNet-C has its own figure).
  With `published`, cells read ``ours / paper (diff)`` and the average is
  taken over the same cells on both sides: those where both values exist.
  A missing cell reads "-" ("failed" when its run failed) and never enters
  one side's mean only; the average says over how many cells it runs when
  that is not all of them.

  Args:
    failed: (method, model, dataset) of failed cells.
  """
  failed = set(failed)
  rows = [r for r in rows if not r.get("corruption")]
  columns = _columns(
    list(rows) + [dict(model=m, dataset=d) for _, m, d in failed if m]
  )
  methods = list(
    dict.fromkeys([r["method"] for r in rows] + [f[0] for f in failed if f[0]])
  )
  header = ["method", *(f"{m} {d}" for m, d in columns), "avg"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  with_paper = published is not None
  for method in methods:
    cells, pairs = [method], []
    for model, dataset in columns:
      match = [
        r
        for r in rows
        if (r["method"], r["model"], r["dataset"]) == (method, model, dataset)
      ]
      # Several seeds of one cell: their mean (the spread is in "Seeds").
      value = (
        float(np.nanmean([float(m[metric]) for m in match]))
        if match and not all(np.isnan(float(m[metric])) for m in match)
        else float("nan")
      )
      paper = (published or {}).get((metric, method, model, dataset))
      if (method, model, dataset) in failed and not match:
        cells.append("failed")
      else:
        cells.append(_cell(value, paper, with_paper))
      if not np.isnan(value) and (paper is not None or not with_paper):
        pairs.append((value, paper))
    if pairs:
      mean = float(np.mean([v for v, _ in pairs]))
      paper_mean = float(np.mean([p for _, p in pairs])) if with_paper else None
      text = _cell(mean, paper_mean, with_paper)
      if len(pairs) < len(columns):
        text += f" ({len(pairs)}/{len(columns)} cells)"
    else:
      text = "-"
    cells.append(text)
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _cell(value, paper, with_paper) -> str:
  if not with_paper:
    return _fmt(value)
  if paper is None:
    return f"{_fmt(value)} / -"
  diff = 100 * value - paper if not np.isnan(value) else float("nan")
  return (
    f"{_fmt(value)} / {paper:.2f} ({diff:+.2f})"
    if not np.isnan(diff)
    else f"- / {paper:.2f}"
  )


def long_table(rows: Sequence[dict]) -> str:
  """Markdown: a row per run with every metric (%, counts as integers)."""
  header = [
    "run",
    "method",
    "model",
    "dataset",
    "heatmap",
    "accuracy",
    "PT",
    "IR",
    "RMA",
    "RRA",
    "PG",
    "RR",
    "RW",
    "WR",
    "WW",
    "n",
  ]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in rows:
    cells = [
      rows_lib.label(r),
      r["method"],
      r["model"],
      r["dataset"],
      r["heatmap"],
      *(_fmt(r[k]) for k in PERCENT),
      *(str(int(r[k])) for k in ("rr", "rw", "wr", "ww", "n")),
    ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def undefined_table(rows: Sequence[dict]) -> str:
  """Markdown: per run, the samples outside RR/RW/WR/WW and why.

  Empty masks (the object is outside the crop or has no pixel), non-finite
  heatmaps and non-finite logits leave a sample undefined; examples the
  dataset build skipped (unreadable images) never reach the evaluation.
  """
  header = ["run", "n", "RR+RW+WR+WW", *UNDEFINED_REASONS.values(), "skipped"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in rows:
    counted = sum(int(r[k]) for k in ("rr", "rw", "wr", "ww"))
    cells = [
      r["name"],
      str(int(r["n"])),
      str(counted),
      *(str(int(r.get(k, 0) or 0)) for k in UNDEFINED_REASONS),
      _skipped(r.get("skipped")),
    ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _skipped(skipped) -> str:
  if not skipped:
    return "0"
  if isinstance(skipped, Mapping):
    return ", ".join(f"{v} {k}" for k, v in sorted(skipped.items()))
  return str(skipped)


def failed_table(failures: Sequence[Mapping]) -> str:
  """Markdown: the cells that failed, each with its one-line error."""
  lines = ["| cell | stage | error |", "|---|---|---|"]
  for f in failures:
    error = str(f["error"]).replace("|", "\\|").replace("\n", " ")
    lines.append(f"| {f['name']} | {f['stage']} | {error} |")
  return "\n".join(lines)


def console_table(
  rows: Sequence[dict], failures: Sequence[Mapping] = ()
) -> str:
  """The console's final table: a line per run (accuracy, PT, IR, counts)."""
  header = ["run", "accuracy", "PT", "IR", "RR", "RW", "WR", "WW", "n"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in rows:
    label = rows_lib.label(r)
    cells = [
      label,
      *(_fmt(r[k]) for k in ("accuracy", "pt", "ir")),
      *(str(int(r[k])) for k in ("rr", "rw", "wr", "ww", "n")),
    ]
    lines.append("| " + " | ".join(cells) + " |")
  for f in failures:
    lines.append(f"| {f['name']} | failed | | | | | | | |")
  return "\n".join(lines)
