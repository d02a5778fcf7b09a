"""The release's CLIP zero-shot evaluation on CUB, rebuilt from its description.

The authors' release (deep-real/vlm-pred-rationality, `prediction_rationality/`)
runs, for one CLIP on CUB-200-2011, three scripts; each step below is
written here from what those files do (described in docs/release.md), not
copied from them, with PyTorch, PIL and numpy only (torchvision would
break this environment's transformers, so its four transforms are spelt
out with PIL and torch):

1. test_pred_vlm/zs_flcp.py: the test images (utils/CUB_dataset.py:
   ``ImageFolder`` of images/, ``Subset`` of the positions whose
   train_test_split.txt flag is 0, Resize(256), CenterCrop(224), ToTensor,
   Normalize with ImageNet's mean/std) through ``encode_image``; prompts
   "a photo of a {name}" (names from classes.txt: the part after the dot,
   '_' -> ' ', lowercased) through ``encode_text``; both L2-normalized;
   prediction = argmax of 100 x the cosines (softmax + topk(1)).
2. test_rationale_vlm/clip_zs_flcp_cub.py: per test image, the logit of the
   label's prompt alone (``model(image, text)``); Chefer relevance of the
   last block (utils/xml_analysis.py ``interpret``, start_layer=-1:
   R = I + mean_heads(clamp(dS/dA * A, 0)) @ I, heatmap R[0, 1:]);
   ``show_image_relevance``: the 14 x 14 map bilinearly upsampled to 224
   (``F.interpolate``, align_corners=False), then min-max normalized in
   numpy (a constant map is 0 / 0 = NaN); the mask: the segmentation PNG
   through ``ImageFolder`` (RGB), Resize(256), CenterCrop(224), ToTensor,
   the mean over channels cast to uint8 (1 only where all was 255);
   ``eval_rma``: es = sum(H * M) / sum(H), valid = 0 if es < 0.5 else 1
   (NaN: 1).
3. PT_IR_analysis.py: correct = prediction == label, the four cells from
   (correct, valid), PT = RR / (RR + RW), IR = RR / (RR + WR).

On a CPU ``clip.load`` casts the float16 checkpoint to float32 (``if
str(device) == "cpu": model.float()``), so this reference computes in
float32 from the checkpoint's float16 values, as the release does there.
The text tower's tokens come from the project's CLIP tokenizer (its parity
with OpenAI's ``simple_tokenizer`` is tested in tests/models); everything
else is independent of rationality_jax.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from PIL import Image
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif")


# ------------------------------------------------------------- data ----


def image_folder(root: str) -> list[tuple[str, int]]:
  """(path, class index) as torchvision's ImageFolder lists them: class
  folders sorted, then the files of each (walked, sorted) with an image
  extension."""
  classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
  samples = []
  for index, name in enumerate(classes):
    for directory, _, files in sorted(os.walk(os.path.join(root, name))):
      for file in sorted(files):
        if file.lower().endswith(IMAGE_EXTENSIONS):
          samples.append((os.path.join(directory, file), index))
  return samples


def load_rgb(path: str) -> Image.Image:
  """ImageFolder's loader: PIL, converted to RGB (grayscale too)."""
  with open(path, "rb") as f:
    return Image.open(f).convert("RGB")


def resize(image: Image.Image, size: int) -> Image.Image:
  """torchvision Resize(size) of a PIL image: the short side to `size`, the
  long side int(size * long / short), PIL bilinear."""
  w, h = image.size
  if w <= h:
    return image.resize((size, int(size * h / w)), Image.BILINEAR)
  return image.resize((int(size * w / h), size), Image.BILINEAR)


def center_crop(image: Image.Image, size: int) -> Image.Image:
  """torchvision CenterCrop(size): offsets round((H - size) / 2)."""
  w, h = image.size
  top = round((h - size) / 2.0)
  left = round((w - size) / 2.0)
  return image.crop((left, top, left + size, top + size))


