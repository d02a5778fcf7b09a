"""Plug-ins by name: one registration style for families, methods, heatmaps and datasets.

A kind of plug-in is a package whose ``__init__`` lists its modules, each of
which declares one constant (``FAMILY``, ``METHOD``, ``HEATMAP``,
``DATASET``) with a ``name``:

  METHODS = registry.Registry("method", __name__, ("zs", "lp", "ft"), "METHOD")
  METHODS["lp"]                  # the module's METHOD; imported on first use
  sorted(METHODS)                # every registered name
  METHODS.register("my_lab.guided_v2")   # a plug-in from outside the package

Adding one is its module plus its name in the list (or one `register` call
from a module outside the package). The modules are imported on first
access, not when the registry is made, so a package lists its plug-ins
without importing them (a dataset's builder imports TFDS, for one).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
import importlib
from typing import Any


class UnknownName(KeyError, ValueError):
  """A name no registered plug-in has (a KeyError for `Mapping`, a
  ValueError for callers that check a setting)."""

  def __str__(self) -> str:
    return str(self.args[0]) if self.args else ""


class Registry(Mapping):
  """{name: plug-in} of the modules that declare `attribute` (module docstring)."""

  def __init__(
    self, kind: str, package: str, modules: Sequence[str], attribute: str
  ):
    self.kind = kind
    self.attribute = attribute
    self._package = package
    self._modules = [self._path(m) for m in modules]
    self._loaded: dict[str, Any] | None = None

  def _path(self, module: str) -> str:
    """A dotted module path; a bare name is a module of the package."""
    return module if "." in module else f"{self._package}.{module}"

  def register(self, module: str) -> Any:
    """Adds `module` (a dotted path, or a module of the package); returns
    its plug-in. Registering the same module again changes nothing."""
    path = self._path(module)
    if path not in self._modules:
      self._modules.append(path)
      self._loaded = None
    plugin = getattr(importlib.import_module(path), self.attribute)
    return self[plugin.name]

  def _load(self) -> dict[str, Any]:
    if self._loaded is None:
      loaded: dict[str, Any] = {}
      sources: dict[str, str] = {}
      for path in self._modules:
        module = importlib.import_module(path)
        if not hasattr(module, self.attribute):
          raise ImportError(
            f"{path} is registered as a {self.kind} but declares no "
            f"{self.attribute}"
          )
        plugin = getattr(module, self.attribute)
        name = plugin.name
        if name in loaded:
          raise ImportError(
            f"two {self.kind} modules declare the name {name!r}: "
            f"{sources[name]} and {path}"
          )
        loaded[name], sources[name] = plugin, path
      self._loaded = loaded
    return self._loaded

  def __getitem__(self, name: str) -> Any:
    loaded = self._load()
    if name not in loaded:
      raise UnknownName(
        f"unknown {self.kind} {name!r}; registered: {sorted(loaded)}"
      )
    return loaded[name]

  def __iter__(self) -> Iterator[str]:
    return iter(self._load())

  def __len__(self) -> int:
    return len(self._load())

  def __repr__(self) -> str:
    return f"Registry({self.kind}: {sorted(self._load())})"
