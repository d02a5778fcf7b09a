"""The demo's pretraining: contrastive loss, saved model, zeroed unused token rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import data
from rationality_jax import models
from rationality_jax.run import pretrain


def test_contrastive_loss_is_chance_for_equal_logits_and_falls_when_right():
  caption_ids = jnp.array([0, 0, 1, 2])
  chance = pretrain.contrastive_loss(jnp.zeros((4, 3)), caption_ids)
  # image->text: ln 3; text->image: ln 4 for each of the 3 captions present.
  assert float(chance) == pytest.approx(0.5 * (np.log(3) + np.log(4)), rel=1e-6)
  right = pretrain.contrastive_loss(
    10.0 * jax.nn.one_hot(caption_ids, 3), caption_ids
  )
  # Floor of text->image for caption 0 (two images): ln 2, averaged over 3 captions.
  assert float(right) == pytest.approx(0.5 * np.log(2) / 3, abs=1e-3)


def test_pretrain_saves_a_loadable_model_with_unused_tokens_zeroed(
  tmp_path, config_file
):
  config = config_file("demo_pretrain")
  config.data_dir = str(tmp_path / "data")
  config.dataset.update(dict(train_size=64, test_size=8))
  config.update(dict(steps=3, batch_size=16, log_every=1))
  data.build("synthetic_rationality", config.data_dir, **config.dataset)
  module, params = pretrain.pretrain(config, str(tmp_path / "model"))
  loaded_module, loaded = models.load(str(tmp_path / "model"))
  assert loaded_module.config == module.config
  table = np.asarray(loaded["text"]["token_embedding"]["embedding"])
  ids, _ = models.tokenizer("clip", 16)(
    pretrain.captions("class", ["circle"], [])
  )
  used = np.any(table != 0, axis=1)
  assert (
    used[np.unique(ids)].all() and used.sum() <= 12 and table.shape[0] == 49408
  )
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
