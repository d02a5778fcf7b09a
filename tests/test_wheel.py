"""A built wheel carries the vocabularies, templates, class lists and demo model.

The fixture builds the sdist and, from it, the wheel (`python -m build`, no
network), installs the wheel with `pip --no-deps` into a bare venv, and only
then gives that venv the test environment's third-party packages through a
.pth file. .pth files inside a directory added that way are not processed,
so the editable install of rationality_jax (a .pth plus a finder) stays
inactive: the probe asserts it. Everything runs from a temporary directory
without PYTHONPATH, so the checkout cannot be imported by accident.
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import sysconfig

import jax
import numpy as np
import pytest

from rationality_jax import models
from rationality_jax import resources
from rationality_jax.data import classnames

REPO = pathlib.Path(__file__).resolve().parents[1]
SENTENCE = "a photo of a cat"
# What the installed package reports; the test compares it with the checkout.
PROBE = """
import hashlib, json, sys
import jax
import numpy as np
import rationality_jax
from rationality_jax import models, resources
from rationality_jax.data import classnames

def files(root):
  return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

def digests(params):
  leaves = jax.tree_util.tree_leaves_with_path(params)
  return {jax.tree_util.keystr(k): hashlib.sha256(np.asarray(v).tobytes()).hexdigest()
          for k, v in leaves}

_, params = models.load(resources.demo_model())
print(json.dumps({
  "package": rationality_jax.__file__,
  "third_party": str(resources.third_party()),
  "demo_model": str(resources.demo_model()),
  "editable_finders": [repr(f) for f in sys.meta_path if "editable" in repr(f).lower()],
  "ids": {f: models.tokenizer(f)(sys.argv[1])[0][0].tolist() for f in ("clip", "albef", "blip")},
  "imagenet": classnames.class_names("imagenet2012_val_masks"),
  "clip80": list(classnames.templates("clip80")),
  "third_party_files": files(resources.third_party()),
  "demo_model_files": files(resources.demo_model()),
  "demo_params": digests(params),
}))
"""


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("PYTHONPATH", None)
  return env


def _files(root: pathlib.Path) -> list[str]:
  return sorted(
    str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
  )


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
  """(python of a fresh venv with the wheel installed, its site-packages)."""
  tmp = tmp_path_factory.mktemp("wheel")
  subprocess.run(
    [
      sys.executable,
      "-m",
      "build",
      "--no-isolation",
      f"--outdir={tmp / 'dist'}",
      str(REPO),
    ],
    check=True,
    capture_output=True,
  )
  (wheel,) = (tmp / "dist").glob("rationality_jax-*.whl")
  subprocess.run(
    [sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")],
    check=True,
  )
  python = tmp / "venv" / "bin" / "python"
  subprocess.run(
    [
      sys.executable,
      "-m",
      "pip",
      f"--python={python}",
      "install",
      "--quiet",
      "--no-deps",
      "--no-index",
      str(wheel),
    ],
    check=True,
    cwd=tmp,
    env=_env(),  # PYTHONPATH=<checkout> would show pip an installed copy.
  )
  site = pathlib.Path(
    subprocess.check_output(
      [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
      text=True,
    ).strip()
  )
  ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
  (site / "test_environment.pth").write_text("\n".join(sorted(ours)) + "\n")
  return python, site


def test_wheel_ships_tokenizers_class_lists_and_demo_model(venv, tmp_path):
  python, site = venv
  result = subprocess.run(
    [python, "-c", PROBE, SENTENCE],
    cwd=tmp_path,
    env=_env(),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  got = json.loads(result.stdout.splitlines()[-1])

  package = site / "rationality_jax"
  assert got["package"] == str(package / "__init__.py")
  assert got["editable_finders"] == []
  assert got["third_party"] == str(package / "_third_party")
  assert got["demo_model"] == str(package / "_assets" / "demo_clip")

  clip, albef, blip = (got["ids"][f] for f in ("clip", "albef", "blip"))
  assert clip[:8] == [49406, 320, 1125, 539, 320, 2368, 49407, 0]
  assert len(clip) == 77 and len(albef) == 30 and len(blip) == 35
  assert albef[:8] == blip[:8] == [101, 1037, 6302, 1997, 1037, 4937, 102, 0]

  # The installed files are the checkout's, licences included.
  assert got["third_party_files"] == _files(REPO / "third_party")
  assert {"clip_bpe/LICENSE", "bert_vocab/LICENSE"} <= set(
    got["third_party_files"]
  )
  assert got["demo_model_files"] == _files(REPO / "assets" / "demo_clip")
  assert got["imagenet"] == classnames.class_names("imagenet2012_val_masks")
  assert got["imagenet"][:3] == ["tench", "goldfish", "great white shark"]
  assert got["clip80"] == list(classnames.templates("clip80"))
  assert len(got["clip80"]) == 80

  # The wheel's demo model loads to the checkout's parameters, bit for bit.
  _, params = models.load(REPO / "assets" / "demo_clip")
  leaves = jax.tree_util.tree_leaves_with_path(params)
  assert got["demo_params"] == {
    jax.tree_util.keystr(path): hashlib.sha256(
      np.asarray(leaf).tobytes()
    ).hexdigest()
    for path, leaf in leaves
  }
  assert len(leaves) > 10


@pytest.mark.slow
def test_quick_demo_runs_from_the_wheel(venv, tmp_path):
  python, site = venv
  workdir = tmp_path / "workdir"
  result = subprocess.run(
    [
      python,
      "-m",
      "rationality_jax.main",
      f"--config={REPO / 'configs' / 'demo.py'}:quick=1",
      f"--workdir={workdir}",
      "--config.sanity.images=0",  # not packaging (tests/e2e runs it)
    ],
    cwd=tmp_path,
    env=_env(),
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "## All runs" in (workdir / "report.md").read_text()
  # report.html from the wheel's page template, script and style.
  page = (workdir / "report.html").read_text()
  assert "<script>" in page and "<style>" in page and "data-sample" in page
  # The resolved config names the wheel's model.
  shipped = site / "rationality_jax" / "_assets" / "demo_clip"
  config = json.loads((workdir / "config.json").read_text())
  assert config["models"]["demo_clip"]["path"] == str(shipped)


def test_missing_resource_names_both_places():
  with pytest.raises(FileNotFoundError) as error:
    resources.third_party("clip_bpe", "no_such_vocab.txt")
  message = str(error.value)
  package = pathlib.Path(resources.__file__).parent
  for place in (
    package / "_third_party" / "clip_bpe" / "no_such_vocab.txt",
    package.parent / "third_party" / "clip_bpe" / "no_such_vocab.txt",
  ):
    assert str(place) in message
  assert resources.third_party("clip_bpe", "LICENSE").is_file()
  assert (resources.demo_model() / "rationality_jax_model.json").is_file()
