"""The one registration style: modules listed by name, each declaring a constant."""

import sys
import textwrap

import pytest

from rationality_jax import registry


@pytest.fixture
def plugins(tmp_path, monkeypatch):
  """A package `toy_plugins` with modules a, b (names 'alpha', 'beta') and
  c, which declares nothing."""
  package = tmp_path / "toy_plugins"
  package.mkdir()
  (package / "__init__.py").write_text("")
  for module, name in (("a", "alpha"), ("b", "beta"), ("d", "alpha")):
    (package / f"{module}.py").write_text(
      textwrap.dedent(f"""
        import types
        THING = types.SimpleNamespace(name={name!r}, module={module!r})
      """)
    )
  (package / "c.py").write_text("X = 1\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  yield "toy_plugins"
  for key in [k for k in sys.modules if k.startswith("toy_plugins")]:
    del sys.modules[key]


def test_modules_are_imported_on_first_use_and_keyed_by_name(plugins):
  things = registry.Registry("thing", plugins, ("a",), "THING")
  assert "toy_plugins.a" not in sys.modules
  assert list(things) == ["alpha"] and things["alpha"].module == "a"
  assert "toy_plugins.a" in sys.modules
  assert things.register("toy_plugins.b").module == "b"
  assert sorted(things) == ["alpha", "beta"] and len(things) == 2
  things.register("b")  # again, package-relative: nothing changes
  assert len(things) == 2


def test_an_unknown_name_lists_the_registered_ones(plugins):
  things = registry.Registry("thing", plugins, ("a", "b"), "THING")
  with pytest.raises(ValueError, match=r"unknown thing 'gamma'; registered: "):
    things["gamma"]
  assert "gamma" not in things and things.get("gamma") is None


def test_a_module_without_the_constant_or_a_repeated_name_is_refused(plugins):
  with pytest.raises(ImportError, match=r"toy_plugins.c .* declares no THING"):
    len(registry.Registry("thing", plugins, ("a", "c"), "THING"))
  with pytest.raises(ImportError, match=r"'alpha': toy_plugins.a and .*d"):
    len(registry.Registry("thing", plugins, ("a", "d"), "THING"))
