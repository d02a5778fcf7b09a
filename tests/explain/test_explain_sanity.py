"""Properties that hold by construction: constant scores, a one-patch label,
IG completeness, batch independence, vmap, pruned backward passes, errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import explain
from rationality_jax.explain import targets
from rationality_jax.models.vit import VisionTransformer
from rationality_jax.models.vit import ViTConfig

CONFIG = ViTConfig(
  image_size=16,
  patch_size=4,
  width=8,
  depth=1,
  num_heads=1,
  mlp_dim=8,
  pre_norm=False,
  patch_bias=False,
)
GRADIENT_METHODS = [
  explain.Chefer(-1),
  explain.GradCAM(),
  explain.InputGradients(),
  explain.GradientXInput(),
  explain.IntegratedGradients(steps=4),
]


def _random_tower(config=CONFIG, seed=0):
  module = VisionTransformer(config)
  images = jnp.asarray(
    np.random.default_rng(seed).standard_normal(
      (4, config.image_size, config.image_size, 3)
    ),
    jnp.float32,
  )
  return module, module.init(jax.random.key(seed), images)["params"], images


def _constant_classifier(module, images, head):
  """Runs the tower (so it sows) but the logits ignore it: a score-free model."""
  features = module(images)
  return head["bias"] + 0.0 * features[:, :1, 0]


@pytest.mark.parametrize(
  "method", GRADIENT_METHODS, ids=lambda m: type(m).__name__
)
def test_score_independent_of_image_gives_zero_map_without_nan(method):
  module, params, images = _random_tower()
  head = {"bias": jnp.array([0.5, -1.0, 2.0])}
  masks = jnp.zeros((4, 16, 16)).at[:, 4:12, 4:12].set(1)
  out = explain.make_explainer(module, _constant_classifier, method)(
    params, head, images, jnp.array([0, 1, 2, 0]), masks
  )
  assert np.isfinite(np.asarray(out["heatmap"])).all()
  np.testing.assert_array_equal(np.asarray(out["heatmap"]), 0.0)
  np.testing.assert_array_equal(np.asarray(out["rma"]), 0.0)
  np.testing.assert_allclose(
    np.asarray(out["logits"]), np.tile(head["bias"], (4, 1))
  )


def test_constant_map_option_gives_the_release_nan():
  """constant_map='nan': the release's 0/0 for a score-free model, RMA NaN."""
  module, params, images = _random_tower()
  head = {"bias": jnp.array([0.5, -1.0, 2.0])}
  masks = jnp.zeros((4, 16, 16)).at[:, 4:12, 4:12].set(1)
  out = explain.make_explainer(
    module, _constant_classifier, explain.Chefer(-1), constant_map="nan"
  )(params, head, images, jnp.array([0, 1, 2, 0]), masks)
  assert np.isnan(np.asarray(out["heatmap"])).all()
  assert np.isnan(np.asarray(out["rma"])).all()
  with pytest.raises(ValueError, match="constant_map"):
    explain.make_explainer(
      module, _constant_classifier, "chefer", constant_map="zeros"
    )


@pytest.mark.parametrize(
  "method",
  [*GRADIENT_METHODS, explain.Rollout()],
  ids=lambda m: type(m).__name__,
)
def test_nan_input_gives_that_sample_a_nan_map_others_bit_identical(method):
  module, params, images = _random_tower(
    ViTConfig(
      image_size=16, patch_size=4, width=16, depth=2, num_heads=2, mlp_dim=32
    )
  )
  head = {
    "kernel": jnp.asarray(
      np.random.default_rng(6).standard_normal((16, 3)), jnp.float32
    ),
    "bias": jnp.zeros(3),
  }
  labels = jnp.array([0, 1, 2, 1])
  masks = jnp.zeros((4, 16, 16)).at[:, 4:12, 4:12].set(1)
  explainer = explain.make_explainer(module, targets.tower_linear_probe, method)
  clean = explainer(params, head, images, labels, masks)
  broken = explainer(
    params, head, images.at[2, 5, 7, 1].set(jnp.nan), labels, masks
  )
  assert np.isnan(np.asarray(broken["heatmap"][2])).all()
  assert np.isnan(np.asarray(broken["rma"][2]))
  keep = np.array([0, 1, 3])
  for key in ("heatmap", "heatmap_patches", "rma", "logits"):
    np.testing.assert_array_equal(
      np.asarray(broken[key])[keep], np.asarray(clean[key])[keep]
    )


