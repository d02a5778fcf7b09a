"""Markdown tables of report rows: the study's per-metric tables and the rest.

report.metric_table(rows, "pt", published=report.PUBLISHED)  # Table 1's layout
report.long_table(rows)      # a row per run, every metric
report.console_table(rows)   # the console's final table
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from rationality_jax.explain import faithfulness
from rationality_jax.report import rows as rows_lib
from rationality_jax.report import statistics
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


def with_interval(row: Mapping, stat: str) -> str:
  """'62.82 [58.12, 67.30]': a row's value and its 95% interval (%)."""
  interval = row.get(f"{stat}_ci")
  text = _fmt(row[stat])
  if interval is None or text == "-" or any(np.isnan(v) for v in interval):
    return text
  return f"{text} [{_fmt(interval[0])}, {_fmt(interval[1])}]"


def _signed_interval(interval) -> str:
  """'-12.40 [-18.20, -6.60]' of a [delta, low, high] (percentage points)."""
  if interval is None or any(np.isnan(v) for v in interval):
    return "-"
  delta, low, high = (100 * v for v in interval)
  return f"{delta:+.2f} [{low:+.2f}, {high:+.2f}]"


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
  that is not all of them. A cell shows the first grid cell of its
  method, model and dataset (`first_cells`; the mean of its seeds): the
  later ones (ablations, held-out heatmaps) are in the long table.

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
  first = first_cells(rows)
  for method in methods:
    cells, pairs = [method], []
    for model, dataset in columns:
      match = [
        r
        for r in rows
        if (r["method"], r["model"], r["dataset"]) == (method, model, dataset)
        and _group(r) == first.get((method, model, dataset))
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
        mark = (
          "*"
          if len(match) == 1
          and statistics.excludes_zero(match[0].get(f"{metric}_vs_zs"))
          else ""
        )
        cells.append(_cell(value, paper, with_paper, mark))
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


def _group(row: Mapping) -> str:
  """The cell a row belongs to (its seeds share it)."""
  return row.get("group") or row.get("name", "")


def first_cells(rows: Sequence[Mapping]) -> dict[tuple, str]:
  """{(method, model, dataset): the first cell of its rows, in order}: the
  one a study table shows. A grid's later cells of the same method, model
  and dataset change another setting (an ablation's optimiser or learning
  rate, a held-out heatmap, masks per class) and have tables of their own;
  a cell's seeds are averaged."""
  out: dict[tuple, str] = {}
  for r in rows:
    out.setdefault((r["method"], r["model"], r["dataset"]), _group(r))
  return out


def _cell(value, paper, with_paper, mark: str = "") -> str:
  """A metric table's cell: ours (with `mark`), and the paper's beside it."""
  ours = _fmt(value) + (mark if _fmt(value) != "-" else "")
  if not with_paper:
    return ours
  if paper is None:
    return f"{ours} / -"
  diff = 100 * value - paper if not np.isnan(value) else float("nan")
  return (
    f"{ours} / {paper:.2f} ({diff:+.2f})"
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
      *(with_interval(r, k) for k in ("accuracy", "pt", "ir")),
      *(_fmt(r[k]) for k in PERCENT[3:]),
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
      *(with_interval(r, k) for k in ("accuracy", "pt", "ir")),
      *(str(int(r[k])) for k in ("rr", "rw", "wr", "ww", "n")),
    ]
    lines.append("| " + " | ".join(cells) + " |")
  for f in failures:
    lines.append(f"| {f['name']} | failed | | | | | | | |")
  return "\n".join(lines)


def paired_table(rows: Sequence[dict]) -> str:
  """Markdown: each adapted run against the zero-shot run of its model and
  dataset, paired on the same samples: difference and 95% interval (pp)."""
  header = ["run", "Δ accuracy", "Δ PT", "Δ IR"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in rows:
    if r.get("pt_vs_zs") is None:
      continue
    cells = [rows_lib.label(r)]
    cells += [
      _signed_interval(r[f"{s}_vs_zs"]) for s in ("accuracy", "pt", "ir")
    ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) if len(lines) > 2 else ""


def chance_table(rows: Sequence[dict]) -> str:
  """Markdown: per model and dataset, what a uniform map scores: its mean
  RMA (the masks' mean share of the image) and the share of samples on
  which it is already valid evidence."""
  header = ["model", "dataset", "uniform-map RMA", "uniform map valid (%)"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  seen = set()
  for r in rows:
    key = (r["model"], r["dataset"], r.get("corruption", ""), r["severity"])
    if key in seen or np.isnan(r.get("uniform_map_rma", float("nan"))):
      continue
    seen.add(key)
    dataset = r["dataset"] + (
      f" {r['corruption']} s{r['severity']}" if r.get("corruption") else ""
    )
    lines.append(
      f"| {r['model']} | {dataset} | {r['uniform_map_rma']:.3f} | "
      f"{_fmt(r['uniform_map_valid'])} |"
    )
  return "\n".join(lines) if len(lines) > 2 else ""


def seeds_table(rows: Sequence[dict]) -> str:
  """Markdown: per cell run over several seeds, the mean and standard
  deviation over the seeds and the 95% interval of all seeds' samples
  pooled (%)."""
  header = ["cell", "seeds", "accuracy", "PT", "IR"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  seen = set()
  for r in rows:
    summary = r.get("seeds")
    key = (r.get("group"), r.get("corruption"), r.get("severity"))
    if not summary or key in seen:
      continue
    seen.add(key)
    cells = [r["group"], ", ".join(str(s) for s in summary["seeds"])]
    for stat in ("accuracy", "pt", "ir"):
      mean, sd = summary[stat]
      low, high = summary[f"{stat}_pooled_ci"]
      cells.append(
        f"{_fmt(mean)} ± {_fmt(sd)} (pooled [{_fmt(low)}, {_fmt(high)}])"
      )
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) if len(lines) > 2 else ""


def faithfulness_table(rows: Sequence[dict]) -> str:
  """Markdown: the mean area under each run's deletion curve (lower: the map
  finds what the model uses) and insertion curve (higher is better), of the
  explained class's probability, and what filled the removed pixels
  (`explain.faithfulness.FILLS`: RISE's baselines or ROAD's imputation; areas under
  different fills do not compare)."""
  header = ["run", "heatmap", "fill", "deletion AUC", "insertion AUC"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in rows:
    values = [
      r.get(f"mean_{m}_auc", float("nan")) for m in ("deletion", "insertion")
    ]
    if all(np.isnan(v) for v in values):
      continue
    fill = r.get("faithfulness_fill", "rise")
    cells = [
      rows_lib.label(r),
      r["heatmap"],
      faithfulness.FILLS.get(fill, fill),
    ]
    cells += ["-" if np.isnan(v) else f"{v:.4f}" for v in values]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) if len(lines) > 2 else ""
