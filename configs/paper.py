r"""The study's grid: 4 models x ZS/LP/FLCP/FT x 4 datasets, ImageNet-C, ablations.

    python -m rationality_jax.main --config=configs/paper.py:preset=paper \
        --workdir=/runs/paper --config.data.dir=/data/tfds \
        --config.models.clip_b16.path=/ckpt/ViT-B-16.pt \
        --config.models.clip_b32.path=/ckpt/ViT-B-32.pt \
        --config.models.albef_b16.path=/ckpt/ALBEF.pth \
        --config.models.blip_b16.path=/ckpt/model_base.pth

Arguments (``key=value`` after the colon, comma-separated):
  preset:   ``paper`` (the paper's text), ``release`` (the authors' code,
            number for number) or ``default`` (ours).
  parts:    '+'-joined from main, imagenet_c, ablations (default all three)
            and guided (opt-in, below).
  models:   '+'-joined subset of albef_b16, blip_b16, clip_b16, clip_b32.
  datasets: '+'-joined subset of imagenet, caltech101, dogs, cub.
  methods:  '+'-joined subset of zs, lp, flcp, ft (main and ImageNet-C cells).
  guided:   '+'-joined subset of guided, guided_ft, rrr (default guided+rrr).
  masks:    '+'-joined masks per class of the guided part (default 1+3+10+all).

Part ``guided`` (right for the right reasons): for every model and dataset
but ImageNet (its training split, imagenet2012_train, has no masks), the
guided methods at each number of masks per class (a seeded choice per class;
``all`` = every training image), each evaluated with Chefer's relevance (the
heatmap guided trains on: the cell's own, ``guided.start_layer`` =
``heatmap.start_layer``) and with the held-out Grad-CAM and rollout (all
blocks), beside ZS/LP/FLCP/FT (the main part's cells, added when ``main`` is
not among the parts) and ZS/FLCP/FT under the held-out heatmaps. The report
adds the trained-vs-held-out table and PT and accuracy against masks per
class (figures/masks_per_class.png). guided and rrr use FLCP's objective,
learning rate and (preset paper/release) heatmap blocks, guided_ft FT's.

Every model runs at 224 px, as the paper does (``models.<name>.image_size``;
ALBEF's 256 and BLIP's 384 position embeddings are resized like their
``interpolate_pos_embed``). Datasets are read from ``data.dir``; one not
prepared there is built from the original archives in ``data.manual_dir``.
Each cell trains (resumable, keyed by what determines it), evaluates
(records, resumable), and the grid writes report.md / results.csv /
results.json and the figures; a failed cell is listed in the report and the
others still run. Rerunning the command resumes.

Presets:
  paper    ImageNet mean/std for every model; Chefer relevance of the last
           block for ZS/FLCP and of all blocks for LP/FT; Stanford Dogs keeps
           the last box of multi-dog images; the release's recipe (Adam
           0.9/0.999/1e-8, no weight decay, no schedule, batch 32, 10 epochs,
           lr 1e-3 LP / 1e-5 FT and FLCP, seed 42, RandomResizedCrop + flip +
           ColorJitter + rotation); threshold 0.5; the report shows the
           study's Tables 1-2 beside ours.
  default  the same recipe and threshold, with the release's defects and
           confounds fixed: each family's own mean/std (CLIP's for all
           three); one heatmap for every method (Chefer over all blocks), so
           a PT difference between methods is not a difference of heatmaps;
           every dog box.
  release  the paper preset plus every choice of the release's code that
           changes a number, each a named option (docs/release.md, and
           `common.release_quirks`): the release's masks (CUB soft edges,
           Caltech/Dogs bilinear, ImageNet boxes in the crop), empty masks
           scored 0 (invalid), constant maps NaN and counted valid, the CUB
           split by sorted position, Caltech's split/contours/background
           class, the last dog box filled inclusively, the release's
           Dogs/Caltech prompt names, float16 CLIP ZS/FLCP on GPU/TPU, LP/FT
           heads left at their random init on CUB/Dogs/Caltech, ImageNet and
           ImageNet-C rationale over the first 5 batches of 64.
Paper and default train the LP/FT heads (the release never did on CUB, Dogs,
Caltech), evaluate every ImageNet image (the release stopped after 5
batches); all three train the ImageNet cells on the ImageNet-1K train split
(imagenet2012_train) and explain BLIP's ZS/FLCP (the release has no BLIP
ZS/FLCP heatmap).

Expected: with ``preset=paper`` and the original checkpoints, the PT/IR
tables land near the study's (report.md shows ours / paper (difference)
per cell, averages over the same cells on both sides); the headline - PT
of LP/FLCP/FT below ZS on average, IR above - is what to check.
"""

import common

from rationality_jax.explain.explainer import STUDY_START_LAYER
from rationality_jax.run import cells as cells_lib

