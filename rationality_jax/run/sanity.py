r"""Sanity checks of the heatmaps: do they change when the model does?

    python -m rationality_jax.main \
        --config=configs/sanity.py:model=assets/demo_clip --workdir=/tmp/sanity

The cascading model-parameter randomisation test (Adebayo et al., "Sanity
Checks for Saliency Maps", NeurIPS 2018): the image tower's blocks are
re-initialised from the top down, one more block per step
(`explain.cascading_randomization`), and each heatmap of the evaluated images
is compared with the trained model's map of the same image: Spearman rank
correlation and SSIM (`metrics.spearman`, `metrics.ssim`, on the pixel maps
in [0, 1]), averaged over the images. A heatmap that explains the model
decorrelates as the blocks lose their training; one whose maps stay similar
after every block is re-initialised (``sanity.similar``: Spearman or SSIM
still at least that, default 0.5) is flagged: its maps describe the image,
not the model.

Writes ``sanity.json`` ({heatmap: {'flagged', 'steps': [{'step',
'randomized_from_block', 'spearman', 'ssim'}]}}), ``sanity.png`` (the curves)
and ``report.md``. A grid with ``sanity.images`` > 0 runs it for every
(model, heatmap) its cells use (``<grid>/sanity/``) and flags them in its
report.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rationality_jax import console
from rationality_jax import data
from rationality_jax import explain
from rationality_jax import files
from rationality_jax import metrics
from rationality_jax import models
from rationality_jax import report
from rationality_jax.run import config as config_lib
from rationality_jax.run import evaluate
from rationality_jax.run import record
from rationality_jax.run import resolve

# The run config's ``sanity`` section.
OPTIONS = {"heatmaps": "", "images": 32, "similar": 0.5, "seed": 0}
RESULT = "sanity.json"
FIGURE = "sanity.png"


def heatmap_names(config: ml_collections.ConfigDict) -> list[str]:
  """``sanity.heatmaps`` ('+'-joined; '' = every registered heatmap)."""
  chosen = [n for n in config.sanity.heatmaps.split("+") if n]
  return chosen or sorted(config_lib.heatmaps())


def fingerprint(config: ml_collections.ConfigDict) -> dict:
  trained, _ = evaluate.model_fingerprint(config)
  return {
    "stage": "sanity",
    "trained": trained,
    "data": resolve.data_identity(config, "eval"),
    "heatmaps": heatmap_names(config),
    "options": config_lib.to_dict(config.sanity),
    "heatmap": config_lib.to_dict(config.heatmap),
  }


def run(config, workdir: str, fresh: bool = False) -> dict:
  """The sanity checks of ``config`` in a planned, claimed run directory."""
  claim = fingerprint(config)
  directory = record.plan(workdir, claim, "sanity checks", fresh)
  with record.open_run(directory, claim, config, "sanity") as run_record:
    run_record.start()
    results = check(config, directory)
    write(directory, results, title=f"Sanity checks: {config.model.path}")
    run_record.complete(outputs=[RESULT, FIGURE, "report.md"])
  console.table(report.sanity_table(results))
  console.stage(f"report: {os.path.join(directory, 'report.md')}")
  return results


def _images(config, directory: str, trained, count: int):
  """The first `count` evaluation images, preprocessed for the model."""
  source, _ = resolve.source(config, directory, "eval")
  family = models.family(trained.module.config)
  spec = resolve.spec(config, trained.module, family, "eval")
  pp = data.preprocess.parse(spec)
  rng = np.random.default_rng(0)
  examples = [pp(dict(source[i]), rng) for i in range(min(count, len(source)))]
  images = np.stack([e["image"] for e in examples]).astype(np.float32)
  labels = np.asarray([e["label"] for e in examples], np.int32)
  return jnp.asarray(images), jnp.asarray(labels)


def check(config, directory: str) -> dict:
  """{heatmap: {'flagged', 'steps'}} of the cascading randomisation test
  (module docstring) on ``sanity.images`` evaluation images."""
  trained = evaluate.trained_model(config, directory)
  images, labels = _images(config, directory, trained, config.sanity.images)
  steps = explain.cascading_randomization(
    trained.module, trained.params, jax.random.key(config.sanity.seed)
  )
  results = {}
  for name in heatmap_names(config):
    options = {f: config.heatmap[f] for f in config_lib.heatmap_fields(name)}
    explain_fn = explain.make_explainer(
      trained.module,
      trained.classifier,
      explain.HEATMAPS[name](**options),
      target=config.heatmap.target,
      constant_map=config.heatmap.constant_map,
      signed=config.heatmap.signed,
    )
    original = explain_fn(trained.params, trained.head, images, labels)
    rows = [
      {"step": 0, "randomized_from_block": None, "spearman": 1.0, "ssim": 1.0}
    ]
    for i, (block, params) in enumerate(steps, start=1):
      maps = explain_fn(params, trained.head, images, labels)["heatmap"]
      rows.append(
        {
          "step": i,
          "randomized_from_block": int(block),
          "spearman": _mean(metrics.spearman(original["heatmap"], maps)),
          "ssim": _mean(metrics.ssim(original["heatmap"], maps)),
        }
      )
    last = rows[-1]
    flagged = bool(max(last["spearman"], last["ssim"]) >= config.sanity.similar)
    results[name] = {"flagged": flagged, "steps": rows}
    if flagged:
      console.warning(
        f"sanity: {name}'s maps stay similar with every block re-initialised "
        f"(Spearman {last['spearman']:.2f}, SSIM {last['ssim']:.2f}): they "
        "describe the image more than the model"
      )
  return results


def _mean(values) -> float:
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  return float(values.mean()) if values.size else float("nan")


def write(directory: str, results: dict, title: str) -> None:
  """sanity.json, sanity.png and report.md of `results` (process 0)."""
  if jax.process_index() != 0:
    return
  files.write_json(os.path.join(directory, RESULT), results)
  report.figure_sanity(results, os.path.join(directory, FIGURE))
  files.write_text(
    os.path.join(directory, "report.md"),
    f"# {title}\n\n{report.SANITY_LEGEND}\n\n{report.sanity_table(results)}\n\n"
    f"![{FIGURE}]({FIGURE})\n",
  )
