"""Tiny training runs for tests/train: a config builder and a subprocess entry point.

    python tests/train/train_worker.py '<json: workdir, data_dir, method, overrides,
                                         params_out, distributed>'

runs `train_and_evaluate` and writes the final model params and head to
`params_out` (npz, keys = parameter paths).
"""

import importlib.util
import json
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
WORKER_PATH = pathlib.Path(__file__).resolve()


def load_config_module():
  spec = importlib.util.spec_from_file_location(
    "configs_train", REPO / "configs" / "train.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def tiny_config(method: str, data_dir: str, **overrides):
  """A CLIP-architecture model at 16 px, one block per tower, on synthetic 16 px images."""
  config = load_config_module().get_config(f"method={method},model=tiny")
  config.model.update(
    dict(
      image_size=16,
      patch_size=8,
      width=32,
      depth=1,
      num_heads=2,
      mlp_dim=64,
      context_length=16,
      text_width=32,
      text_depth=1,
      text_heads=2,
      text_mlp_dim=64,
      embed_dim=16,
    )
  )
  config.dataset.data_dir = data_dir
  config.dataset.builder_kwargs.update(
    dict(image_size=16, train_size=64, test_size=32)
  )
  config.pp_train = "normalize('clip')|keep('image', 'label')"
  config.pp_eval = config.pp_train
  config.batch_size = (
    64  # the whole train split: every step sees the same examples
  )
  config.total_steps = 6
  config.log_every = 1
  config.eval_split = ""
  config.optim.lr = 1e-3 if method in ("flcp", "ft") else 1e-2
  config.checkpoint.every_steps = 1000
  config.input_threads = 1
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split(".")
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config


def flat_params(workdir: str, step=None) -> dict:
  """{'params/...' or 'head/...': array} of a checkpoint's train state."""
  from rationality_jax import optim
  from rationality_jax import train

  state = train.read_checkpoint(workdir, step, items=("state",))["state"]
  return dict(
    optim.named_leaves({"params": state["params"], "head": state["head"]})
  )


def main(spec: dict):
  import jax

  from rationality_jax import train

  overrides = dict(spec.get("overrides", {}))
  if spec.get("distributed"):
    overrides.update(
      {
        "distributed.initialize": True,
        "distributed.cpu_collectives": "gloo",
        **spec["distributed"],
      }
    )
  config = tiny_config(spec["method"], spec["data_dir"], **overrides)
  result = train.train_and_evaluate(config, spec["workdir"])
  if spec.get("params_out"):
    params = flat_params(
      spec["workdir"]
    )  # every process: orbax reads collectively
    if jax.process_index() == 0:
      import numpy as np

      np.savez(spec["params_out"], **params)
  print(
    "RESULT "
    + json.dumps(
      {
        "losses": result["losses"],
        "devices": jax.device_count(),
        "processes": jax.process_count(),
      }
    ),
    flush=True,
  )


if __name__ == "__main__":
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  main(json.loads(sys.argv[1]))
