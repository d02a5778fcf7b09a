"""Tiny training runs for tests/train: a config builder and a subprocess entry point.

    python tests/train/train_worker.py '<json: workdir, data_dir, method, overrides,
                                         params_out, distributed>'

runs `train_and_evaluate` and writes the final model params and head to
`params_out` (npz, keys = parameter paths).
"""

import json
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
WORKER_PATH = pathlib.Path(__file__).resolve()


def tiny_config(method: str, data_dir: str, **overrides):
  """random:tiny (a CLIP, 2 blocks per tower) at 16 px on synthetic 16 px images."""
  from rationality_jax.run import config as config_lib

  config = config_lib.from_file(
    REPO / "configs" / "train.py", f"method={method},model=random:tiny"
  )
  config.model.image_size = 16
  config.data.dir = data_dir
  config.train_data.builder_kwargs.update(
    dict(image_size=16, train_size=64, test_size=32)
  )
  config.preprocess.update(train="resize({size})", eval="resize")
  t = config.train
  t.batch_size = 64  # the whole train split: every step sees the same examples
  t.total_steps = 6
  t.log_every = 1
  t.eval_accuracy = False
  fine_tuned = ("flcp", "ft", "guided", "guided_ft", "rrr")
  t.optim.lr = 1e-3 if method in fine_tuned else 1e-2
  t.checkpoint.every_steps = 1000
  t.input_threads = 1
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split(".")
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config


def flat_params(workdir: str, step=None) -> dict:
  """{'params/...' or 'head/...': array} of a checkpoint's train state."""
  from rationality_jax.run import checkpoints
  from rationality_jax.run import optim

  state = checkpoints.read(workdir, step, items=("state",))["state"]
  return dict(
    optim.named_leaves({"params": state["params"], "head": state["head"]})
  )


def main(spec: dict):
  import jax

  from rationality_jax.run import train

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
