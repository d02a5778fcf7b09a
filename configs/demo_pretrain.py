r"""Pretrains the demo's small CLIP-architecture model on the synthetic benchmark.

    python -m rationality_jax.main --config=configs/demo_pretrain.py \
        --workdir=/tmp/demo_pretrain

Builds `synthetic_rationality` (seed 1, 5,000 training images, backgrounds
independent of the class: no shortcut) in `<workdir>/data` unless `data_dir`
is set, trains a CLIP (ViT 64 px / patch 8, width 32, 2 blocks; causal text
transformer, width 32, 1 block, context 16; 32-d joint space) from random
weights with the symmetric contrastive loss on "a photo of a {shape}"
captions (1,500 steps of 64 images, AdamW 2e-3, cosine), and saves it to
`<workdir>/model` (`models.load` reads it). Token-embedding rows of tokens
that never occur in the captions are zeroed (never trained), which keeps the
checkpoint at 240 kB.

This is how `assets/demo_clip` (the demo's shipped model) was made.
Expected on 2 CPU cores: 10-15 minutes; the loss falls from 2.77 (chance)
to about 2.0 (its floor is ln(16) / 2 = 1.39: with about 16 images per
caption in a batch, the text->image half cannot go below ln 16), and the batch
image->caption accuracy rises from 0.25 to about 0.7 (4 captions).
"""

import ml_collections

from rationality_jax.models.families import clip


def get_config(arg=None):
  del arg
  config = ml_collections.ConfigDict()
  config.mode = "pretrain"
  config.data_dir = ""  # "" = <workdir>/data
  config.dataset = ml_collections.ConfigDict(
    dict(
      num_classes=4,
      image_size=64,
      train_size=5000,
      test_size=500,
      shortcut_prob=0.25,
      seed=1,
    )
  )
  # The tiny CLIP at 64 px, one text block, a 32-d joint space.
  config.model = ml_collections.ConfigDict(
    dict(clip.ARCHITECTURES["tiny"], image_size=64, text_depth=1, embed_dim=32)
  )
  config.preprocess = "normalize('clip')|keep('image', 'label', 'background')"
  config.captions = "class"
  config.batch_size = 64
  config.steps = 1500
  config.learning_rate = 2e-3
  config.warmup_steps = 25
  config.weight_decay = 0.05
  config.log_every = 250
  config.seed = 0
  return config
