"""Where the vendored data and the demo's model are, installed or in a checkout.

  third_party("clip_bpe", "bpe_simple_vocab_16e6.txt.gz") -> Path of that file
  third_party() -> Path of the whole folder
  demo_model() -> Path of the demo's model (an orbax directory for
                  `rationality_jax.models.load`)

Both live at the top level of the repository (`third_party/`, `assets/`). A
wheel (`pip install .`) carries them inside the package as
`rationality_jax/_third_party/` and `rationality_jax/_assets/` (setup.py's
build step copies them there); an editable install (`pip install -e .`) or a
checkout on PYTHONPATH reads the checkout's folders. A missing file raises one
FileNotFoundError naming both places.
"""

from __future__ import annotations

import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent


def _find(folder: str, parts: tuple[str, ...]) -> pathlib.Path:
  """`folder`/`parts` in the installed package, else in the checkout."""
  places = (
    PACKAGE / f"_{folder}" / pathlib.Path(*parts),
    PACKAGE.parent / folder / pathlib.Path(*parts),
  )
  for path in places:
    if path.exists():
      return path
  raise FileNotFoundError(
    f"{pathlib.Path(folder, *parts)} is missing: rationality_jax looked in "
    f"{places[0]} (an installed wheel) and {places[1]} (a checkout). Install "
    "from a complete checkout (`pip install .` ships the repository's "
    f"{folder}/ in the wheel; `pip install -e .` reads it in place) or restore "
    f"{folder}/ from git."
  )


def third_party(*parts: str) -> pathlib.Path:
  """A vendored file or folder: `third_party/<parts...>` of the repository."""
  return _find("third_party", parts)


def demo_model() -> pathlib.Path:
  """The demo's small CLIP-architecture model: `assets/demo_clip`."""
  return _find("assets", ("demo_clip",))
