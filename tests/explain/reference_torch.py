"""Independent PyTorch reference of every heatmap method, on a `transformers`
CLIPModel (or BlipModel: same ``vision_model`` / ``visual_projection`` /
``logit_scale`` layout).

Used by the parity tests and `benchmarks/heatmaps.py`; needs the ``torch``
extra. It shares no code with the JAX side: the model is the HF CLIP vision
tower run with eager attention and ``output_attentions=True`` (the returned
attention tensors are the ones multiplied with V, so ``retain_grad`` on them
gives dS/dA), gradients come from plain ``torch.autograd``, post-processing is
``F.interpolate(mode='bilinear', align_corners=False)`` + per-image min-max,
exactly what the study's release does.

The head mirrors `rationality_jax.explain.targets`: ``{'class_embeddings':
[C, E]}`` gives the zero-shot logits ``exp(logit_scale) *
cos(visual_projection(pooler_output), e_c)``; ``{'kernel': [F, C], 'bias':
[C]}`` a linear probe on the projected embedding (F = projection dim) or on the
pooled CLS token (F = vision width). The score is the logit of ``labels``.
Images are NCHW here (PyTorch's layout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _logits(model, pixel_values, head, output_attentions=False):
  out = model.vision_model(
    pixel_values=pixel_values, output_attentions=output_attentions
  )
  if "class_embeddings" in head:
    image = model.visual_projection(out.pooler_output)
    image = image / image.norm(dim=-1, keepdim=True)
    text = head["class_embeddings"]
    text = text / text.norm(dim=-1, keepdim=True)
    return model.logit_scale.exp() * image @ text.T, out
  kernel, bias = head["kernel"], head["bias"]
  features = out.pooler_output
  if kernel.shape[0] == model.config.projection_dim:
    features = model.visual_projection(features)
  return features @ kernel + bias, out


def postprocess(patch_maps, size):
  """[B, g, g] -> upsampled [B, S, S], then per-image min-max (constant -> 0)."""
  pixels = F.interpolate(
    patch_maps[:, None], size=size, mode="bilinear", align_corners=False
  )[:, 0]
  return minmax(pixels)


def minmax(pixels):
  low = pixels.amin(dim=(-2, -1), keepdim=True)
  spread = pixels.amax(dim=(-2, -1), keepdim=True) - low
  return torch.where(
    spread > 0,
    (pixels - low) / torch.where(spread > 0, spread, 1.0),
    torch.zeros_like(pixels),
  )


def rma(heatmaps, masks):
  """sum(H * M) / sum(H) per image (H >= 0 here); 0 when sum(H) == 0."""
  inside = (heatmaps * masks).sum(dim=(-2, -1))
  total = heatmaps.sum(dim=(-2, -1))
  return torch.where(
    total > 0,
    inside / torch.where(total > 0, total, 1.0),
    torch.zeros_like(total),
  )


def _grid(model):
  cfg = model.config.vision_config
  return cfg.image_size // cfg.patch_size


def _prepare(model, pixel_values, weights_grad):
  model.eval()
  model.requires_grad_(weights_grad)
  pixel_values = pixel_values.detach().clone()
  # With frozen weights the attention only needs a gradient if the input has one.
  pixel_values.requires_grad_(not weights_grad)
  return pixel_values


def chefer(
  model, pixel_values, head, labels, start_layer=-1, weights_grad=True
):
  """Chefer relevance; returns (logits, patch map [B, g, g] raw, heatmap [B, S, S]).

  weights_grad: True keeps ``requires_grad`` on every weight (what the study's
  release does: autograd then forms every weight gradient too); False freezes
  the weights and differentiates through the input instead.
  """
  pixel_values = _prepare(model, pixel_values, weights_grad)
  logits, out = _logits(model, pixel_values, head, output_attentions=True)
  attentions = out.attentions
  for attention in attentions:
    attention.retain_grad()
  score = logits.gather(1, labels[:, None]).sum()
  model.zero_grad(set_to_none=True)
  score.backward()
  depth = len(attentions)
  start = start_layer % depth
  batch, _, tokens, _ = attentions[0].shape
  relevance = (
    torch.eye(tokens, device=attentions[0].device)
    .expand(batch, tokens, tokens)
    .clone()
  )
  for attention in attentions[start:]:
    cam = (attention.grad * attention).clamp(min=0).mean(dim=1)
    relevance = relevance + torch.bmm(cam, relevance)
  grid = _grid(model)
  patches = relevance[:, 0, 1:].reshape(batch, grid, grid).detach()
  return logits.detach(), patches, postprocess(patches, pixel_values.shape[-2:])


def rollout(model, pixel_values, head, residual=0.5):
  """Abnar & Zuidema's rollout over all blocks; (logits, patches, heatmap)."""
  with torch.no_grad():
    logits, out = _logits(model, pixel_values, head, output_attentions=True)
    batch, _, tokens, _ = out.attentions[0].shape
    eye = torch.eye(tokens, device=out.attentions[0].device)
    rolled = eye.expand(batch, tokens, tokens)
    for attention in out.attentions:
      mixed = residual * eye + (1 - residual) * attention.mean(dim=1)
      mixed = mixed / mixed.sum(dim=-1, keepdim=True)
      rolled = torch.bmm(mixed, rolled)
  grid = _grid(model)
  patches = rolled[:, 0, 1:].reshape(batch, grid, grid)
  return logits, patches, postprocess(patches, pixel_values.shape[-2:])


