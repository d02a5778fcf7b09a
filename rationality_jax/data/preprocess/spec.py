"""The preprocessing spec language: registered op factories, `parse`.

An op is built by a factory registered under its name (`register`) and
called as `op(data, rng) -> data` on one example (see the package
docstring). A spec is a string of ops joined by `|` (or a list of op
strings), each a Python call with literal arguments; `parse` builds the
`Preprocess` that applies them in order.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Data = dict[str, Any]
Op = Callable[[Data, "np.random.Generator | None"], Data]

_REGISTRY: dict[str, Callable[..., Op]] = {}


def register(name: str):
  """Registers an op factory under `name` for `parse`."""

  def wrap(factory):
    if name in _REGISTRY:
      raise ValueError(f"Preprocessing op {name!r} is already registered.")
    _REGISTRY[name] = factory
    return factory

  return wrap


def registered_ops() -> list[str]:
  return sorted(_REGISTRY)


class Preprocess:
  """A parsed chain of ops; `fn(data, rng=None) -> data` (the input is not mutated)."""

  def __init__(self, ops: Sequence[Op], spec: str):
    self.ops = list(ops)
    self.spec = spec

  def __call__(
    self, data: Data, rng: np.random.Generator | None = None
  ) -> Data:
    data = dict(data)
    for op in self.ops:
      data = op(data, rng)
    return data

  def __repr__(self):
    return f"Preprocess({self.spec!r})"


def _parse_call(text: str) -> tuple[str, tuple, dict]:
  try:
    node = ast.parse(text.strip(), mode="eval").body
  except SyntaxError as e:
    raise ValueError(f"Cannot parse preprocessing op {text!r}: {e}") from None
  if isinstance(node, ast.Name):
    return node.id, (), {}
  if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
    raise ValueError(
      f"Preprocessing op {text!r} must look like name(arg, key=value)."
    )
  try:
    args = tuple(ast.literal_eval(a) for a in node.args)
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
  except ValueError:
    raise ValueError(
      f"Arguments of preprocessing op {text!r} must be Python literals."
    ) from None
  return node.func.id, args, kwargs


def parse(spec: str | Sequence[str] | Preprocess) -> Preprocess:
  """Builds a `Preprocess` from "op1(...)|op2(...)" or a list of op strings."""
  if isinstance(spec, Preprocess):
    return spec
  parts = spec.split("|") if isinstance(spec, str) else list(spec)
  parts = [p for p in (p.strip() for p in parts) if p]
  ops = []
  for part in parts:
    name, args, kwargs = _parse_call(part)
    if name not in _REGISTRY:
      raise ValueError(
        f"Unknown preprocessing op {name!r} in {part!r}; registered: {registered_ops()}."
      )
    ops.append(_REGISTRY[name](*args, **kwargs))
  return Preprocess(ops, "|".join(parts))


def need_rng(rng, name):
  """`rng`, or an error saying that the random op `name` needs one."""
  if rng is None:
    raise ValueError(
      f"Op {name} is random: call the preprocessing with rng=np.random.default_rng(...)."
    )
  return rng
