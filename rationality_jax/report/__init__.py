r"""Reports of evaluated runs: tables like the study's Tables 1-2, and figures.

    rows = report.collect(run_dirs)                   # from the per-sample records
    report.write(rows, out_dir, published=report.PUBLISHED)   # md + csv + json
    report.figure_threshold_curves(run_dirs, "pt_ir_threshold.png")
    report.figure_heatmaps(run_dirs, images, masks, "heatmaps.png", ids=ids)
    report.figure_corruptions(rows, "corruptions.png")
    report.write_grid(rows, run_dirs, out_dir, examples=..., thresholds=...)
    report.write_html(run_dirs, out_dir, threshold=0.5)   # report.html

Every number comes from the records of `rationality_jax.run.evaluate` (no
model runs here; this package never imports the driver), so a report can be
rebuilt at another validity threshold: `collect(run_dirs, threshold=0.3)`.

Modules: `records` (the records on disk), `rows` (a row per run), `tables`
(markdown tables), `markdown` (report.md, results.csv, results.json),
`figures`, `quirks` (the release-quirk ablation), `guided`
(trained against held-out heatmaps, masks per class), `settings` (what a grid
changed), `grid` (a grid's whole report), `published` (the study's values),
`samples` (each sample's cell per run, the transitions from ZS), `html`
(report.html: every prediction and its evidence, browsable), `gallery` (the
thumbnails it shows, kept while evaluating).

Layout. `report.md` holds one long table (a row per run: accuracy, PT, IR,
mean RMA, RRA, pointing game, the counts RR/RW/WR/WW, n) and, like the study,
one table per metric (PT, IR, accuracy) with a row per method and a column
per (model, dataset), plus the average over the columns. With `published`
(the `paper` preset) each cell of the PT and IR tables reads
``ours / paper (ours - paper)`` in percentage points.
"""

from rationality_jax.report import gallery
from rationality_jax.report import records
from rationality_jax.report import samples
from rationality_jax.report.figures import figure_corruptions
from rationality_jax.report.figures import figure_heatmaps
from rationality_jax.report.figures import figure_threshold_curves
from rationality_jax.report.grid import write_grid
from rationality_jax.report.guided import guided_report
from rationality_jax.report.html import write_html
from rationality_jax.report.markdown import write
from rationality_jax.report.published import PAPER_DATASETS
from rationality_jax.report.published import PAPER_MODELS
from rationality_jax.report.published import PUBLISHED
from rationality_jax.report.quirks import figure_quirks
from rationality_jax.report.quirks import quirk_cells
from rationality_jax.report.quirks import quirk_deltas
from rationality_jax.report.quirks import quirk_pairs
from rationality_jax.report.quirks import quirk_sections
from rationality_jax.report.quirks import quirk_summary
from rationality_jax.report.quirks import quirk_table
from rationality_jax.report.rows import FIELDS
from rationality_jax.report.rows import META
from rationality_jax.report.rows import collect
from rationality_jax.report.sanity import SANITY_LEGEND
from rationality_jax.report.sanity import figure_sanity
from rationality_jax.report.sanity import sanity_table
from rationality_jax.report.settings import settings_lines
from rationality_jax.report.tables import console_table
from rationality_jax.report.tables import long_table
from rationality_jax.report.tables import metric_table
from rationality_jax.report.tables import undefined_table

__all__ = [
  "FIELDS",
  "META",
  "PAPER_DATASETS",
  "PAPER_MODELS",
  "PUBLISHED",
  "SANITY_LEGEND",
  "collect",
  "console_table",
  "figure_corruptions",
  "figure_heatmaps",
  "figure_quirks",
  "figure_sanity",
  "figure_threshold_curves",
  "gallery",
  "guided_report",
  "long_table",
  "metric_table",
  "quirk_cells",
  "quirk_deltas",
  "quirk_pairs",
  "quirk_sections",
  "quirk_summary",
  "quirk_table",
  "records",
  "samples",
  "sanity_table",
  "settings_lines",
  "undefined_table",
  "write",
  "write_grid",
  "write_html",
]
