"""A grid's report: its tables, figures, quirk ablation and settings in one place.

  paths = report.write_grid(rows, out_dir, examples=examples, ...)

The driver (`rationality_jax.run.grid`) gathers the rows and, per (model,
dataset), the images the heatmap figure shows; everything written is here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import os

from rationality_jax import files
from rationality_jax.report import figures
from rationality_jax.report import guided
from rationality_jax.report import html
from rationality_jax.report import markdown
from rationality_jax.report import quirks
from rationality_jax.report import records as records_lib
from rationality_jax.report import samples
from rationality_jax.report import sanity as sanity_lib
from rationality_jax.report.rows import META

FIGURES = "figures"


def write_grid(
  rows: Sequence[dict],
  run_dirs: Sequence[str],
  out_dir: str,
  *,
  examples: Callable[[str], tuple[list, Mapping, Mapping]],
  thresholds: Sequence[float],
  quirk_pairs: Sequence[Mapping] = (),
  sanity: Sequence[Mapping] = (),
  **write_kwargs,
) -> dict[str, str]:
  """report.md / results.csv / results.json, ``figures/`` and report.html
  (with ``gallery/``) of a grid.

  Args:
    rows: `collect` rows of `run_dirs`.
    run_dirs: the evaluated cells' directories.
    out_dir: the grid's workdir.
    examples: run directory -> (ids, {id: image [S, S, 3] uint8}, {id:
      mask}) of the figure examples of that run's model and dataset (the
      first run of each (model, dataset) is asked).
    thresholds: the validity thresholds of the PT/IR curves.
    quirk_pairs: `quirks.quirk_pairs` of the grid's cells.
    sanity: [{'model', 'heatmap', 'result'}] of the grid's sanity checks
      (`run.sanity`): a section, and a warning on every row of a flagged
      (model, heatmap).
    **write_kwargs: `markdown.write`'s (title, published, notes, failures,
      settings).
  """
  paths = _figures(rows, run_dirs, out_dir, examples, thresholds)
  sections, guided_figures = guided.guided_report(
    rows, os.path.join(out_dir, FIGURES)
  )
  paths += guided_figures
  if quirk_pairs:
    deltas = quirks.quirk_deltas(rows, quirk_pairs)
    sections += quirks.quirk_sections(deltas)
    paths.append(
      quirks.figure_quirks(deltas, os.path.join(out_dir, FIGURES, "quirks.png"))
    )
  if sanity:
    sections.append(("Sanity checks", sanity_lib.grid_section(sanity)))
    flagged = {
      (c["model"], c["heatmap"]) for c in sanity if c["result"]["flagged"]
    }
    for row in rows:
      if (row["model"], row["heatmap"]) in flagged:
        row["warnings"] = [
          *row.get("warnings", []),
          "its heatmap failed the sanity checks (maps still similar with "
          "every block re-initialised)",
        ]
  threshold = rows[0]["threshold"] if rows else 0.5
  page, moved = write_page(rows, run_dirs, out_dir, threshold, write_kwargs)
  if moved:
    sections.append(("Transitions from zero-shot", moved))
  written = markdown.write(
    rows, out_dir, figures=paths, sections=sections, page=page, **write_kwargs
  )
  return {**written, html.PAGE: page}


def write_page(rows, run_dirs, out_dir: str, threshold: float, write_kwargs):
  """(report.html's path, report.md's transitions section or '')."""
  groups = samples.group_runs(run_dirs, threshold)
  page = html.write_html(
    run_dirs,
    out_dir,
    threshold=threshold,
    title=write_kwargs.get("title", "Results"),
    groups=groups,
    rows=rows,
  )
  return page, samples.transition_section(groups, threshold)


def _figures(rows, run_dirs, out_dir, examples, thresholds) -> list[str]:
  """The PT/IR-threshold curves, a heatmap figure per (model, dataset) and
  the corruption curves of a grid's runs; their paths."""
  figures_dir = os.path.join(out_dir, FIGURES)
  os.makedirs(figures_dir, exist_ok=True)
  metas = {d: files.read_json(os.path.join(d, META)) for d in run_dirs}
  clean = [d for d in run_dirs if not metas[d].get("corruption")]
  paths = []
  if clean:
    paths.append(
      figures.figure_threshold_curves(
        guided.primary(clean),  # a model scored by held-out heatmaps once
        os.path.join(figures_dir, "pt_ir_threshold.png"),
        thresholds=tuple(thresholds),
      )
    )
  groups: dict[tuple[str, str], list[str]] = {}
  for d in clean:
    groups.setdefault((metas[d]["model"], metas[d]["dataset"]), []).append(d)
  for (model, dataset), members in groups.items():
    ids, images, masks = examples(members[0])
    # Runs on other examples (another split order, a subset) are left out.
    shown = [
      d for d in members if set(ids) <= set(records_lib.load_heatmaps(d))
    ]
    if not ids or not shown:
      continue
    paths.append(
      figures.figure_heatmaps(
        shown,
        images,
        masks,
        os.path.join(figures_dir, f"heatmaps_{model}_{dataset}.png"),
        ids=ids,
      )
    )
  if any(r["corruption"] for r in rows):
    paths.append(
      figures.figure_corruptions(
        rows, os.path.join(figures_dir, "corruptions.png")
      )
    )
  return paths