def _attention_maps(seed=0, batch=3, heads=2, tokens=5):
  """Two blocks of (writable) float32 attentions and gradients."""
  rng = np.random.default_rng(seed)
  scores = rng.standard_normal((2, batch, heads, tokens, tokens))
  attentions = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
  gradients = rng.standard_normal(attentions.shape)
  return list(attentions.astype(np.float32)), list(gradients.astype(np.float32))


@pytest.mark.parametrize("bad", [np.nan, -np.inf, np.inf])
def test_nonfinite_attention_or_gradient_never_becomes_evidence(bad):
  """A value a clamp or the CLS row would hide (max(-inf, 0) = 0; row 3 never
  reaches R[CLS] in the last block) still makes the sample's map NaN."""
  attentions, gradients = _attention_maps()
  clean = {
    "chefer": explain.chefer_relevance(attentions, gradients),
    "rollout": explain.attention_rollout(attentions),
    "gradcam": explain.grad_cam_tokens(attentions[0][:, 0], gradients[1][:, 0]),
  }
  # sample 1: one value off the CLS row of the last block; positive attention
  # there, so -inf * A = -inf is what the clamp would turn into 0.
  gradients[1][1, 0, 3, 2] = bad
  attentions[1][2, 1, 3, 4] = bad  # sample 2: the attention itself
  broken = {
    "chefer": explain.chefer_relevance(attentions, gradients),
    "rollout": explain.attention_rollout(attentions),
    "gradcam": explain.grad_cam_tokens(attentions[0][:, 0], gradients[1][:, 0]),
  }
  nan_samples = {"chefer": [1, 2], "rollout": [2], "gradcam": [1]}
  for name, rows in nan_samples.items():
    out = np.asarray(broken[name])
    assert np.isnan(out[rows]).all(), name
    keep = [b for b in range(3) if b not in rows]
    np.testing.assert_array_equal(out[keep], np.asarray(clean[name])[keep])


def test_last_block_as_its_cls_row_gives_the_same_map():
  """Chefer and rollout read only the CLS row of the last block, so passing
  that row alone ([B, heads, 1, N], what a `cls_only` tower sows) gives the
  same map; any other shape is refused, naming the block."""
  attentions, gradients = _attention_maps()
  rows = [attentions[0], attentions[1][:, :, :1]]
  row_grads = [gradients[0], gradients[1][:, :, :1]]
  np.testing.assert_allclose(
    explain.chefer_relevance(rows, row_grads),
    explain.chefer_relevance(attentions, gradients),
    rtol=1e-6,
    atol=1e-7,
  )
  np.testing.assert_allclose(
    explain.attention_rollout(rows),
    explain.attention_rollout(attentions),
    rtol=1e-6,
    atol=1e-7,
  )
  with pytest.raises(ValueError, match="block 0 of 2"):
    explain.chefer_relevance(
      [attentions[0][:, :, :1], attentions[1]],
      [gradients[0][:, :, :1], gradients[1]],
    )
  with pytest.raises(ValueError, match="block 1 of 2"):
    explain.chefer_relevance(rows, [gradients[0], gradients[1]])
  with pytest.raises(ValueError, match="block 1 of 2"):
    explain.attention_rollout([attentions[0], attentions[1][:, :, :2]])


