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
from rationality_jax.report import markdown
from rationality_jax.report import quirks
from rationality_jax.report import records as records_lib
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
  **write_kwargs,
) -> dict[str, str]:
  """report.md / results.csv / results.json and ``figures/`` of a grid.

  Args:
    rows: `collect` rows of `run_dirs`.
    run_dirs: the evaluated cells' directories.
    out_dir: the grid's workdir.
    examples: run directory -> (ids, {id: image [S, S, 3] uint8}, {id:
      mask}) of the figure examples of that run's model and dataset (the
      first run of each (model, dataset) is asked).
    thresholds: the validity thresholds of the PT/IR curves.
    quirk_pairs: `quirks.quirk_pairs` of the grid's cells.
    **write_kwargs: `markdown.write`'s (title, published, notes, failures,
      settings).
  """
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
  sections, guided_figures = guided.guided_report(rows, figures_dir)
  paths += guided_figures
  if quirk_pairs:
    deltas = quirks.quirk_deltas(rows, quirk_pairs)
    sections += quirks.quirk_sections(deltas)
    paths.append(
      quirks.figure_quirks(deltas, os.path.join(figures_dir, "quirks.png"))
    )
  return markdown.write(
    rows, out_dir, figures=paths, sections=sections, **write_kwargs
  )