def to_tensor(image: Image.Image) -> torch.Tensor:
  """torchvision ToTensor: [3, H, W] float32 in [0, 1]."""
  array = np.asarray(image, np.uint8)
  return torch.from_numpy(array.transpose(2, 0, 1).copy()).float() / 255


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
  mean = torch.tensor(mean, dtype=x.dtype)[:, None, None]
  std = torch.tensor(std, dtype=x.dtype)[:, None, None]
  return (x - mean) / std


def test_image(path: str) -> torch.Tensor:
  """utils/CUB_dataset.py's test transform: [3, 224, 224] float32."""
  image = center_crop(resize(load_rgb(path), 256), 224)
  return normalize(to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)


def test_mask(path: str) -> np.ndarray:
  """The segmentation as clip_zs_flcp_cub.py reads it: [224, 224] uint8."""
  tensor = to_tensor(center_crop(resize(load_rgb(path), 256), 224))
  return np.mean(tensor.permute(1, 2, 0).numpy(), axis=2).astype(np.uint8)


@dataclasses.dataclass
class CubTest:
  """The release's CUB test set: ids (``class/file`` stems), labels, images
  [N, 3, 224, 224], masks [N, 224, 224] uint8, prompt class names."""

  ids: list[str]
  labels: np.ndarray
  images: torch.Tensor
  masks: np.ndarray
  class_names: list[str]


def cub_test(root: str) -> CubTest:
  """`root` holds CUB_200_2011/ and segmentations/, extracted."""
  base = os.path.join(root, "CUB_200_2011")
  with open(os.path.join(base, "train_test_split.txt")) as f:
    flags = [int(line[:-1].split(" ")[1]) for line in f.readlines()]
  test_positions = [i for i, flag in enumerate(flags) if flag == 0]
  images = image_folder(os.path.join(base, "images"))
  segs = image_folder(os.path.join(root, "segmentations"))
  with open(os.path.join(base, "classes.txt")) as f:
    names = [
      line[:-1].split(" ")[1].split(".")[1].replace("_", " ").lower()
      for line in f.readlines()
    ]
  chosen = [images[i] for i in test_positions]
  ids = [
    os.path.splitext(os.path.relpath(p, os.path.join(base, "images")))[0]
    for p, _ in chosen
  ]
  return CubTest(
    ids=ids,
    labels=np.asarray([label for _, label in chosen]),
    images=torch.stack([test_image(p) for p, _ in chosen]),
    masks=np.stack([test_mask(segs[i][0]) for i in test_positions]),
    class_names=names,
  )


# ------------------------------------------------------------ model ----