@pytest.mark.parametrize(
  "method",
  [
    explain.Chefer(-1),
    explain.Chefer(0),
    explain.Rollout(),
    explain.GradCAM(),
    explain.GradCAM(site="tokens"),
  ],
  ids=repr,
)
def test_cls_only_tower_explains_like_the_full_tower(method):
  """A tower whose last block computes the CLS token only gives the logits
  and heatmaps of the full tower (Grad-CAM on the last block's output tokens
  turns cls_only off, so that it still sees every token)."""
  config = dataclasses.replace(CONFIG, depth=2, num_heads=2)
  module, params, images = _random_tower(config)
  head = {
    "kernel": jnp.asarray(
      np.random.default_rng(3).standard_normal((8, 3)), jnp.float32
    ),
    "bias": jnp.zeros(3),
  }
  labels = jnp.array([0, 1, 2, 0])
  outs = [
    explain.make_explainer(
      module.clone(cls_only=cls_only), targets.tower_linear_probe, method
    )(params, head, images, labels)
    for cls_only in (False, True)
  ]
  for key in ("logits", "heatmap_patches", "heatmap"):
    np.testing.assert_allclose(
      np.asarray(outs[1][key]), np.asarray(outs[0][key]), rtol=1e-5, atol=1e-6
    )
  if method != explain.GradCAM(site="tokens"):  # there only CLS has a gradient
    assert float(np.abs(np.asarray(outs[0]["heatmap_patches"])).max()) > 0


def _one_patch_model():
  """A 1-block tower whose class-1 logit provably depends on patch `k` only.

  Zero pixels and zero positions make every patch token 0, so its LayerNorm
  output, value and key are 0; q = k = 0 make the attention uniform (1/N).
  The CLS output is then c + a0 LN(c) + A_0k LN(p) * s with c, p orthogonal and
  zero-mean, and the head reads p: S_1 = p . LN_final(z), increasing in A_0k.
  So dS/dA_0j = 0 for every patch j != k and > 0 for k (Chefer), and the
  gradient-weighted norm1 is 0 off patch k and > 0 on it (Grad-CAM).
  """
  width = CONFIG.width
  module, params, _ = _random_tower()
  p = jnp.array([1.0, -1.0, 1.0, -1.0, 0, 0, 0, 0])
  c = jnp.array([0, 0, 0, 0, 2.0, 2.0, -2.0, -2.0])
  params = jax.tree.map(lambda x: x, params)
  params["patch_embed"]["kernel"] = jnp.broadcast_to(p / 48.0, (4, 4, 3, width))
  params["cls_token"] = c
  params["pos_embedding"] = jnp.zeros_like(params["pos_embedding"])
  block = params["block_0"]
  block["attn"]["qkv"]["kernel"] = (
    jnp.zeros((width, 3 * width)).at[:, 2 * width :].set(jnp.eye(width))
  )
  block["attn"]["qkv"]["bias"] = jnp.zeros(3 * width)
  block["attn"]["out"]["kernel"] = jnp.eye(width)
  block["attn"]["out"]["bias"] = jnp.zeros(width)
  block["mlp"]["fc2"]["kernel"] = jnp.zeros_like(block["mlp"]["fc2"]["kernel"])
  block["mlp"]["fc2"]["bias"] = jnp.zeros(width)
  head = {"kernel": jnp.stack([-p, p], axis=1), "bias": jnp.zeros(2)}
  return module, params, head


