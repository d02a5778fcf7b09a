r"""Adapt a VLM with one method: zs, lp, ft, flcp, coop, adapter.

    python -m rationality_jax.main \
        --config=configs/train.py:method=flcp,model=/ckpt/ViT-B-16.pt \
        --workdir=/tmp/train_flcp

Arguments (``key=value`` after the colon, comma-separated):
  method:  a registered method: zs | lp | ft | flcp | coop | adapter
           (`rationality_jax.methods.METHODS`)                 (default flcp)
  model:   a checkpoint path (OpenAI .pt, ALBEF/BLIP .pth, a Hugging Face or
           rationality_jax directory), a hub id, or random:<arch> (tiny, demo,
           b16, b32: CLIP architecture, random weights)   (default random:tiny)
  dataset: synthetic (generated in <workdir>/data) | cub | caltech101 | dogs |
           imagenet (prepared in --config.data.dir, or built from
           --config.data.manual_dir)                      (default synthetic)
  recipe:  study (Adam, no schedule, the release's lr per method, its
           augmentation) | adamw_cosine                   (default study)
  steps:   number of training steps (default: 10 epochs, the study's)

The model decides the pixels: images are preprocessed at the checkpoint's
native size (OpenAI CLIP 224, ALBEF 256, BLIP 384) unless
``--config.model.image_size`` says otherwise (position embeddings resized).
At the end the accuracy on the test split is reported; evaluate the run
with ``configs/evaluate.py:train_dir=<workdir>``.

Expected with the defaults (a randomly initialised tiny CLIP on the
synthetic benchmark, whose train split's background gives the class away):
the model learns the shortcut, so test accuracy stays near chance (0.25).
Start from a pretrained model (``model=assets/demo_clip``) for meaningful
accuracies (configs/demo.py runs that grid).

The study's recipe (PAPER.md): Adam (0.9, 0.999, 1e-8), no weight decay, no
schedule, batch 32, 10 epochs, lr 1e-5 (FLCP, FT) and 1e-3 (LP), seed 42,
augmentations RandomResizedCrop, flip, ColorJitter(0.2 x4), rotation 30.

Multi-host: ``--config.distributed.initialize=True`` on every host. FSDP:
``--config.mesh="[('data', -1), ('fsdp', 8)]"``. WiSE-FT of a finished run:
configs/wise_ft.py.
"""

import common


def get_config(arg=None):
  args = common.parse(
    arg,
    method="flcp",
    model="random:tiny",
    dataset="synthetic",
    recipe="study",
    steps="",
  )
  if args["recipe"] not in common.RECIPES:
    raise ValueError(
      f"recipe={args['recipe']!r}; choose one of {sorted(common.RECIPES)}."
    )
  config = common.run_config(mode="train", method=args["method"])
  config.model.path = args["model"]
  common.use_dataset(config, args["dataset"])
  config.train.optim = common.RECIPES[args["recipe"]]()
  config.train.optim.lr = common.study_lr(args["method"])
  if args["steps"]:
    config.train.total_steps = int(args["steps"])
  return config
