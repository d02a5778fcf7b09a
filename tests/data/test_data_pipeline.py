"""Input pipeline: host shards, global sharded batches, exact resume (1, 8 devices; 2 processes)."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rationality_jax.data import pipeline
from rationality_jax.data import sources

PP = "resize(16)|random_flip_lr|normalize('imagenet')"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("synthetic")
  sources.build(
    "synthetic_rationality", d, image_size=24, train_size=50, test_size=37
  )
  return d


@pytest.fixture(scope="module")
def source(data_dir):
  return sources.get_source(
    "synthetic_rationality",
    "test",
    data_dir,
    image_size=24,
    train_size=50,
    test_size=37,
  )


def _host_positions(source, process_count, **kw):
  """{host: [(step, index, valid), ...]} with host-local numpy batches."""
  out = {}
  for h in range(process_count):
    it = pipeline.make_iterator(
      source,
      PP,
      mesh=None,
      process_index=h,
      process_count=process_count,
      num_threads=1,
      **kw,
    )
    out[h] = [
      (s, int(i), bool(v))
      for s, b in enumerate(it)
      for i, v in zip(b["index"], b["valid"])
    ]
  return out


@pytest.mark.parametrize("process_count", [1, 2, 3])
def test_hosts_are_disjoint_and_cover_the_split_once(source, process_count):
  per_host = _host_positions(
    source,
    process_count,
    batch_size=6,
    seed=3,
    shuffle=True,
    num_epochs=1,
    drop_remainder=False,
  )
  valid = [i for rows in per_host.values() for _, i, v in rows if v]
  assert sorted(valid) == list(range(37))  # every example exactly once
  steps = {h: [s for s, _, _ in rows] for h, rows in per_host.items()}
  assert all(
    len(s) == len(steps[0]) for s in steps.values()
  )  # same number of batches on every host
  assert len(set(steps[0])) == 7  # ceil(37 / 6) global batches, the last padded
  padding = [i for rows in per_host.values() for _, i, v in rows if not v]
  assert len(padding) == 7 * 6 - 37


def test_epochs_are_reshuffled_and_each_covers_the_split(source):
  rows = _host_positions(
    source, 1, batch_size=1, seed=5, shuffle=True, num_epochs=2
  )[0]
  first, second = [i for _, i, _ in rows[:37]], [i for _, i, _ in rows[37:]]
  assert sorted(first) == sorted(second) == list(range(37))
  assert first != second and first != list(range(37))
  unshuffled = _host_positions(
    source, 1, batch_size=1, seed=5, shuffle=False, num_epochs=1
  )[0]
  assert [i for _, i, _ in unshuffled] == list(range(37))


def test_augmentation_is_independent_of_host_count(source):
  one = pipeline.make_iterator(
    source, PP, batch_size=4, mesh=None, seed=9, num_epochs=1, num_threads=1
  )
  by_index = {
    int(i): img for b in one for i, img in zip(b["index"], b["image"])
  }
  two = pipeline.make_iterator(
    source,
    PP,
    batch_size=4,
    mesh=None,
    seed=9,
    num_epochs=1,
    process_index=1,
    process_count=2,
    num_threads=1,
  )
  b = next(two)
  for i, img in zip(b["index"], b["image"]):
    np.testing.assert_array_equal(img, by_index[int(i)])


def test_restored_iterator_resumes_exactly(source, tmp_path):
  kw = dict(batch_size=4, mesh="default", seed=1, shuffle=True, num_epochs=3)
  reference = list(pipeline.make_iterator(source, PP, **kw))
  assert len(reference) == 37 * 3 // 4
  it = pipeline.make_iterator(source, PP, **kw)
  for _ in range(11):
    next(it)
  it.save(tmp_path / "ckpt")
  next(it)  # progress after the save is forgotten
  resumed = pipeline.make_iterator(source, PP, **kw)
  resumed.restore(tmp_path / "ckpt")
  rest = list(resumed)
  assert len(rest) == len(reference) - 11
  for a, b in zip(reference[11:], rest):
    np.testing.assert_array_equal(
      np.asarray(a["index"]), np.asarray(b["index"])
    )
    np.testing.assert_array_equal(
      np.asarray(a["image"]), np.asarray(b["image"])
    )
    np.testing.assert_array_equal(a["id"], b["id"])
  other = pipeline.make_iterator(source, PP, **{**kw, "seed": 2})
  with pytest.raises(ValueError, match="batches would differ"):
    other.restore(tmp_path / "ckpt")


def test_worker_processes_give_the_same_batches_and_resume(source, tmp_path):
  kw = dict(batch_size=4, mesh=None, seed=1, shuffle=True, num_epochs=2)
  reference = list(pipeline.make_iterator(source, PP, **kw))
  it = pipeline.make_iterator(source, PP, num_workers=2, **kw)
  first = [next(it) for _ in range(7)]
  it.save(tmp_path / "ckpt")
  it.close()
  resumed = pipeline.make_iterator(source, PP, num_workers=2, **kw)
  resumed.restore(tmp_path / "ckpt")
  rest = list(resumed)
  resumed.close()
  assert len(rest) == len(reference) - 7
  # The workers make whole batches; every field of every batch is the
  # threads' (same positions, same order), before and after the resume.
  for a, b in zip(reference, first + rest, strict=True):
    assert sorted(a) == sorted(b)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  threads = pipeline.make_iterator(source, PP, **kw)
  with pytest.raises(ValueError, match="saved with 2 input worker processes"):
    threads.restore(tmp_path / "ckpt")
  # A state from workers that handed over single examples counts positions,
  # not batches: refused, not restored at the wrong place.
  saved = json.loads((tmp_path / "ckpt" / "process_0-of-1.json").read_text())
  per_example = dict(saved, config=dict(saved["config"]))
  del per_example["config"]["worker_unit"]
  assert it.worker_mismatch(saved) is None
  assert "single examples" in it.worker_mismatch(per_example)
  with pytest.raises(ValueError, match="single examples"):
    it.set_state(per_example)
  with pytest.raises(ValueError, match="num_workers must be >= 0"):
    pipeline.make_iterator(source, PP, num_workers=-1, **kw)


def test_orbax_checkpoint_manager_round_trip(source, tmp_path):
  import grain
  import orbax.checkpoint as ocp

  kw = dict(batch_size=4, mesh=None, seed=4, num_epochs=1)
  it = pipeline.make_iterator(source, PP, **kw)
  next(it), next(it)
  with ocp.CheckpointManager(tmp_path / "orbax") as mngr:
    mngr.save(
      2,
      args=ocp.args.Composite(
        data=grain.checkpoint.CheckpointSave(it.grain_iterator)
      ),
    )
    mngr.wait_until_finished()
  expected = next(it)["index"]
  fresh = pipeline.make_iterator(source, PP, **kw)
  with ocp.CheckpointManager(tmp_path / "orbax") as mngr:
    mngr.restore(
      2,
      args=ocp.args.Composite(
        data=grain.checkpoint.CheckpointRestore(fresh.grain_iterator)
      ),
    )
  np.testing.assert_array_equal(next(fresh)["index"], expected)


WORKER = textwrap.dedent(
  """
    import json, os, sys
    import jax, numpy as np
    mode, data_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "multiprocess":
        jax.distributed.initialize(
            coordinator_address=sys.argv[4], num_processes=2,
            process_id=int(sys.argv[5]))
    from rationality_jax.data import pipeline, sources
    src = sources.get_source("synthetic_rationality", "test", data_dir,
                             image_size=24, train_size=50, test_size=37)
    it = pipeline.make_iterator(src, "resize(16)|normalize('clip')",
                                batch_size=8, seed=0, shuffle=True,
                                num_epochs=1, drop_remainder=False)
    rows, shapes = [], []
    for b in it:
        img = b["image"]
        assert img.sharding.spec[0] == "data", img.sharding
        shapes.append([list(img.shape), len(img.sharding.device_set),
                       len(img.addressable_shards),
                       list(img.addressable_shards[0].data.shape)])
        idx = np.concatenate([np.asarray(s.data) for s in b["index"].addressable_shards])
        val = np.concatenate([np.asarray(s.data) for s in b["valid"].addressable_shards])
        rows += [[int(i), bool(v)] for i, v in zip(idx, val)]
    with open(out, "w") as f:
        json.dump({"rows": rows, "shapes": shapes,
                   "process": jax.process_index(),
                   "devices": jax.device_count()}, f)
    """
)


def _run_workers(tmp_path, data_dir, mode, n, env_extra):
  script = tmp_path / "worker.py"
  script.write_text(WORKER)
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **env_extra}
  port = None
  if mode == "multiprocess":
    with socket.socket() as s:
      s.bind(("localhost", 0))
      port = s.getsockname()[1]
  procs = []
  for p in range(n):
    args = [
      sys.executable,
      str(script),
      mode,
      str(data_dir),
      str(tmp_path / f"out{p}.json"),
    ]
    if mode == "multiprocess":
      args += [f"localhost:{port}", str(p)]
    procs.append(
      subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
      )
    )
  for p in procs:
    out, _ = p.communicate(timeout=240)
    assert p.returncode == 0, out[-3000:]
  return [json.loads((tmp_path / f"out{p}.json").read_text()) for p in range(n)]


def test_eight_forced_cpu_devices(tmp_path, data_dir):
  (res,) = _run_workers(
    tmp_path,
    data_dir,
    "single",
    1,
    {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"},
  )
  assert res["devices"] == 8
  assert res["shapes"][0] == [[8, 16, 16, 3], 8, 8, [1, 16, 16, 3]]
  assert len(res["shapes"]) == 5  # ceil(37 / 8)
  assert sorted(i for i, v in res["rows"] if v) == list(range(37))


def test_two_processes_with_jax_distributed(tmp_path, data_dir):
  results = _run_workers(
    tmp_path,
    data_dir,
    "multiprocess",
    2,
    {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
  )
  assert sorted(r["process"] for r in results) == [0, 1]
  assert all(r["devices"] == 4 for r in results)
  assert all(
    r["shapes"][0] == [[8, 16, 16, 3], 4, 2, [2, 16, 16, 3]] for r in results
  )
  per_host = [sorted(i for i, v in r["rows"] if v) for r in results]
  assert not set(per_host[0]) & set(per_host[1])
  assert sorted(per_host[0] + per_host[1]) == list(range(37))


def test_endless_iterator_crosses_epochs_without_losing_examples(source):
  it = pipeline.make_iterator(
    source, PP, batch_size=5, mesh=None, seed=2, num_epochs=None, num_threads=1
  )
  indices = [int(i) for _ in range(15) for i in next(it)["index"]]
  assert sorted(indices[:37]) == sorted(indices[37:74]) == list(range(37))
  with pytest.raises(TypeError, match="infinite"):
    len(it)


def test_batch_size_must_split_over_hosts_and_devices(source):
  with pytest.raises(ValueError, match="process count 2"):
    pipeline.make_iterator(
      source, PP, batch_size=5, mesh=None, process_index=0, process_count=2
    )


def test_simulated_hosts_need_host_local_batches(source):
  with pytest.raises(ValueError, match="mesh=None"):
    pipeline.make_iterator(
      source, PP, batch_size=4, process_index=1, process_count=2
    )


class _ListSource:
  """A plain random-access source (not TFDS) with a class list."""

  class_names = ("a", "b")

  def __init__(self, labels):
    self.labels = labels

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    return {
      "image": np.full((300, 300, 3), 7, np.uint8),
      "mask": np.zeros((300, 300), np.uint8),
      "label": self.labels[i],
      "id": f"img{i}",
    }


def test_label_out_of_range_is_named_without_dumping_arrays():
  it = pipeline.make_iterator(
    _ListSource([0, 1, 5, 0]),
    "resize(8)",
    batch_size=2,
    mesh=None,
    shuffle=False,
    num_epochs=1,
    num_threads=1,
  )
  with pytest.raises(ValueError) as err:
    list(it)
  message = str(err.value)
  assert message == (
    "example 'img2' (source index 2) has label 5, but the source has 2 "
    "classes (labels 0..1)."
  )


def test_preprocessing_errors_name_the_example():
  it = pipeline.make_iterator(
    _ListSource([0, 1]),
    "keep('image')|center_crop(4)|resize(2, keys=('mask',))",
    batch_size=2,
    mesh=None,
    shuffle=False,
    num_epochs=1,
    num_threads=1,
  )
  with pytest.raises(KeyError) as err:
    list(it)
  notes = getattr(err.value, "__notes__", [])
  assert any("example 'img" in n and "keep('image')" in n for n in notes)
