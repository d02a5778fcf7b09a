"""Counts summed over two JAX processes (jax.distributed on localhost, CPU)."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

from rationality_jax import metrics

WORKER = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address="localhost:" + sys.argv[2],
                               num_processes=2, process_id=int(sys.argv[1]))
    import numpy as np
    from rationality_jax import metrics
    rng = np.random.default_rng(int(sys.argv[1]))
    rma, correct = rng.random(10).astype(np.float32), rng.random(10) < 0.5
    rma[0] = np.nan
    counts = metrics.rationality_counts(correct, metrics.valid_evidence(rma))
    print(json.dumps(counts.sum_over_hosts().as_dict()))
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_sum_over_hosts_matches_all_samples():
  port = str(_free_port())
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  workers = [
    subprocess.Popen(
      [sys.executable, "-c", WORKER, str(i), port],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]
  outputs = [w.communicate(timeout=240) for w in workers]
  for w, (_, err) in zip(workers, outputs):
    assert w.returncode == 0, err[-3000:]
  totals = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
  rma, correct = [], []
  for i in range(2):
    rng = np.random.default_rng(i)
    r, c = rng.random(10).astype(np.float32), rng.random(10) < 0.5
    r[0] = np.nan
    rma.append(r)
    correct.append(c)
  expected = metrics.rationality_counts(
    np.concatenate(correct), metrics.valid_evidence(np.concatenate(rma))
  ).as_dict()
  assert totals[0] == totals[1] == expected
  assert expected["right_undefined"] + expected["wrong_undefined"] == 2
