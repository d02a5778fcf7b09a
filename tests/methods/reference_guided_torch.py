"""PyTorch autograd reference of the guided and rrr losses (test-only code).

On a `transformers` CLIPModel with eager attention: the relevance is Chefer's
map computed from ``torch.autograd.grad(score, attentions,
create_graph=True)`` (so ``loss.backward()`` differentiates through it, the
double backward), upsampled with ``F.interpolate`` and min-max normalized
(`tests.explain.reference_torch.postprocess`, differentiable), and scored
with RobustViT's two MSE terms; rrr's penalty is the squared input gradient
of the summed log-probabilities outside the mask, again with
``create_graph=True``. Shares no code with `rationality_jax.methods.guidance`.
Images are NCHW.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.explain import reference_torch as ref


def _unit(x):
  return x / x.norm(dim=-1, keepdim=True)


def _contrastive(logits):
  targets = torch.arange(logits.shape[0])
  return (
    F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)
  ) / 2


def _text(model, text):
  """Projected caption embeddings, unit norm (first end token pooled)."""
  out = model.text_model(input_ids=text[0], attention_mask=text[1])
  return _unit(model.text_projection(out.pooler_output))


def _weighted_mean(values, weights):
  return (values * weights).sum() / weights.sum().clamp(min=1.0)


def chefer_heatmap(score, attentions, start_layer, grid, size):
  """Chefer relevance of ``score`` (a scalar summing per-sample scores),
  differentiable: R = prod (I + mean_h clamp(dS/dA * A, 0)); R[CLS, 1:]."""
  start = start_layer % len(attentions)
  used = attentions[start:]
  grads = torch.autograd.grad(score, used, create_graph=True)
  batch, _, tokens, _ = used[0].shape
  relevance = torch.eye(tokens).expand(batch, tokens, tokens)
  for attention, grad in zip(used, grads):
    cam = (grad * attention).clamp(min=0).mean(dim=1)
    relevance = relevance + torch.bmm(cam, relevance)
  patches = relevance[:, 0, 1:].reshape(batch, grid, grid)
  return ref.postprocess(patches, size)


def relevance_terms(heatmap, masks, background, foreground):
  outside = ((heatmap * (1 - masks)) ** 2).mean(dim=(-2, -1))
  inside = ((heatmap * masks - masks) ** 2).mean(dim=(-2, -1))
  return background * outside + foreground * inside


def guided_loss(model, pixel_values, labels, masks, weights, o, text=None):
  """The guided loss; ``text`` (ids, mask) of the batch's captions for the
  contrastive objective, else ``o['head']`` (kernel, bias) for the linear
  one. ``o``: start_layer, lambda_seg, lambda_acc, background, foreground,
  temperature. Returns (loss, task loss, relevance)."""
  out = model.vision_model(pixel_values=pixel_values, output_attentions=True)
  grid = (
    model.config.vision_config.image_size
    // model.config.vision_config.patch_size
  )
  if text is not None:
    captions = _text(model, text)
    image = _unit(model.visual_projection(out.pooler_output))
    cosine = image @ captions.T
    explained = (model.logit_scale.exp().detach() * cosine).diagonal().sum()
    task = _contrastive(cosine / o["temperature"])
  else:
    kernel, bias = o["head"]
    logits = model.visual_projection(out.pooler_output) @ kernel + bias
    explained = logits.gather(1, labels[:, None]).sum()
    task = F.cross_entropy(logits, labels)
  heatmap = chefer_heatmap(
    explained, out.attentions, o["start_layer"], grid, pixel_values.shape[-2:]
  )
  relevance = _weighted_mean(
    relevance_terms(heatmap, masks, o["background"], o["foreground"]), weights
  )
  return o["lambda_acc"] * task + o["lambda_seg"] * relevance, task, relevance


def rrr_loss(
  model, pixel_values, text, masks, weights, lambda_rrr, temperature
):
  """Ross et al.'s loss on the contrastive objective: (loss, task, penalty)."""
  pixel_values = pixel_values.detach().clone().requires_grad_(True)
  captions = _text(model, text)
  out = model.vision_model(pixel_values=pixel_values)
  image = _unit(model.visual_projection(out.pooler_output))
  logits = image @ captions.T / temperature
  (gradient,) = torch.autograd.grad(
    F.log_softmax(logits, dim=-1).sum(), pixel_values, create_graph=True
  )
  penalty = ((gradient * (1 - masks[:, None])) ** 2).sum(dim=(1, 2, 3))
  penalty = _weighted_mean(penalty, weights)
  task = _contrastive(logits)
  return task + lambda_rrr * penalty, task, penalty
