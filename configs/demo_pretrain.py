r"""Pretrains the demo's small CLIP-architecture model on the synthetic benchmark.

    python -m rationality_jax.main --config=configs/demo_pretrain.py \
        --workdir=/tmp/demo_pretrain

Builds `synthetic_rationality` (seed 1, backgrounds independent of the class:
no shortcut) in `<workdir>/data` unless `data_dir` is set, trains a CLIP
(ViT 64 px / patch 8, width 64, 3 blocks; causal text transformer, width 64,
2 blocks, context 16; 32-d joint space) from random weights with the
symmetric contrastive loss on "a photo of a {shape} on a {background}
background", and saves it to `<workdir>/model` (`models.load` reads it).
Expected on 2 CPU cores: about 40 s, final loss about 0.4 and image->caption
accuracy about 0.6 (16 captions; shape and background).
"""

import ml_collections


def get_config(arg=None):
    del arg
    config = ml_collections.ConfigDict()
    config.mode = "pretrain"
    config.data_dir = ""        # "" = <workdir>/data
    config.dataset = ml_collections.ConfigDict(dict(
        num_classes=4, image_size=64, train_size=5000, test_size=500,
        shortcut_prob=0.25, seed=1))
    config.model = ml_collections.ConfigDict(dict(
        image_size=64, patch_size=8, width=32, depth=2, num_heads=2, mlp_dim=64,
        context_length=16, text_width=32, text_depth=1, text_heads=2, text_mlp_dim=64,
        embed_dim=32))
    config.preprocess = "normalize('clip')|keep('image', 'label', 'background')"
    config.captions = "class"
    config.batch_size = 64
    config.steps = 3000
    config.learning_rate = 2e-3
    config.warmup_steps = 100
    config.weight_decay = 0.05
    config.log_every = 250
    config.seed = 0
    return config
