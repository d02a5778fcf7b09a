"""guided, guided_ft and rrr on every family: CLIP, ALBEF and BLIP.

Tiny checkpoints in the original formats (`tests.checkpoint_factories`),
loaded by `models.load`, the loss from `methods.make_loss_fn` with the
family's own objective (ALBEF/BLIP: FLCP's learnable temperature): finite
loss and gradients, a relevance that depends on the masks, and gradient in
both towers (contrastive) or the image tower and head (FT objective).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import methods
from rationality_jax import models
from rationality_jax.methods import heads
from rationality_jax.run import config as config_lib

pytest.importorskip("torch")

from tests import checkpoint_factories as factories

SIZE = 32
CLASSES = ["cat", "dog", "bird"]


@pytest.fixture(scope="module", params=["clip", "albef", "blip"])
def family_model(request, tmp_path_factory):
  directory = tmp_path_factory.mktemp(request.param)
  if request.param == "clip":
    made = factories.hf_clip(directory / "clip", patch=8, image_size=SIZE)
  elif request.param == "albef":
    made = factories.albef_pth(directory / "ALBEF.pth", image_size=SIZE)
  else:
    made = factories.blip_pth(directory / "model_base.pth", image_size=SIZE)
  module, params = models.load(made.path)
  # The tiny ALBEF/BLIP image towers hold weights near 1e-10 (their
  # embeddings do not depend on the image); noise of 0.05 makes them real.
  rng = np.random.default_rng(1)
  params = jax.tree.map(
    lambda x: (
      x + 0.05 * rng.standard_normal(x.shape).astype(x.dtype) if x.ndim else x
    ),
    params,
  )
  return request.param, module, params


def _inputs(module):
  rng = np.random.default_rng(0)
  size = module.config.vision.image_size
  tokenizer = models.family(module.config).tokenizer(module.config)
  task = heads.make_task(tokenizer, CLASSES)
  task = {k: v for k, v in task.items() if not k.startswith("prompt_")}
  masks = np.zeros((4, size, size), np.uint8)
  masks[:, size // 4 : 3 * size // 4, : size // 2] = 1
  batch = {
    "image": rng.standard_normal((4, size, size, 3)).astype(np.float32),
    "label": np.array([0, 1, 2, 1], np.int32),
    "mask": masks,
    "index": np.arange(4, dtype=np.int32),
    "valid": np.ones(4, bool),
  }
  task["mask_selected"] = np.ones(4, bool)
  return batch, task


@pytest.mark.parametrize("method", ["guided", "guided_ft", "rrr"])
def test_guided_methods_train_every_family(family_model, method):
  family, module, params = family_model
  config = config_lib.default()
  config.method = method
  m = methods.METHODS[method]
  batch, task = _inputs(module)
  head = {}
  if m.loss == "cross_entropy":
    e = module.config.embed_dim
    head = {
      "kernel": jnp.full((e, len(CLASSES)), 0.1, jnp.float32),
      "bias": jnp.zeros((len(CLASSES),), jnp.float32),
    }
  loss_fn = jax.jit(
    jax.value_and_grad(methods.make_loss_fn(m, module, config), has_aux=True)
  )
  trainable = {"params": params, "head": head}
  (loss, aux), grads = loss_fn(trainable, batch, task)
  key = "rrr" if method == "rrr" else "relevance"
  penalty = aux[key]
  assert np.isfinite(float(loss)) and float(penalty) > 0
  for leaf in jax.tree.leaves(grads):
    assert np.isfinite(np.asarray(leaf)).all()

  def largest(tree):
    return max(float(jnp.abs(g).max()) for g in jax.tree.leaves(tree))

  assert largest(grads["params"]["vision"]) > 0
  if m.loss == "contrastive":
    assert largest(grads["params"]["text"]) > 0
    if family != "clip":  # the learnable temperature is in the loss
      assert "temp" in grads["params"]
  else:
    assert float(jnp.abs(grads["head"]["kernel"]).max()) > 0
  # The penalty reads the masks: another mask, another penalty.
  moved = dict(batch, mask=1 - batch["mask"])
  (_, aux_moved), _ = loss_fn(trainable, moved, task)
  assert abs(float(aux_moved[key]) - float(penalty)) > 1e-6
