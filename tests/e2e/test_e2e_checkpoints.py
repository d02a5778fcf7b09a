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
The grid runs the command line itself (`cli.main`); the zero-shot
evaluations, the training runs and their evaluations run the command in
this process (`cli.run`: the same flags and `main.execute`, without an
interpreter start per run).
Then the paper grid on a format-exact fake CUB-200-2011 with every model at
the study's 224 px, ALBEF and BLIP included.

What covers what (a covering set, not the format x method product):

  format (family, px)            zero-shot   trained + evaluated here   grid at 224
  openai_torchscript (CLIP, 224)  yes         lp, flcp                   lp, ft (B/16, B/32)
  hf_clip (CLIP, 224)             yes         ft
  albef_pth (ALBEF, 256)          yes         flcp                       lp, ft
  blip_pth (BLIP, 384)            yes         flcp                       lp, ft
  hf_blip_retrieval (BLIP, 384)   yes         lp

so every format loads at its native size, trains and evaluates through the
commands; every method trains on a CLIP checkpoint at its native size; FLCP
trains on every family at its native size; LP and FT train on every family
at 224 through configs/paper.py (the grid). The heatmaps are those of the
paper's grid too: the FLCP runs are evaluated with the last block's
(start_layer=-1, the study's for ZS and FLCP), the others with all blocks.
"""

import json

import numpy as np
import pytest

from rationality_jax.explain.explainer import STUDY_START_LAYER
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
  """The command line itself (`cli.main`)."""
  return cli.main(
    f"--config={config}",
    *overrides,
    workdir=workdir,
    check=True,
    timeout=timeout,
  )


def _run(config: str, workdir, *overrides):
  """The command from its flags on, in this process (`cli.run`)."""
  return cli.run(f"--config={config}", *overrides, workdir=workdir, check=True)


def _data(data_dir, section="train_data"):
  return [f"--config.data.dir={data_dir}"] + [
    f"--config.{section}.builder_kwargs.{kv}" for kv in SMALL
  ]


# (format, method): each format once, each method on CLIP, FLCP on each family.
TRAINED = [
  ("openai_torchscript", "lp"),
  ("openai_torchscript", "flcp"),
  ("hf_clip", "ft"),
  ("albef_pth", "flcp"),
  ("blip_pth", "flcp"),
  ("hf_blip_retrieval", "lp"),
]
FAMILY = {
  "openai_torchscript": "clip",
  "hf_clip": "clip",
  "albef_pth": "albef",
  "blip_pth": "blip",
  "hf_blip_retrieval": "blip",
}
GRID_METHODS = ("lp", "ft")


def test_the_covering_set_covers():
  """The docstring's table: what the trained runs and the grid cover."""
  assert {name for name, _ in TRAINED} == set(FORMATS)
  assert {m for n, m in TRAINED if FAMILY[n] == "clip"} == {"lp", "ft", "flcp"}
  assert {FAMILY[n] for n, m in TRAINED if m == "flcp"} == {
    "clip",
    "albef",
    "blip",
  }
  # With the grid (every family at 224), every family trains every method.
  covered = {(FAMILY[n], m) for n, m in TRAINED}
  covered |= {(f, m) for f in ("clip", "albef", "blip") for m in GRID_METHODS}
  assert covered == {
    (f, m) for f in ("clip", "albef", "blip") for m in ("lp", "ft", "flcp")
  }


@pytest.fixture(scope="session")
def checkpoints(checkpoint):
  """{format: path}, made once per run (tests/conftest.py)."""
  return {name: checkpoint(name, **kwargs) for name, kwargs in FORMATS.items()}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def _meta(workdir):
  return json.loads((workdir / "meta.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_zero_shot_evaluation_at_the_native_size(
  name, checkpoints, data_dir, tmp_path
):
  path = checkpoints[name]
  result = _run(f"configs/evaluate.py:model={path}", tmp_path, *_data(data_dir))
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
  assert config["model"]["path"] == path
  assert config["model"]["image_size"] == 0  # nothing typed: native


@pytest.mark.slow
@pytest.mark.parametrize("name, method", TRAINED)
def test_train_two_steps_then_evaluate_the_run(
  name, method, checkpoints, data_dir, tmp_path
):
  path = checkpoints[name]
  train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
  _run(
    f"configs/train.py:method={method},model={path},steps=2",
    train_dir,
    *_data(data_dir),
  )
  result = json.loads((train_dir / "train_result.json").read_text())
  assert result["step"] == 2 and np.isfinite(result["loss"])
  assert 0.0 <= result["accuracy"] <= 1.0
  # FLCP with the study's heatmap of ZS and FLCP (the last block), so that
  # every family explains an image-text logit from its last block here.
  start_layer = STUDY_START_LAYER[method]
  _run(
    f"configs/evaluate.py:train_dir={train_dir},start_layer={start_layer}",
    eval_dir,
  )
  meta = _meta(eval_dir)
  size = NATIVE[name]
  assert meta["method"] == method and meta["train_step"] == 2
  assert meta["preprocess"].startswith(f"resize({size})|center_crop({size})")
  assert meta["heatmap"] == f"chefer(start_layer={start_layer})"
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
def test_paper_grid_on_a_fake_cub_every_model_at_224(
  checkpoints, checkpoint, tmp_path
):
  """configs/paper.py's main part on CUB: every model (CLIP B/16 and B/32,
  ALBEF, BLIP) at 224, trained with LP and FT and evaluated; ZS and FLCP of
  every family run at the native sizes above (module docstring)."""
  manual = _fake_cub(tmp_path / "manual")
  paths = {
    "clip_b16": checkpoints["openai_torchscript"],
    "clip_b32": checkpoint("openai_torchscript", patch=32),
    "albef_b16": checkpoints["albef_pth"],
    "blip_b16": checkpoints["blip_pth"],
  }
  workdir = tmp_path / "grid"
  result = _main(
    f"configs/paper.py:parts=main,datasets=cub,methods={'+'.join(GRID_METHODS)}",
    workdir,
    f"--config.data.manual_dir={manual}",
    "--config.train.total_steps=1",
    "--config.train.batch_size=2",
    "--config.evaluate.batch_size=4",
    "--config.sanity.images=0",  # tests/explain and the demo's test check it
    *(f"--config.models.{m}.path={p}" for m, p in paths.items()),
    timeout=1800,
  )
  rows = json.loads((workdir / "results.json").read_text())["rows"]
  assert len(rows) == 4 * len(GRID_METHODS) and {r["n"] for r in rows} == {4}
  assert {(r["model"], r["method"]) for r in rows} == {
    (m, method) for m in paths for method in GRID_METHODS
  }
  for row in rows:
    meta = json.loads(
      (workdir / "eval" / row["name"] / "meta.json").read_text()
    )
    assert meta["preprocess"].startswith("drop('soft_mask')|resize(256)")
    assert "center_crop(224)" in meta["preprocess"]
  report = (workdir / "report.md").read_text()
  for model in ("albef_b16", "blip_b16"):
    for method in GRID_METHODS:
      assert f"| {model}-cub-{method} | {method} | {model} | cub |" in report
  assert "failed" not in report.lower()
  assert result.stdout.strip().splitlines()[-1].startswith("report: ")