class ReleaseCLIP:
  """OpenAI CLIP (ViT image tower) from an OpenAI state dict, in float32,
  with every attention's probabilities kept for Chefer's relevance."""

  def __init__(self, state: dict):
    self.w = {k: v.detach().float() for k, v in state.items()}
    self.attention = []

  def _block(self, prefix: str, x: torch.Tensor, mask=None, keep=False):
    w = self.w
    width = x.shape[-1]
    heads = width // 64
    y = F.layer_norm(
      x, (width,), w[f"{prefix}ln_1.weight"], w[f"{prefix}ln_1.bias"]
    )
    qkv = (
      y @ w[f"{prefix}attn.in_proj_weight"].T + w[f"{prefix}attn.in_proj_bias"]
    )
    q, k, v = qkv.chunk(3, dim=-1)
    batch, tokens, _ = x.shape

    def split(t):
      return t.reshape(batch, tokens, heads, width // heads).transpose(1, 2)

    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(-1, -2) / (width // heads) ** 0.5
    if mask is not None:
      scores = scores + mask
    probs = scores.softmax(dim=-1)
    if keep:
      probs.retain_grad()
      self.attention.append(probs)
    out = (probs @ v).transpose(1, 2).reshape(batch, tokens, width)
    x = (
      x
      + out @ w[f"{prefix}attn.out_proj.weight"].T
      + w[f"{prefix}attn.out_proj.bias"]
    )
    y = F.layer_norm(
      x, (width,), w[f"{prefix}ln_2.weight"], w[f"{prefix}ln_2.bias"]
    )
    y = y @ w[f"{prefix}mlp.c_fc.weight"].T + w[f"{prefix}mlp.c_fc.bias"]
    y = y * torch.sigmoid(1.702 * y)  # QuickGELU
    y = y @ w[f"{prefix}mlp.c_proj.weight"].T + w[f"{prefix}mlp.c_proj.bias"]
    return x + y

  def _depth(self, prefix: str) -> int:
    return 1 + max(
      int(k[len(prefix) :].split(".")[0])
      for k in self.w
      if k.startswith(prefix)
    )

  def encode_image(self, images: torch.Tensor, keep=False) -> torch.Tensor:
    """[B, 3, S, S] -> [B, E]; `keep` records each block's attention."""
    w = self.w
    self.attention = []
    if keep:  # the release's weights require gradients; here the image does
      images = images.detach().requires_grad_(True)
    x = F.conv2d(
      images,
      w["visual.conv1.weight"],
      stride=w["visual.conv1.weight"].shape[-1],
    )
    x = x.flatten(2).transpose(1, 2)
    cls = w["visual.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + w["visual.positional_embedding"]
    width = x.shape[-1]
    x = F.layer_norm(
      x, (width,), w["visual.ln_pre.weight"], w["visual.ln_pre.bias"]
    )
    prefix = "visual.transformer.resblocks."
    for b in range(self._depth(prefix)):
      x = self._block(f"{prefix}{b}.", x, keep=keep)
    x = F.layer_norm(
      x[:, 0], (width,), w["visual.ln_post.weight"], w["visual.ln_post.bias"]
    )
    return x @ w["visual.proj"]

  def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
    """[T, L] token ids -> [T, E] (the features at the end-of-text token)."""
    w = self.w
    x = w["token_embedding.weight"][ids] + w["positional_embedding"]
    length = ids.shape[1]
    mask = torch.full((length, length), float("-inf")).triu_(1)
    prefix = "transformer.resblocks."
    for b in range(self._depth(prefix)):
      x = self._block(f"{prefix}{b}.", x, mask=mask)
    width = x.shape[-1]
    x = F.layer_norm(x, (width,), w["ln_final.weight"], w["ln_final.bias"])
    return (
      x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ w["text_projection"]
    )


def load_openai(path: str) -> ReleaseCLIP:
  """An OpenAI TorchScript archive, as clip.load reads it on a CPU."""
  return ReleaseCLIP(torch.jit.load(path, map_location="cpu").state_dict())


# -------------------------------------------------------- the steps ----


def zero_shot_predictions(model, images, text_ids) -> np.ndarray:
  """test_pred_vlm/zs_flcp.py: [N] argmax of 100 x cosine (softmax, topk 1)."""
  with torch.no_grad():
    image = model.encode_image(images)
    text = model.encode_text(text_ids)
  image = image / image.norm(dim=-1, keepdim=True)
  text = text / text.norm(dim=-1, keepdim=True)
  similarity = (100.0 * image @ text.T).softmax(dim=-1)
  return similarity.topk(1, dim=1).indices[:, 0].numpy()


def interpret(model, image, text_ids, start_layer: int = -1) -> torch.Tensor:
  """utils/xml_analysis.py ``interpret`` for one image and its label's prompt:
  [N - 1] relevance of the patches (Chefer, blocks from `start_layer`)."""
  image_features = model.encode_image(image[None], keep=True)
  text_features = model.encode_text(text_ids)
  image_features = image_features / image_features.norm(dim=1, keepdim=True)
  text_features = text_features / text_features.norm(dim=1, keepdim=True)
  logit = model.w["logit_scale"].exp() * image_features @ text_features.T
  score = logit[0, 0]
  blocks = model.attention
  start = len(blocks) - 1 if start_layer == -1 else start_layer
  tokens = blocks[0].shape[-1]
  relevance = torch.eye(tokens)
  for probs in blocks[start:]:
    grad = torch.autograd.grad(score, [probs], retain_graph=True)[0]
    cam = (grad * probs.detach()).clamp(min=0).mean(dim=1)[0]
    relevance = relevance + cam @ relevance
  return relevance[0, 1:].detach()


def show_image_relevance(
  relevance: torch.Tensor, size: int = 224
) -> np.ndarray:
  """[size, size] float32: upsampled bilinearly, min-max in numpy (0/0 NaN)."""
  grid = int(relevance.numel() ** 0.5)
  up = F.interpolate(
    relevance.reshape(1, 1, grid, grid), size=size, mode="bilinear"
  )
  heatmap = up.reshape(size, size).numpy()
  with np.errstate(invalid="ignore", divide="ignore"):
    return (heatmap - heatmap.min()) / (heatmap.max() - heatmap.min())


def eval_rma(heatmap: np.ndarray, mask: np.ndarray) -> float:
  """es = sum(H * M) / sum(H) (numpy; 0 / 0 = NaN)."""
  with np.errstate(invalid="ignore", divide="ignore"):
    return float(np.sum(heatmap * mask) / np.sum(heatmap))


def valid(rma: float, threshold: float = 0.5) -> int:
  """``0 if es < cls_thres else 1``: NaN is valid."""
  return 0 if rma < threshold else 1


def pt_ir(correct, valid_flags) -> dict:
  """PT_IR_analysis.py: the four cells and PT, IR."""
  correct, valid_flags = np.asarray(correct), np.asarray(valid_flags)
  rr = int(np.sum((correct == 1) & (valid_flags == 1)))
  rw = int(np.sum((correct == 1) & (valid_flags == 0)))
  wr = int(np.sum((correct == 0) & (valid_flags == 1)))
  ww = int(np.sum((correct == 0) & (valid_flags == 0)))
  return {
    "rr": rr,
    "rw": rw,
    "wr": wr,
    "ww": ww,
    "pt": rr / (rr + rw) if rr + rw else float("nan"),
    "ir": rr / (rr + wr) if rr + wr else float("nan"),
  }


def evaluate_cub_zero_shot(checkpoint: str, root: str, tokenizer) -> dict:
  """The three steps on an extracted CUB: per-sample and summary values.

  Returns:
    {'ids', 'labels', 'prediction', 'rma', 'valid', 'mask_area',
    'heatmaps' ([N, 224, 224]), **pt_ir}.
  """
  model = load_openai(checkpoint)
  data = cub_test(root)
  prompts = [f"a photo of a {c}" for c in data.class_names]
  text_ids = torch.from_numpy(np.asarray(tokenizer(prompts)[0], np.int64))
  prediction = zero_shot_predictions(model, data.images, text_ids)
  rmas, heatmaps = [], []
  for image, label, mask in zip(data.images, data.labels, data.masks):
    relevance = interpret(model, image, text_ids[label : label + 1])
    heatmap = show_image_relevance(relevance)
    heatmaps.append(heatmap)
    rmas.append(eval_rma(heatmap, mask))
  valid_flags = np.asarray([valid(r) for r in rmas])
  correct = (prediction == data.labels).astype(int)
  return {
    "ids": data.ids,
    "labels": data.labels,
    "prediction": prediction,
    "rma": np.asarray(rmas),
    "valid": valid_flags,
    "mask_area": data.masks.reshape(len(data.ids), -1).sum(axis=1),
    "heatmaps": np.stack(heatmaps),
    **pt_ir(correct, valid_flags),
  }
