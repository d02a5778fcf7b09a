"""Every checkpoint format, at its native resolution, through the documented commands.

Format-exact tiny checkpoints (tests/checkpoint_factories.py: OpenAI's
TorchScript fp16 ViT-B-16.pt at 224 px, ALBEF.pth at 256, BLIP's
model_base.pth layout at 384 - the retrieval checkpoints' size -, Hugging
Face CLIP and BlipForImageTextRetrieval directories) run through

  configs/evaluate.py:model=<checkpoint>                 (zero-shot)
  configs/train.py:method=lp|ft|flcp,model=<checkpoint>,steps=2
  configs/evaluate.py:train_dir=<that training run>

with no preprocessing override: the model decides the pixels. The only
overrides shrink the synthetic benchmark (and share its build) for speed.
Then the paper grid on a format-exact fake CUB-200-2011 with every model at
the study's 224 px, ALBEF and BLIP included.
"""

import json

import numpy as np
import pytest

from tests import checkpoint_factories as factories
from tests import cli

FORMATS = {  # factory -> keyword arguments (native sizes)
  "openai_torchscript": {},
  "albef_pth": {},
  "blip_pth": {"image_size": 384},
  "hf_clip": {},
  "hf_blip_retrieval": {},
}
NATIVE = {
  "openai_torchscript": 224,
  "albef_pth": 256,
  "blip_pth": 384,
  "hf_clip": 224,
  "hf_blip_retrieval": 384,
}
SMALL = ["train_size=64", "test_size=24"]


def _main(config: str, workdir, *overrides, timeout=900):
  return cli.main(
    f"--config={config}",
    *overrides,
    workdir=workdir,
    check=True,
    timeout=timeout,
  )


def _data(data_dir, section="train_data"):
  return [f"--config.data.dir={data_dir}"] + [
    f"--config.{section}.builder_kwargs.{kv}" for kv in SMALL
  ]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  directory = tmp_path_factory.mktemp("checkpoints")
  return {
    name: factories.make(name, directory, **kwargs)
    for name, kwargs in FORMATS.items()
  }


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def _meta(workdir):
  return json.loads((workdir / "meta.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_zero_shot_evaluation_at_the_native_size(
  name, checkpoints, data_dir, tmp_path
):
  made = checkpoints[name]
  result = _main(
    f"configs/evaluate.py:model={made.path}", tmp_path, *_data(data_dir)
  )
  size = NATIVE[name]
  meta = _meta(tmp_path)
  # The study's synthetic geometry (Resize + CenterCrop) at the model's size.
  assert meta["preprocess"].startswith(f"resize({size})|center_crop({size})")
  assert meta["method"] == "zs" and meta["num_examples"] == 24
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["n"] == 24 and 0.0 <= summary["accuracy"] <= 1.0
  assert "| zs |" in (tmp_path / "report.md").read_text()
  assert result.stdout.strip().splitlines()[-1].startswith("report: ") or (
    "| zs |" in result.stdout
  )
  config = json.loads((tmp_path / "config.json").read_text())
  assert config["model"]["path"] == made.path
  assert config["model"]["image_size"] == 0  # nothing typed: native


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lp", "ft", "flcp"])
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_train_two_steps_then_evaluate_the_run(
  name, method, checkpoints, data_dir, tmp_path
):
  made = checkpoints[name]
  train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
  _main(
    f"configs/train.py:method={method},model={made.path},steps=2",
    train_dir,
    *_data(data_dir),
  )
  result = json.loads((train_dir / "train_result.json").read_text())
  assert result["step"] == 2 and np.isfinite(result["loss"])
  assert 0.0 <= result["accuracy"] <= 1.0
  _main(f"configs/evaluate.py:train_dir={train_dir}", eval_dir)
  meta = _meta(eval_dir)
  size = NATIVE[name]
  assert meta["method"] == method and meta["train_step"] == 2
  assert meta["preprocess"].startswith(f"resize({size})|center_crop({size})")
  summary = json.loads((eval_dir / "summary.json").read_text())
  assert summary["n"] == 24


# ------------------------------------------------------ the paper grid on CUB ----

CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]


def _fake_cub(root):
  """CUB_200_2011.tgz + segmentations.tgz: 6 train and 4 test images of 2 classes."""
  from tests.data import conftest as fakes
  from tests.data import test_data_cub

  class Fake:
    pass

  for fn in (fakes.jpeg, fakes.png, fakes.write_tar, fakes.solid):
    setattr(Fake, fn.__name__, staticmethod(fn))
  images = [
    (i, 1 + i % 2, f"{CUB_CLASSES[i % 2][4:]}_{i:04d}_{i}.jpg", int(i <= 6))
    for i in range(1, 11)
  ]
  return test_data_cub.write_cub(Fake, root, images=images)


@pytest.mark.slow
def test_paper_grid_on_a_fake_cub_every_model_at_224(checkpoints, tmp_path):
  manual = _fake_cub(tmp_path / "manual")
  clip_b32 = factories.make("openai_torchscript", tmp_path, patch=32)
  paths = {
    "clip_b16": checkpoints["openai_torchscript"].path,
    "clip_b32": clip_b32.path,
    "albef_b16": checkpoints["albef_pth"].path,
    "blip_b16": checkpoints["blip_pth"].path,
  }
  workdir = tmp_path / "grid"
  result = _main(
    "configs/paper.py:parts=main,datasets=cub",
    workdir,
    f"--config.data.manual_dir={manual}",
    "--config.train.total_steps=1",
    "--config.train.batch_size=2",
    "--config.evaluate.batch_size=4",
    *(f"--config.models.{m}.path={p}" for m, p in paths.items()),
    timeout=1800,
  )
  rows = json.loads((workdir / "results.json").read_text())["rows"]
  assert len(rows) == 16 and {r["n"] for r in rows} == {4}
  assert {r["model"] for r in rows} == set(paths)
  for row in rows:
    meta = json.loads(
      (workdir / "eval" / row["name"] / "meta.json").read_text()
    )
    assert meta["preprocess"].startswith("drop('soft_mask')|resize(256)")
    assert "center_crop(224)" in meta["preprocess"]
  report = (workdir / "report.md").read_text()
  for model in ("albef_b16", "blip_b16"):
    for method in ("zs", "lp", "flcp", "ft"):
      assert f"| {model}-cub-{method} | {method} | {model} | cub |" in report
  assert "failed" not in report.lower()
  assert result.stdout.strip().splitlines()[-1].startswith("report: ")
