r"""Adapt a VLM with one method: zs, lp, ft, flcp, coop, adapter (or wise_ft).

    python -m rationality_jax.main --config=configs/train.py:method=flcp,model=tiny \
        --workdir=/tmp/train_flcp

Arguments (``key=value`` after the colon, comma-separated):
  method: zs | lp | ft | flcp | coop | adapter | wise_ft       (default flcp)
  model:  tiny | demo | b32 | b16 (random init, CLIP architecture) or a path
          that `rationality_jax.models.load` reads           (default tiny)
  recipe: study (Adam, no schedule, the release's lr per method) |
          adamw_cosine                                        (default study)

The default trains on `synthetic_rationality` (built in `<workdir>/data`,
4 classes, 64 px, backgrounds tied to the class in 90% of train images and
independent of it in test) with batch 32 and reports the test accuracy.
Measured on 2 CPU cores with other jobs running (load ~10), ``model=tiny``
(random init), ``--config.total_steps=100 --config.optim.lr=1e-3``:

  method=lp    93 s wall (mostly compilation), last train loss 1.25, test accuracy 0.244
  method=flcp  133 s wall, last contrastive loss 2.45, test accuracy 0.240

A randomly initialised model learns the train split's background shortcut,
which test does not have, so chance (0.25) on test is the expected result;
start from a pretrained model (``model=<workdir of
configs/demo_pretrain.py>/model``) for meaningful zero-shot and fine-tuned
accuracies (configs/demo.py runs that grid).

The study's recipe (PAPER.md): Adam (0.9, 0.999, 1e-8), no weight decay, no
schedule, batch 32, 10 epochs, lr 1e-5 (FLCP, FT) and 1e-3 (LP), seed 42,
augmentations RandomResizedCrop, flip, ColorJitter(0.2 x4), rotation 30
(``pp_train`` of ``recipe=study`` at 224 px).

Multi-host: ``--config.distributed.initialize=True`` on every host (with
coordinator flags on clusters without auto-detection). Sharding:
``--config.mesh="[('data', -1), ('fsdp', 8)]"`` splits each parameter over
8 devices (FSDP) and the batch over all of them.

WiSE-FT: ``method=wise_ft`` with ``--config.wise_ft.finetuned_workdir=<a
finished ft or flcp run>``; writes `<workdir>/alpha_<a>/` per alpha.
"""

import ml_collections

from rationality_jax import optim

MODELS = {
  "tiny": dict(
    image_size=32,
    patch_size=8,
    width=32,
    depth=2,
    num_heads=2,
    mlp_dim=64,
    context_length=16,
    text_width=32,
    text_depth=2,
    text_heads=2,
    text_mlp_dim=64,
    embed_dim=16,
  ),
  "demo": dict(
    image_size=64,
    patch_size=8,
    width=64,
    depth=3,
    num_heads=4,
    mlp_dim=128,
    context_length=16,
    text_width=64,
    text_depth=2,
    text_heads=4,
    text_mlp_dim=128,
    embed_dim=32,
  ),
  # OpenAI / HF CLIP ViT-B sizes (random init: benchmarks, shape checks).
  "b32": dict(
    image_size=224,
    patch_size=32,
    width=768,
    depth=12,
    num_heads=12,
    mlp_dim=3072,
    context_length=77,
    text_width=512,
    text_depth=12,
    text_heads=8,
    text_mlp_dim=2048,
    embed_dim=512,
  ),
  "b16": dict(
    image_size=224,
    patch_size=16,
    width=768,
    depth=12,
    num_heads=12,
    mlp_dim=3072,
    context_length=77,
    text_width=512,
    text_depth=12,
    text_heads=8,
    text_mlp_dim=2048,
    embed_dim=512,
  ),
}

# The release's learning rates (FLCP, FT 1e-5; LP 1e-3); CoOp, adapter: ours.
STUDY_LR = {
  "zs": 0.0,
  "lp": 1e-3,
  "ft": 1e-5,
  "flcp": 1e-5,
  "coop": 2e-3,
  "adapter": 1e-3,
  "wise_ft": 0.0,
}


def parse_arg(arg, **defaults):
  """'a=1,b=x' -> ConfigDict with `defaults` overridden (values stay strings)."""
  out = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in defaults:
      raise ValueError(f"unknown argument {key!r}; known: {sorted(defaults)}.")
    out[key] = value
  return ml_collections.ConfigDict(out)


def get_config(arg=None):
  args = parse_arg(arg, method="flcp", model="tiny", recipe="study")
  config = ml_collections.ConfigDict()
  config.mode = "train"
  config.method = args.method
  config.trainable = (
    ""  # "" = the method's regex; else a regex over param paths
  )
  config.seed = 42

  sizes = MODELS.get(args.model, MODELS["tiny"])
  config.model = ml_collections.ConfigDict(
    dict(
      path="" if args.model in MODELS else args.model, dtype="float32", **sizes
    )
  )
  image_size = sizes["image_size"]

  config.dataset = ml_collections.ConfigDict(
    dict(
      name="synthetic_rationality",
      data_dir="",
      build=True,
      train_split="train",
      builder_kwargs=ml_collections.ConfigDict(dict(image_size=64)),
    )
  )
  config.eval_split = "test"  # "" = no accuracy at the end
  if args.recipe == "study" and image_size >= 224:
    config.pp_train = (
      f"random_resized_crop({image_size})|random_flip_lr|"
      "color_jitter(0.2, 0.2, 0.2, 0.2)|rotate(30, 'bilinear')|"
      "normalize('clip')|keep('image', 'label')"
    )
  else:
    config.pp_train = (
      f"resize({image_size})|random_flip_lr|normalize('clip')|"
      "keep('image', 'label')"
    )
  config.pp_eval = (
    f"resize({image_size})|normalize('clip')|keep('image', 'label')"
  )
  config.batch_size = 32
  config.num_epochs = 10.0
  config.total_steps = -1  # -1: from num_epochs
  config.input_threads = 2
  config.input_prefetch = 8

  if args.recipe == "study":
    config.optim = optim.study_preset()
  elif args.recipe == "adamw_cosine":
    config.optim = optim.adamw_cosine_preset()
  else:
    raise ValueError(
      f"recipe={args.recipe!r}; choose 'study' or 'adamw_cosine'."
    )
  config.optim.lr = STUDY_LR.get(args.method, 1e-5)

  config.head = ml_collections.ConfigDict(dict(templates="study", cache_dir=""))
  config.lp = ml_collections.ConfigDict(dict(feature="auto", init="random"))
  config.flcp = ml_collections.ConfigDict(
    dict(temperature=-1.0, targets="diagonal", temp_range=(0.001, 0.5))
  )
  config.coop = ml_collections.ConfigDict(
    dict(n_ctx=4, init="", class_specific=False)
  )
  config.adapter = ml_collections.ConfigDict(dict(ratio=0.2, reduction=4))
  config.wise_ft = ml_collections.ConfigDict(
    dict(finetuned_workdir="", alphas=(0.0, 0.25, 0.5, 0.75, 1.0))
  )

  config.mesh = [("data", -1), ("fsdp", 1)]
  config.sharding = ml_collections.ConfigDict(
    dict(params="fsdp", fsdp_axis="fsdp")
  )
  config.distributed = ml_collections.ConfigDict(
    dict(
      initialize=False,
      coordinator_address="",
      num_processes=1,
      process_id=0,
      cpu_collectives="",
    )
  )
  config.checkpoint = ml_collections.ConfigDict(
    dict(every_steps=500, keep=3, async_save=True)
  )
  config.log_every = 10
  return config