MODELS = ("albef_b16", "blip_b16", "clip_b16", "clip_b32")
DATASETS = ("imagenet", "caltech101", "dogs", "cub")
METHODS = ("zs", "lp", "flcp", "ft")
PRESETS = ("paper", "release", "default")
PARTS = ("main", "imagenet_c", "ablations", "guided")
DEFAULT_PARTS = ("main", "imagenet_c", "ablations")
GUIDED_METHODS = ("guided", "guided_ft", "rrr")
# The objective each guided method fine-tunes with (its lr, heatmap blocks).
OBJECTIVE = {"guided": "flcp", "guided_ft": "ft", "rrr": "flcp"}
MASKS = ("1", "3", "10", "all")
HELD_OUT = ("gradcam", "rollout")
CORRUPTIONS = (
  "gaussian_noise",
  "shot_noise",
  "impulse_noise",
  "defocus_blur",
  "glass_blur",
  "motion_blur",
  "zoom_blur",
  "snow",
  "frost",
  "fog",
  "brightness",
  "contrast",
  "elastic_transform",
  "pixelate",
  "jpeg_compression",
)
ABLATION_MODEL, ABLATION_DATASET = "clip_b16", "cub"


def _subset(value: str, choices, name: str) -> list[str]:
  chosen = [v for v in value.split("+") if v]
  unknown = sorted(set(chosen) - set(choices))
  if unknown:
    raise ValueError(f"unknown {name} {unknown}; choose from {list(choices)}.")
  return [c for c in choices if c in chosen]


def _start_layer(preset: str, method: str) -> int:
  """Chefer's first block: the release's per method (paper), else all (0)."""
  if preset in ("paper", "release"):
    # CoOp's head is zero-shot-like, the adapter's linear-like.
    return STUDY_START_LAYER.get(method, -1 if method == "coop" else 0)
  return 0


def _cell(preset, name, model, dataset, method, like=None, **overrides):
  """A cell; `like`: the method whose lr, heatmap blocks and release quirks
  it takes (default its own)."""
  like = like or method
  overrides.setdefault("train.optim.lr", common.study_lr(like))
  overrides.setdefault("heatmap.start_layer", _start_layer(preset, like))
  if preset == "release":
    family = model.split("_")[0]
    for quirk in common.release_quirks(dataset, like, family).values():
      # Builder options live in the datasets sections (below).
      overrides.update(common.builder_overrides(quirk)[1])
  return cells_lib.cell(name, model, dataset, method=method, **overrides)


def _release_builder_options(dataset: str) -> dict:
  """{'train_data' | 'eval_data': {option: value}} of the release's data."""
  options = {}
  for quirk in common.release_quirks(dataset, "zs", "clip").values():
    for section, kwargs in common.builder_overrides(quirk)[0].items():
      options.setdefault(section, {}).update(kwargs)
  return options


