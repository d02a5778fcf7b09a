"""Ships the repository's top-level third_party/ and assets/ inside the wheel.

The vendored data (tokenizer vocabularies, templates, class lists, with their
licences) and the demo's model stay at the top level of the repository; the
build step copies them into the built package as rationality_jax/_third_party
and rationality_jax/_assets, where `rationality_jax.resources` finds them. An
editable install (`pip install -e .`) copies nothing: `resources` reads the
checkout's folders. Everything else is in setup.cfg.
"""

import os

import setuptools
from setuptools.command import build_py

# Repository folder -> folder inside the installed package.
SHIPPED = {"third_party": "_third_party", "assets": "_assets"}


class BuildPy(build_py.build_py):
  """build_py that also copies SHIPPED into the built package."""

  def run(self):
    super().run()
    if self.editable_mode:
      return
    for source, target in SHIPPED.items():
      self.copy_tree(
        source, os.path.join(self.build_lib, "rationality_jax", target)
      )


setuptools.setup(cmdclass={"build_py": BuildPy})
