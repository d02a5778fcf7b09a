"""Parity with an independent PyTorch computation on the same weights.

The reference (`tests/explain/reference_torch.py`) runs the HF CLIP
vision tower with eager attention, retains the returned attention tensors'
gradients and uses plain torch.autograd; our side runs the Flax port loaded from
the same ``save_pretrained`` directory. Normalised heatmaps must agree to 1e-4.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import explain
from rationality_jax.explain import targets

torch = pytest.importorskip("torch")

from tests.explain import reference_torch as ref  # noqa: E402  (needs torch, checked above)

TOL = 1e-4
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _ours(
  module,
  params,
  method,
  head,
  images,
  labels,
  masks=None,
  classifier=targets.zero_shot,
  target="label",
  signed="positive",
):
  explainer = explain.make_explainer(
    module, classifier, method, target=target, signed=signed
  )
  out = explainer(
    params,
    jax.tree.map(jnp.asarray, head),
    jnp.asarray(images.transpose(0, 2, 3, 1)),
    jnp.asarray(labels),
    None if masks is None else jnp.asarray(masks),
  )
  return jax.tree.map(np.asarray, out)


def _torch(tree):
  return {k: torch.from_numpy(np.asarray(v)) for k, v in tree.items()}


def _max_diff(a, b):
  return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def _check_chefer(
  model,
  module,
  params,
  batch,
  start_layer,
  head=None,
  classifier=targets.zero_shot,
  target="label",
):
  images, class_embeddings, labels, masks = batch
  head = {"class_embeddings": class_embeddings} if head is None else head
  out = _ours(
    module,
    params,
    explain.Chefer(start_layer=start_layer),
    head,
    images,
    labels,
    masks,
    classifier=classifier,
    target=target,
  )
  # A copy: torch warns on the read-only buffer of a jax array.
  ref_labels = torch.from_numpy(np.array(out["classes"])).long()
  if target == "label":
    np.testing.assert_array_equal(out["classes"], labels)
  logits, patches, heatmap = ref.chefer(
    model,
    torch.from_numpy(images),
    _torch(head),
    ref_labels,
    start_layer=start_layer,
  )
  if target == "predicted":
    np.testing.assert_array_equal(out["classes"], logits.argmax(-1).numpy())
  assert _max_diff(out["logits"], logits) < 1e-4 * max(
    1.0, float(logits.abs().max())
  )
  assert _max_diff(out["heatmap"], heatmap) <= TOL
  assert _max_diff(out["heatmap_patches"], patches) <= TOL * max(
    1.0, float(patches.max())
  )
  assert float(heatmap.std()) > 0.05  # a real map, not a constant
  np.testing.assert_allclose(
    out["rma"], ref.rma(heatmap, torch.from_numpy(masks)).numpy(), atol=TOL
  )
  return out


@pytest.mark.parametrize("start_layer", [-1, 0, 1])
def test_chefer_matches_torch(tiny_clip, make_batch, start_layer):
  _check_chefer(*tiny_clip, make_batch(4, 48, 5, 16), start_layer)


def test_chefer_predicted_target_matches_torch(tiny_clip, make_batch):
  _check_chefer(
    *tiny_clip, make_batch(4, 48, 5, 16, seed=1), -1, target="predicted"
  )


@pytest.mark.parametrize(
  "in_features", [16, 32], ids=["projected", "cls_token"]
)
def test_chefer_linear_probe_matches_torch(tiny_clip, make_batch, in_features):
  rng = np.random.default_rng(3)
  head = {
    "kernel": rng.standard_normal((in_features, 7)).astype(np.float32),
    "bias": rng.standard_normal(7).astype(np.float32),
  }
  images, _, _, masks = make_batch(3, 48, 7, 16, seed=2)
  labels = np.array([0, 6, 2])
  _check_chefer(
    *tiny_clip,
    (images, None, labels, masks),
    0,
    head=head,
    classifier=targets.linear_probe,
  )


def test_gradcam_matches_torch(tiny_clip, make_batch):
  model, module, params = tiny_clip
  images, class_embeddings, labels, _ = make_batch(4, 48, 5, 16)
  head = {"class_embeddings": class_embeddings}
  for layer in (-1, 1):
    out = _ours(
      module, params, explain.GradCAM(layer=layer), head, images, labels
    )
    _, _patches, heatmap = ref.gradcam(
      model,
      torch.from_numpy(images),
      _torch(head),
      torch.from_numpy(labels),
      layer=layer,
    )
    assert _max_diff(out["heatmap"], heatmap) <= TOL
    assert float(heatmap.std()) > 0.05


def test_rollout_matches_torch(tiny_clip, make_batch):
  model, module, params = tiny_clip
  images, class_embeddings, labels, _ = make_batch(4, 48, 5, 16)
  head = {"class_embeddings": class_embeddings}
  out = _ours(module, params, explain.Rollout(), head, images, labels)
  _, patches, heatmap = ref.rollout(
    model, torch.from_numpy(images), _torch(head)
  )
  assert _max_diff(out["heatmap"], heatmap) <= TOL
  assert _max_diff(out["heatmap_patches"], patches) <= 1e-6


@pytest.mark.parametrize(
  "times_input,signed",
  [(False, "positive"), (True, "positive"), (True, "minmax")],
  ids=["input_gradients", "gradient_x_input", "gradient_x_input_minmax"],
)
def test_input_gradients_match_torch(
  tiny_clip, make_batch, times_input, signed
):
  model, module, params = tiny_clip
  images, class_embeddings, labels, _ = make_batch(4, 48, 5, 16)
  head = {"class_embeddings": class_embeddings}
  method = explain.GradientXInput() if times_input else explain.InputGradients()
  out = _ours(module, params, method, head, images, labels, signed=signed)
  _, heatmap = ref.input_gradients(
    model,
    torch.from_numpy(images),
    _torch(head),
    torch.from_numpy(labels),
    times_input=times_input,
    signed=signed,
  )
  assert _max_diff(out["heatmap"], heatmap) <= TOL


@pytest.mark.parametrize(
  "rule,steps,baseline,signed",
  [
    ("trapezoid", 8, explain.black_baseline(CLIP_MEAN, CLIP_STD), "positive"),
    ("right", 5, 0.0, "minmax"),
  ],
)
def test_integrated_gradients_match_torch(
  tiny_clip, make_batch, rule, steps, baseline, signed
):
  model, module, params = tiny_clip
  images, class_embeddings, labels, _ = make_batch(3, 48, 5, 16)
  head = {"class_embeddings": class_embeddings}
  method = explain.IntegratedGradients(
    steps=steps, baseline=baseline, rule=rule
  )
  out = _ours(module, params, method, head, images, labels, signed=signed)
  pixels, heatmap = ref.integrated_gradients(
    model,
    torch.from_numpy(images),
    _torch(head),
    torch.from_numpy(labels),
    steps=steps,
    baseline=baseline,
    rule=rule,
    signed=signed,
  )
  assert _max_diff(out["heatmap"], heatmap) <= TOL
  np.testing.assert_allclose(
    out["heatmap_patches"],
    pixels.reshape(3, 6, 8, 6, 8).mean(dim=(2, 4)).numpy(),
    atol=1e-5,
    rtol=1e-4,
  )


@pytest.mark.slow
def test_b16_chefer_gradcam_ig_match_torch(b16_clip, make_batch):
  """ViT-B/16 at 224 px (14 x 14 patches), 12 blocks."""
  model, module, params = b16_clip
  # One image: the full size is what this adds to the batched tiny tests.
  batch = make_batch(1, 224, 4, 512, seed=5)
  for start_layer in (-1, 0):
    out = _check_chefer(model, module, params, batch, start_layer)
    assert out["heatmap_patches"].shape == (1, 14, 14)
  images, class_embeddings, labels, _ = batch
  head = {"class_embeddings": class_embeddings}
  out = _ours(module, params, explain.GradCAM(), head, images, labels)
  _, _, heatmap = ref.gradcam(
    model, torch.from_numpy(images), _torch(head), torch.from_numpy(labels)
  )
  assert _max_diff(out["heatmap"], heatmap) <= TOL
  method = explain.IntegratedGradients(steps=4)
  out = _ours(module, params, method, head, images, labels)
  _, heatmap = ref.integrated_gradients(
    model,
    torch.from_numpy(images),
    _torch(head),
    torch.from_numpy(labels),
    steps=4,
  )
  assert _max_diff(out["heatmap"], heatmap) <= TOL