def get_config(arg=None):
  args = common.parse(
    arg,
    preset="default",
    parts="+".join(DEFAULT_PARTS),
    models="+".join(MODELS),
    datasets="+".join(DATASETS),
    methods="+".join(METHODS),
    guided="guided+rrr",
    masks="+".join(MASKS),
  )
  preset = args["preset"]
  if preset not in PRESETS:
    raise ValueError(f"preset={preset!r}; choose one of {PRESETS}.")
  parts = _subset(args["parts"], PARTS, "parts")
  models = _subset(args["models"], MODELS, "models")
  datasets = _subset(args["datasets"], DATASETS, "datasets")
  methods = _subset(args["methods"], METHODS, "methods")
  guided_methods = _subset(args["guided"], GUIDED_METHODS, "guided methods")
  masks = _subset(args["masks"], MASKS, "masks")

  run = common.run_config()
  run.preprocess.normalization = "model" if preset == "default" else "imagenet"
  if preset == "release":  # its min-max of any map, signed ones too
    run.heatmap.signed = "minmax"
  run.train.checkpoint.every_steps = 500
  run.evaluate.update(batch_size=64, batches_per_chunk=4, figure_images=6)
  config = cells_lib.grid(run)
  config.preset = preset
  for name in MODELS:
    # The paper evaluates every model at 224 px.
    config.models[name] = cells_lib.model_section(name=name, image_size=224)
  for name in DATASETS:
    kwargs = {"boxes": "last"} if name == "dogs" and preset == "paper" else {}
    if preset == "release":
      kwargs = _release_builder_options(name).get("train_data", {})
    config.datasets[name] = common.dataset(name, **kwargs)
  config.datasets.imagenet_c = cells_lib.dataset_section(
    "imagenet2012_train",
    eval_name="imagenet_c_masks",
    eval_split=CORRUPTIONS[0],
  )
  if preset == "release":
    config.datasets.imagenet_c.eval_data.builder_kwargs.update(
      _release_builder_options("imagenet_c")["eval_data"]
    )

  cells = []
  if "main" in parts:
    for model in models:
      for dataset in datasets:
        for method in methods:
          cells.append(
            _cell(preset, f"{model}-{dataset}-{method}", model, dataset, method)
          )
  if "imagenet_c" in parts and "clip_b16" in models:
    for method in methods:
      for corruption in CORRUPTIONS:
        cells.append(
          _cell(
            preset,
            f"clip_b16-imagenet_c-{corruption}-{method}",
            "clip_b16",
            "imagenet_c",
            method,
            **{"eval_data.split": corruption},
          )
        )
  if "ablations" in parts and ABLATION_MODEL in models:
    m, d = ABLATION_MODEL, ABLATION_DATASET
    for optimiser in ("sgd", "adamw"):
      for method in ("lp", "ft"):
        cells.append(
          _cell(
            preset,
            f"{m}-{d}-{method}-{optimiser}",
            m,
            d,
            method,
            **{"train.optim.name": optimiser},
          )
        )
    for lr in (1e-6, 1e-4):
      for method in ("flcp", "ft"):
        cells.append(
          _cell(
            preset,
            f"{m}-{d}-{method}-lr{lr:g}",
            m,
            d,
            method,
            **{"train.optim.lr": lr},
          )
        )
    for heatmap, options in (
      ("gradcam", {}),
      ("rollout", {}),
      ("input_gradients", {}),
      ("integrated_gradients", {"heatmap.steps": 16}),
    ):
      for method in ("zs", "ft"):
        cells.append(
          _cell(
            preset,
            f"{m}-{d}-{method}-{heatmap}",
            m,
            d,
            method,
            **{"heatmap.name": heatmap},
            **options,
          )
        )
    for method in ("coop", "adapter"):
      cells.append(_cell(preset, f"{m}-{d}-{method}", m, d, method))
  if "guided" in parts:
    for model in models:
      for dataset in [d for d in datasets if d != "imagenet"]:
        cells += _guided_cells(preset, model, dataset, guided_methods, masks)
    cells = _unique(cells)  # the main part's baselines stay as they are
  config.cells = cells
  config.report.update(
    title=f"The study's grid, preset {preset}",
    published=preset != "default",
    notes=NOTES[preset],
  )
  return config


def _unique(cells):
  """The cells in order, each name once (the first)."""
  seen, out = set(), []
  for c in cells:
    if c["name"] not in seen:
      seen.add(c["name"])
      out.append(c)
  return out


def _guided_cells(preset, model, dataset, guided_methods, masks):
  """The guided part of one (model, dataset): the baselines, then each
  guided method at each masks per class, under Chefer (the blocks it trains
  on) and the held-out heatmaps (rollout over all blocks)."""
  prefix = f"{model}-{dataset}"
  held_out = {
    "gradcam": {"heatmap.name": "gradcam"},
    "rollout": {"heatmap.name": "rollout", "heatmap.start_layer": 0},
  }

  def with_held_out(name, method, like=None, **overrides):
    cells = [_cell(preset, name, model, dataset, method, like, **overrides)]
    for heatmap in HELD_OUT:
      cell = _cell(
        preset, f"{name}@{heatmap}", model, dataset, method, like, **overrides
      )
      cell["set"].update(held_out[heatmap], **{"evaluate.figure_images": 0})
      cells.append(cell)
    if like:  # a second-order loss: float32 (no release float16 for it)
      for cell in cells:
        cell["set"].pop("model.accelerator_dtype", None)
    return cells

  cells = [_cell(preset, f"{prefix}-{m}", model, dataset, m) for m in METHODS]
  for method in ("zs", "flcp", "ft"):
    cells += with_held_out(f"{prefix}-{method}", method)[1:]
  for method in guided_methods:
    like = OBJECTIVE[method]
    section = "rrr" if method == "rrr" else "guided"
    for k in masks:
      trained = {f"{section}.masks_per_class": -1 if k == "all" else int(k)}
      if section == "guided":  # trained on the map its cell evaluates
        trained["guided.start_layer"] = _start_layer(preset, like)
      if k != "all":  # the heatmap figure shows every image's masks' runs
        trained["evaluate.figure_images"] = 0
      cells += with_held_out(f"{prefix}-{method}-k{k}", method, like, **trained)
  return cells


NOTES = {
  "paper": "Preset paper: the paper's choices (PAPER.md); the study's values "
  "stand beside ours.",
  "release": "Preset release: the paper's choices and every choice of the "
  "release's code that changes a number (docs/release.md; each is listed "
  "under Settings); the study's values stand beside ours.",
  "default": "Preset default: each family's mean/std, one heatmap (Chefer, "
  "all blocks) for every method, every dog box.",
}