@pytest.mark.parametrize(
  "method",
  [explain.Chefer(-1), explain.Chefer(0), explain.GradCAM()],
  ids=["chefer_last", "chefer_all", "gradcam"],
)
def test_label_decided_by_one_patch_concentrates_relevance_there(method):
  module, params, head = _one_patch_model()
  rows, cols = np.array([1, 3, 0]), np.array([2, 0, 3])
  images = np.zeros((3, 16, 16, 3), np.float32)
  for i, (r, c) in enumerate(zip(rows, cols)):
    images[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = 1.0 + i
  masks = np.zeros((3, 16, 16), np.uint8)
  for i, (r, c) in enumerate(zip(rows, cols)):
    masks[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = 1
  out = explain.make_explainer(
    module, targets.tower_linear_probe, method, target="predicted"
  )(params, head, jnp.asarray(images), None, jnp.asarray(masks))
  np.testing.assert_array_equal(np.asarray(out["classes"]), 1)
  patches = np.asarray(out["heatmap_patches"]).reshape(3, -1)
  np.testing.assert_array_equal(patches.argmax(axis=1), rows * 4 + cols)
  on_patch = patches[np.arange(3), rows * 4 + cols]
  assert (on_patch > 1e-4).all()
  off_patch = patches.copy()
  off_patch[np.arange(3), rows * 4 + cols] = 0
  assert np.abs(off_patch).max() <= 1e-6 * on_patch.min()
  pixels = np.asarray(out["heatmap"])
  # bilinear spill-over reaches half a patch outside, so most mass is on the patch
  assert (np.asarray(out["rma"]) > 0.5).all()
  for i, (r, c) in enumerate(zip(rows, cols)):
    assert (
      pixels[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4].max() == pixels[i].max()
    )


def test_integrated_gradients_are_complete():
  """sum of the attribution == S(x) - S(baseline) (trapezoid, 64 steps)."""
  module, params, images = _random_tower(
    ViTConfig(
      image_size=16, patch_size=4, width=16, depth=2, num_heads=2, mlp_dim=32
    )
  )
  rng = np.random.default_rng(4)
  head = {
    "kernel": jnp.asarray(rng.standard_normal((16, 3)), jnp.float32),
    "bias": jnp.zeros(3),
  }
  labels = jnp.array([0, 1, 2, 1])
  baseline = (-1.0, 0.5, 0.0)
  out = explain.make_explainer(
    module,
    targets.tower_linear_probe,
    explain.IntegratedGradients(steps=64, baseline=baseline),
  )(params, head, images, labels)
  total = (
    np.asarray(out["heatmap_patches"]).sum(axis=(1, 2)) * 16
  )  # 4x4-pixel patches

  def logits(x):
    return module.apply(
      {"params": params}, x, head, method=targets.tower_linear_probe
    )

  scores = np.asarray(targets.class_logit(logits(images), labels))
  base = np.asarray(
    targets.class_logit(
      logits(jnp.broadcast_to(jnp.asarray(baseline), images.shape)), labels
    )
  )
  np.testing.assert_allclose(
    total, scores - base, rtol=2e-3, atol=2e-3 * np.abs(scores - base).max()
  )


def test_batch_equals_one_by_one_and_vmap():
  module, params, images = _random_tower(
    ViTConfig(
      image_size=16, patch_size=4, width=16, depth=3, num_heads=2, mlp_dim=32
    )
  )
  head = {
    "kernel": jnp.asarray(
      np.random.default_rng(5).standard_normal((16, 3)), jnp.float32
    ),
    "bias": jnp.zeros(3),
  }
  labels = jnp.array([0, 1, 2, 1])
  explainer = explain.make_explainer(
    module, targets.tower_linear_probe, explain.Chefer(0), jit=False
  )
  jitted = jax.jit(explainer)
  together = jitted(params, head, images, labels)
  for i in range(4):
    alone = jitted(params, head, images[i : i + 1], labels[i : i + 1])
    np.testing.assert_allclose(
      together["heatmap"][i], alone["heatmap"][0], atol=1e-5
    )
  stacked = jax.jit(jax.vmap(explainer, in_axes=(None, None, 0, 0)))(
    params, head, images.reshape(2, 2, 16, 16, 3), labels.reshape(2, 2)
  )
  np.testing.assert_allclose(
    stacked["heatmap"].reshape(4, 16, 16), together["heatmap"], atol=1e-5
  )


def _dot_count(method):
  module, params, images = _random_tower(
    ViTConfig(
      image_size=16, patch_size=4, width=16, depth=3, num_heads=2, mlp_dim=32
    )
  )
  head = {"kernel": jnp.ones((16, 3)), "bias": jnp.zeros(3)}
  explainer = explain.make_explainer(module, targets.tower_linear_probe, method)
  hlo = (
    explainer.lower(params, head, images, jnp.zeros(4, jnp.int32))
    .compile()
    .as_text()
  )
  return hlo.count(" dot(")


def test_backward_pass_is_pruned_to_the_blocks_used():
  counts = {start: _dot_count(explain.Chefer(start)) for start in (-1, 0)}
  forward_only = _dot_count(explain.Rollout())
  assert forward_only < counts[-1] < counts[0], (forward_only, counts)


def test_errors_name_the_problem():
  module, params, images = _random_tower()
  head = {"kernel": jnp.ones((8, 2)), "bias": jnp.zeros(2)}
  with pytest.raises(ValueError, match="start_layer 1 is out of range"):
    explain.make_explainer(
      module, targets.tower_linear_probe, explain.Chefer(1)
    )(params, head, images, jnp.zeros(4, jnp.int32))
  with pytest.raises(ValueError, match=r"images must be \[B, 16, 16, 3\]"):
    explain.make_explainer(module, targets.tower_linear_probe, "chefer")(
      params, head, images[:, :8], jnp.zeros(4, jnp.int32)
    )
  with pytest.raises(ValueError, match=r"unknown heatmap 'gradcam\+\+'"):
    explain.HEATMAPS["gradcam++"]
  with pytest.raises(ValueError, match="target"):
    explain.make_explainer(
      module, targets.tower_linear_probe, "chefer", target="top5"
    )
  with pytest.raises(ValueError, match="needs labels"):
    explain.make_explainer(module, targets.tower_linear_probe, "chefer")(
      params, head, images
    )


def test_study_preset_and_config_names():
  assert (
    explain.study_method("zs")
    == explain.Chefer(-1)
    == explain.study_method("flcp")
  )
  assert (
    explain.study_method("lp")
    == explain.Chefer(0)
    == explain.study_method("ft")
  )
  with pytest.raises(ValueError, match="pick a method"):
    explain.study_method("coop")
  assert explain.HEATMAPS["integrated_gradients"](
    steps=4, rule="right"
  ) == explain.IntegratedGradients(steps=4, rule="right")
  with pytest.raises(ValueError, match="rule"):
    explain.IntegratedGradients(rule="simpson")


def test_heatmaps_registry_builds_each_heatmap_by_name():
  classes = {
    "chefer": explain.Chefer,
    "rollout": explain.Rollout,
    "gradcam": explain.GradCAM,
    "input_gradients": explain.InputGradients,
    "gradient_x_input": explain.GradientXInput,
    "integrated_gradients": explain.IntegratedGradients,
    "random": explain.Random,
  }
  assert tuple(explain.HEATMAPS) == tuple(classes)
  for name, cls in classes.items():
    assert explain.HEATMAPS[name] is cls
    assert cls.name == name
    assert "name" not in {f.name for f in dataclasses.fields(cls)}
  assert explain.HEATMAPS["gradcam"](layer=1) == explain.GradCAM(layer=1)


def test_heatmaps_sharing_an_option_agree_on_its_default():
  """The run config takes one default per option name from the dataclasses."""
  defaults = {}
  for name, heatmap in explain.HEATMAPS.items():
    for field in dataclasses.fields(heatmap):
      defaults.setdefault(field.name, {})[name] = field.default
  shared = {option: d for option, d in defaults.items() if len(d) > 1}
  assert {"chefer", "rollout"} <= set(shared["start_layer"])
  for option, by_heatmap in shared.items():
    assert len(set(by_heatmap.values())) == 1, (option, by_heatmap)
  assert explain.Chefer() == explain.Chefer(0) != explain.study_method("zs")
