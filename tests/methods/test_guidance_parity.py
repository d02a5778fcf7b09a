"""The guided and rrr losses and their gradients against PyTorch autograd.

A random-weight tiny CLIP (3 blocks, 48 px, 6 x 6 patches) is saved with
``save_pretrained`` and loaded by `rationality_jax.models.load`; the loss
comes from `methods.make_loss_fn` (what the training step differentiates),
the reference from `reference_guided_torch` (``create_graph=True`` through
the relevance, then ``backward``). PyTorch's parameter gradients are put in
our layout by the checkpoint converter itself (transposes and reshapes,
linear), so every parameter's gradient is compared.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import explain
from rationality_jax import methods
from rationality_jax.methods import guidance
from rationality_jax.models import convert
from rationality_jax.models import families
from rationality_jax.run import config as config_lib

torch = pytest.importorskip("torch")

from tests.explain.conftest import TINY_VISION  # noqa: E402
from tests.explain.conftest import build_clip  # noqa: E402
from tests.methods import reference_guided_torch as ref  # noqa: E402

BATCH, SIZE, CLASSES, LENGTH = 4, 48, 3, 8
OPTIONS = dict(
  start_layer=0, lambda_seg=0.8, lambda_acc=0.2, background=2.0, foreground=0.3
)
# Measured (float32 on both sides): gradients within 9e-6 (guided), 1.5e-6
# (guided_ft), 2e-7 (rrr) of each leaf's largest entry.
LOSS_RTOL, GRAD_TOL = 1e-5, 3e-5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  return build_clip(tmp_path_factory.mktemp("guided_clip"), TINY_VISION)


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  images = rng.standard_normal((BATCH, SIZE, SIZE, 3)).astype(np.float32)
  masks = np.zeros((BATCH, SIZE, SIZE), np.uint8)
  for i in range(BATCH):
    top, left = rng.integers(0, SIZE // 2, 2)
    masks[i, top : top + SIZE // 2, left : left + SIZE // 3] = 1
  ids = rng.integers(2, 99, (CLASSES, LENGTH)).astype(np.int32)
  caption_mask = np.ones((CLASSES, LENGTH), np.int32)
  for c, end in enumerate((4, 6, 7)):  # the end token (1), then padding (1)
    ids[c, end:] = 1
    caption_mask[c, end + 1 :] = 0
  batch = {
    "image": images,
    "label": np.array([0, 2, 1, 2], np.int32),
    "mask": masks,
    "index": np.array([5, 1, 3, 0], np.int32),
    "valid": np.ones(BATCH, bool),
  }
  selected = np.array([True, True, False, True, False, True])  # 3 of 4 here
  task = {"caption_ids": ids, "caption_mask": caption_mask}
  return batch, dict(task, mask_selected=selected)


def _config(method, **options):
  config = config_lib.default()
  config.method = method
  section = methods.METHODS[method].options_section
  config[section].update(options)
  return config


def _ours(module, params, head, method, config, batch, task):
  loss_fn = methods.make_loss_fn(methods.METHODS[method], module, config)
  trainable = {"params": params, "head": jax.tree.map(jnp.asarray, head)}
  (loss, aux), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
    trainable, batch, task
  )
  return float(loss), jax.tree.map(float, aux), jax.device_get(grads)


def _torch_inputs(batch, task):
  t = {k: torch.from_numpy(np.array(v)) for k, v in batch.items()}
  labels = t["label"].long()
  text = (
    torch.from_numpy(task["caption_ids"]).long()[labels],
    torch.from_numpy(task["caption_mask"]).long()[labels],
  )
  weights = torch.from_numpy(
    task["mask_selected"][batch["index"]].astype(np.float32)
  )
  images = t["image"].permute(0, 3, 1, 2).contiguous()
  return images, labels, t["mask"].float(), weights, text


def _torch_grads(model, module, loss):
  """The parameter gradients of `loss` in our params layout."""
  model.zero_grad(set_to_none=True)
  loss.backward()
  state = {
    name: (p.grad if p.grad is not None else torch.zeros_like(p)).numpy()
    for name, p in model.named_parameters()
  }
  layout = families.detect_layout(state)
  return convert.convert_state_dict(state, layout, module.config)


def _compare_grads(ours, reference):
  flat_ours = dict(jax.tree_util.tree_leaves_with_path(ours))
  flat_ref = dict(jax.tree_util.tree_leaves_with_path(reference))
  assert flat_ours.keys() == flat_ref.keys()
  worst = 0.0
  for path, ref_leaf in flat_ref.items():
    ref_leaf = np.asarray(ref_leaf)
    diff = np.abs(np.asarray(flat_ours[path]) - ref_leaf).max()
    scale = max(float(np.abs(ref_leaf).max()), 1e-3)
    worst = max(worst, diff / scale)
    assert diff <= GRAD_TOL * scale, (jax.tree_util.keystr(path), diff, scale)
  return worst


def _model(tiny):
  model, module, params = tiny
  model.eval()
  model.requires_grad_(True)
  return model, module, params


def test_guided_contrastive_matches_torch(tiny):
  model, module, params = _model(tiny)
  batch, task = _batch()
  config = _config("guided", masks_per_class=-1, **OPTIONS)
  loss, aux, grads = _ours(module, params, {}, "guided", config, batch, task)
  images, labels, masks, weights, text = _torch_inputs(batch, task)
  ref_loss, ref_task, ref_relevance = ref.guided_loss(
    model, images, labels, masks, weights, dict(OPTIONS, temperature=0.07), text
  )
  np.testing.assert_allclose(loss, float(ref_loss.detach()), rtol=LOSS_RTOL)
  np.testing.assert_allclose(
    aux["task_loss"], float(ref_task.detach()), rtol=LOSS_RTOL
  )
  np.testing.assert_allclose(
    aux["relevance"], float(ref_relevance.detach()), rtol=LOSS_RTOL
  )
  assert aux["relevance"] > 0.01  # a real map against the masks
  reference = _torch_grads(model, module, ref_loss)
  _compare_grads(grads["params"], reference)
  # The relevance term moves the image tower: its gradient is not FLCP's.
  plain = _config("guided", masks_per_class=0, **OPTIONS)
  _, _, plain_grads = _ours(module, params, {}, "guided", plain, batch, task)
  kernel = ("vision", "block_0", "attn", "qkv", "kernel")
  a, b = grads["params"], plain_grads["params"]
  for key in kernel:
    a, b = a[key], b[key]
  assert np.abs(a - b).max() > 1e-3 * np.abs(a).max()


def test_guided_ft_matches_torch(tiny):
  model, module, params = _model(tiny)
  batch, task = _batch(seed=1)
  rng = np.random.default_rng(2)
  head = {
    "kernel": rng.standard_normal((16, CLASSES)).astype(np.float32),
    "bias": rng.standard_normal(CLASSES).astype(np.float32),
  }
  options = dict(OPTIONS, start_layer=1, lambda_acc=0.5)
  config = _config("guided_ft", masks_per_class=-1, **options)
  loss, _, grads = _ours(module, params, head, "guided_ft", config, batch, task)
  images, labels, masks, weights, _ = _torch_inputs(batch, task)
  kernel = torch.from_numpy(head["kernel"]).requires_grad_(True)
  bias = torch.from_numpy(head["bias"]).requires_grad_(True)
  ref_loss, _, _ = ref.guided_loss(
    model, images, labels, masks, weights, dict(options, head=(kernel, bias))
  )
  np.testing.assert_allclose(loss, float(ref_loss.detach()), rtol=LOSS_RTOL)
  reference = _torch_grads(model, module, ref_loss)
  _compare_grads(grads["params"], reference)
  _compare_grads(
    grads["head"], {"kernel": kernel.grad.numpy(), "bias": bias.grad.numpy()}
  )


def test_rrr_matches_torch(tiny):
  model, module, params = _model(tiny)
  batch, task = _batch(seed=3)
  config = _config("rrr", masks_per_class=-1, lambda_rrr=3.0)
  loss, aux, grads = _ours(module, params, {}, "rrr", config, batch, task)
  images, _, masks, weights, text = _torch_inputs(batch, task)
  ref_loss, _, ref_penalty = ref.rrr_loss(
    model, images, text, masks, weights, 3.0, 0.07
  )
  np.testing.assert_allclose(loss, float(ref_loss.detach()), rtol=LOSS_RTOL)
  np.testing.assert_allclose(
    aux["rrr"], float(ref_penalty.detach()), rtol=LOSS_RTOL
  )
  reference = _torch_grads(model, module, ref_loss)
  _compare_grads(grads["params"], reference)


@pytest.mark.slow
def test_few_masks_skip_the_penalty(tiny):
  """k > 0 runs the penalty only for a batch holding a selected image; a
  batch without one is the objective alone (times lambda_acc)."""
  _, module, params = _model(tiny)
  batch, task = _batch()
  every = _config("guided", masks_per_class=-1, **OPTIONS)
  few = _config("guided", masks_per_class=1, **OPTIONS)
  loss_every, _, _ = _ours(module, params, {}, "guided", every, batch, task)
  loss_few, _, _ = _ours(module, params, {}, "guided", few, batch, task)
  np.testing.assert_allclose(loss_few, loss_every, rtol=1e-6)
  none = dict(task, mask_selected=np.zeros_like(task["mask_selected"]))
  loss, aux, _ = _ours(module, params, {}, "guided", few, batch, none)
  flcp_config = _config("flcp")
  flcp_loss, _, _ = _ours(module, params, {}, "flcp", flcp_config, batch, task)
  assert aux["relevance"] == 0.0
  np.testing.assert_allclose(loss, 0.2 * flcp_loss, rtol=1e-6)


def test_training_heatmap_is_the_evaluations_but_never_overflows():
  rng = np.random.default_rng(0)
  patches = jnp.asarray(rng.random((3, 6, 6)), jnp.float32)
  patches = patches.at[1].set(5.0 + 1e-7 * patches[1])  # flat: noise only
  patches = patches.at[2].set(0.0)  # constant
  ours = guidance.training_heatmap(patches, (48, 48))
  evaluation = explain.minmax_normalize(explain.upsample(patches, (48, 48)))
  np.testing.assert_allclose(ours[0], evaluation[0], atol=1e-6)
  np.testing.assert_array_equal(ours[1:], 0.0)

  def loss(p):
    return jnp.sum(guidance.training_heatmap(p, (48, 48)) ** 2)

  grad = jax.grad(loss)(patches)
  assert np.isfinite(np.asarray(grad)).all()
  np.testing.assert_array_equal(grad[1:], 0.0)


def test_mask_selection_is_seeded_per_class():
  labels = np.repeat(np.arange(5), [10, 3, 7, 1, 9])
  ids = np.array([f"img{i}" for i in range(len(labels))])
  a, facts = guidance.select(labels, ids, 3, seed=7)
  b, _ = guidance.select(labels, ids, 3, seed=7)
  c, _ = guidance.select(labels, ids, 3, seed=8)
  np.testing.assert_array_equal(a, b)
  assert (a != c).any()
  assert [int(a[labels == k].sum()) for k in range(5)] == [3, 3, 3, 1, 3]
  assert facts["count"] == 13 and facts["ids"] == list(ids[a])
  assert guidance.select(labels, ids, -1, 0)[0].all()
  assert not guidance.select(labels, ids, 0, 0)[0].any()
