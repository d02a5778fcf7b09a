r"""Self-check of the metrics on a generated problem with a known answer.

    python -m rationality_jax.main --config=configs/metrics_selfcheck.py \
        --workdir=/tmp/selfcheck

Builds `num_samples` heatmaps whose RMA is known by construction (a fraction
`rma_i` of each map's mass placed on its mask), a random correct/wrong vector,
and checks RMA, counts, PT, IR and accuracy from jitted JAX against a plain
numpy computation. Writes `selfcheck.json`; exits non-zero on a mismatch.
Expected: "all checks passed" and, with the defaults, PT and IR of about 0.5.
"""

import ml_collections


def get_config(arg=None):
  del arg
  config = ml_collections.ConfigDict()
  config.mode = "selfcheck"
  config.seed = 0
  config.num_samples = 512
  config.image_size = 32
  config.threshold = 0.5
  config.tolerance = 1e-5
  return config
