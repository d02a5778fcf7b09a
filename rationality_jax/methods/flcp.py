"""FLCP (FLYP, "finetune like you pretrain"): both towers, symmetric contrastive loss.

Each image's caption is "a photo of a {label}"; the loss is CLIP's symmetric
cross-entropy over the batch's image x caption logits (`losses.contrastive`).
Temperature (``config.flcp``): ``temperature`` > 0 fixes the multiplier at
1/temperature; 0 trains the model's own
(CLIP ``logit_scale``, ALBEF/BLIP ``temp`` clipped to ``temp_range``, BLIP's
[0.001, 0.5]); -1 (default) is the release's choice per family: CLIP fixed at
0.07, ALBEF/BLIP learnable. ``targets``: 'diagonal' (image i <-> caption i, FLYP and the
release) or 'same_label' (mass spread over the batch's identical captions).

Training needs no head (``{}``); the prediction is the zero-shot head rebuilt
from the fine-tuned text tower (`eval_head`).
"""

from rationality_jax.explain import targets
from rationality_jax.methods import heads
from rationality_jax.methods.base import Method
from rationality_jax.methods.base import fixed_temperature

TOWERS = r"params/(vision|text|vision_proj|text_proj|text_pooler)/.*"


def trainable(config, model_config) -> str:
  if fixed_temperature(config, model_config):
    return TOWERS
  return TOWERS + r"|params/(logit_scale|temp)"


def init_head(init):
  del init
  return {}


def eval_head(module, params, head, task):
  del head
  return {"class_embeddings": heads.zero_shot_embeddings(module, params, task)}


METHOD = Method(
  name="flcp",
  trainable=trainable,
  init_head=init_head,
  classifier=targets.zero_shot,
  loss="contrastive",
  eval_head=eval_head,
  options={
    "temperature": -1.0,
    "targets": "diagonal",
    "temp_range": (0.001, 0.5),
  },
  choices={"targets": ("diagonal", "same_label")},
  study_lr=1e-5,
)
