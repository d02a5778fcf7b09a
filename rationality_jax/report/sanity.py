"""The sanity checks' table and figure (the model-parameter randomisation test).

  report.sanity_table(results)            # markdown: last step, flagged
  report.figure_sanity(results, "sanity.png")

`results` is `rationality_jax.run.sanity.check`'s: {heatmap: {'flagged',
'steps': [{'step', 'randomized_from_block', 'spearman', 'ssim'}]}}.
"""

from __future__ import annotations

from collections.abc import Mapping

from rationality_jax.report import figures

SANITY_LEGEND = (
  "Cascading model-parameter randomisation (Adebayo et al., NeurIPS 2018): "
  "the image tower's blocks re-initialised from the top down, each step's "
  "maps compared with the trained model's (Spearman rank correlation and "
  "SSIM, mean over the images). A heatmap that explains the model "
  "decorrelates; one still similar with every block re-initialised is "
  "flagged: its maps describe the image more than the model."
)


def sanity_table(results: Mapping) -> str:
  """Markdown: per heatmap, its similarity after every block is
  re-initialised, and whether it is flagged."""
  header = ["heatmap", "steps", "Spearman (all blocks random)", "SSIM", "flag"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name, result in results.items():
    last = result["steps"][-1]
    lines.append(
      f"| {name} | {len(result['steps']) - 1} | {last['spearman']:.3f} | "
      f"{last['ssim']:.3f} | {'FLAGGED' if result['flagged'] else 'ok'} |"
    )
  return "\n".join(lines)


def figure_sanity(results: Mapping, path: str) -> str:
  """Spearman and SSIM against the randomisation step, a line per heatmap."""
  plt = figures.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
  for name, result in results.items():
    steps = [s["step"] for s in result["steps"]]
    for ax, key in zip(axes, ("spearman", "ssim")):
      ax.plot(
        steps,
        [s[key] for s in result["steps"]],
        marker="o",
        markersize=3,
        linestyle="--" if result["flagged"] else "-",
        label=name,
      )
  for ax, title in zip(axes, ("Spearman rank correlation", "SSIM")):
    ax.set_xlabel("blocks re-initialised (top down)")
    ax.xaxis.get_major_locator().set_params(integer=True)  # whole blocks
    ax.set_title(title)
    ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.05)
    ax.axhline(0, color="k", linewidth=0.5)
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=8)
  figures.save(plt, fig, path)
  return path


def flagged(results: Mapping) -> list[str]:
  """The heatmaps the sanity checks flagged."""
  return [name for name, r in results.items() if r["flagged"]]


def grid_section(checks) -> str:
  """Markdown: a grid's sanity checks, one row per (model, heatmap)."""
  header = ["model", "heatmap", "Spearman (all blocks random)", "SSIM", "flag"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for check in checks:
    last = check["result"]["steps"][-1]
    flag = "FLAGGED" if check["result"]["flagged"] else "ok"
    lines.append(
      f"| {check['model']} | {check['heatmap']} | {last['spearman']:.3f} | "
      f"{last['ssim']:.3f} | {flag} |"
    )
  return SANITY_LEGEND + "\n\n" + "\n".join(lines)
