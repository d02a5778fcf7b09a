"""Two processes building one dataset into one data_dir take turns: the
second waits on the first's lock, then finds the dataset prepared."""

import os
import subprocess
import sys
import textwrap
import time

from rationality_jax.data import sources
from rationality_jax.data.builders import base

CONFIG = dict(train_size=40, test_size=10, image_size=16)

# The first builder: announces it is generating, then generates slowly.
FIRST = textwrap.dedent(
  """
  import sys, time
  from rationality_jax.data import sources
  from rationality_jax.data.builders import synthetic_rationality as syn

  data_dir, started = sys.argv[1], sys.argv[2]
  generate = syn.SyntheticRationality._generate_examples

  def slowly(self, *args):
    for i, item in enumerate(generate(self, *args)):
      if i == 0:
        open(started, "w").close()
        time.sleep(3)
      yield item

  syn.SyntheticRationality._generate_examples = slowly
  builder = sources.build("synthetic_rationality", data_dir, **CONFIG)
  print("first built", builder.info.splits["train"].num_examples)
  """
).replace("**CONFIG", ", ".join(f"{k}={v}" for k, v in CONFIG.items()))


def test_a_second_build_waits_for_the_first_and_reuses_it(
  tmp_path, monkeypatch, caplog
):
  data_dir, started = tmp_path / "data", tmp_path / "started"
  first = subprocess.Popen(
    [sys.executable, "-c", FIRST, str(data_dir), str(started)],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env=dict(os.environ),
  )
  try:
    deadline = time.monotonic() + 120
    while not started.exists():
      assert first.poll() is None, first.communicate()
      assert time.monotonic() < deadline, "the first build never started"
      time.sleep(0.05)
    generated = []
    monkeypatch.setattr(
      base.MaskedImageBuilder,
      "_log_download_bytes",
      lambda self: generated.append(self.name),
    )
    builder = sources.build("synthetic_rationality", data_dir, **CONFIG)
  finally:
    out, err = first.communicate(timeout=120)
  assert first.returncode == 0, err
  assert out.strip() == "first built 40"
  # This build started while the first was generating: it waited, then
  # reused the first's dataset instead of making one.
  assert "by another process; waiting for it" in caplog.text
  assert generated == []
  assert builder.info.splits["train"].num_examples == 40
  assert "is being built into" not in err
  source = sources.get_source(
    "synthetic_rationality", "test", data_dir, **CONFIG
  )
  assert len(source) == 10
  lock = data_dir / (
    ".synthetic_rationality.image_size-16_test_size-10_train_size-40.lock"
  )
  assert lock.exists()