def gradcam(model, pixel_values, head, labels, layer=-1):
  """Grad-CAM on ``encoder.layers[layer].layer_norm1``'s output (pytorch-grad-cam's
  ViT recipe: drop CLS, weights = mean gradient over patch tokens, ReLU)."""
  pixel_values = _prepare(model, pixel_values, weights_grad=False)
  captured = {}

  def keep(module, inputs, output):
    output.retain_grad()
    captured["act"] = output

  handle = model.vision_model.encoder.layers[
    layer
  ].layer_norm1.register_forward_hook(keep)
  try:
    logits, _ = _logits(model, pixel_values, head)
    logits.gather(1, labels[:, None]).sum().backward()
  finally:
    handle.remove()
  act = captured["act"]
  weights = act.grad[:, 1:].mean(dim=1)
  cam = torch.relu((act[:, 1:] * weights[:, None]).sum(dim=-1)).detach()
  grid = _grid(model)
  patches = cam.reshape(-1, grid, grid)
  return logits.detach(), patches, postprocess(patches, pixel_values.shape[-2:])


def signed_minmax(pixels, signed="positive"):
  """Min-max of a signed map's positive part ('positive') or of the raw map."""
  return minmax(pixels.clamp(min=0) if signed == "positive" else pixels)


def input_gradients(
  model, pixel_values, head, labels, times_input=False, signed="positive"
):
  """max_c |dS/dx| (saliency) or sum_c x dS/dx (signed: see `signed_minmax`);
  returns (logits, heatmap [B, S, S])."""
  pixel_values = _prepare(model, pixel_values, weights_grad=False)
  logits, _ = _logits(model, pixel_values, head)
  logits.gather(1, labels[:, None]).sum().backward()
  grad = pixel_values.grad
  if times_input:
    return logits.detach(), signed_minmax(
      (grad * pixel_values).sum(dim=1).detach(), signed
    )
  return logits.detach(), minmax(grad.abs().amax(dim=1).detach())


def integrated_gradients(
  model,
  pixel_values,
  head,
  labels,
  steps=32,
  baseline=0.0,
  rule="trapezoid",
  signed="positive",
):
  """IG with a straight path, one backward per path point (a plain loop).

  baseline: scalar or per-channel sequence in the normalized input space.
  Returns (raw attribution map [B, S, S] summed over channels, heatmap).
  """
  model.eval()
  model.requires_grad_(False)
  base = torch.as_tensor(baseline, dtype=pixel_values.dtype).reshape(
    1, -1, 1, 1
  )
  base = base.expand_as(pixel_values)
  if rule == "trapezoid":
    points = [
      (k / steps, (0.5 if k in (0, steps) else 1.0) / steps)
      for k in range(steps + 1)
    ]
  else:
    points = [(k / steps, 1.0 / steps) for k in range(1, steps + 1)]
  total = torch.zeros_like(pixel_values)
  for alpha, weight in points:
    x = (base + alpha * (pixel_values - base)).detach().requires_grad_(True)
    logits, _ = _logits(model, x, head)
    logits.gather(1, labels[:, None]).sum().backward()
    total += weight * x.grad
  pixels = ((pixel_values - base) * total).sum(dim=1)
  return pixels, signed_minmax(pixels, signed)
