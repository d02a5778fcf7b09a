"""The tree is the architecture: who may import whom, and how long things get.

Layers, lowest first (docs/architecture.md):

  utilities   files, manifest, console, resources, sharding, registry (top level)
  libraries   metrics, models, data, explain, methods
  report      tables, figures and records of evaluated runs
  driver      run/ (and main.py, the command line)

A package imports only its own layer and the ones below. Modules stay under
450 lines; a function over 80 lines says why in its docstring ("Long
because ...").
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "rationality_jax"
UTILITIES = (
  "files",
  "manifest",
  "console",
  "resources",
  "sharding",
  "registry",
)
LIBRARIES = ("metrics", "models", "data", "explain", "methods")
# What each part may import of the project (besides itself).
ALLOWED = {
  **{u: set() for u in UTILITIES},
  "manifest": {"files"},  # reads run.json as every JSON file is read
  "metrics": set(UTILITIES),
  "models": set(UTILITIES),
  "data": set(UTILITIES),
  "explain": {*UTILITIES, "metrics", "models"},
  "methods": {*UTILITIES, "metrics", "models", "data", "explain"},
  "report": {*UTILITIES, *LIBRARIES},
  "run": {*UTILITIES, *LIBRARIES, "report"},
  "main": {*UTILITIES, *LIBRARIES, "report", "run"},
}
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def _modules():
  for path in sorted(PACKAGE.rglob("*.py")):
    yield path, path.relative_to(PACKAGE)


def _part(relative: pathlib.PurePath) -> str:
  top = relative.parts[0]
  return top[:-3] if top.endswith(".py") else top


def _imported_parts(tree: ast.AST) -> set[str]:
  """The project's top-level parts a module imports (at any depth)."""
  parts = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      names = [node.module]
      if node.module == "rationality_jax":
        names = [f"rationality_jax.{alias.name}" for alias in node.names]
    else:
      continue
    for name in names:
      if name.startswith("rationality_jax."):
        parts.add(name.split(".")[1])
  return parts


def test_every_module_belongs_to_a_layer():
  parts = {_part(rel) for _, rel in _modules()} - {"__init__"}
  assert parts == set(ALLOWED), sorted(parts ^ set(ALLOWED))


@pytest.mark.parametrize(
  "path, relative", list(_modules()), ids=lambda x: str(x)
)
def test_imports_point_down_the_layers(path, relative):
  part = _part(relative)
  if part == "__init__":
    return
  tree = ast.parse(path.read_text())
  wrong = _imported_parts(tree) - ALLOWED[part] - {part}
  assert not wrong, f"{relative} ({part}) imports {sorted(wrong)}"


def test_the_libraries_never_import_the_driver():
  """The rule the layers exist for, stated on its own."""
  for path, relative in _modules():
    if _part(relative) in (*UTILITIES, *LIBRARIES, "report"):
      imported = _imported_parts(ast.parse(path.read_text()))
      assert not imported & {"run", "main"}, relative


def test_modules_and_functions_stay_short():
  long_modules, long_functions = [], []
  for path, relative in _modules():
    text = path.read_text()
    if len(text.splitlines()) > MAX_MODULE_LINES:
      long_modules.append(f"{relative} ({len(text.splitlines())})")
    for node in ast.walk(ast.parse(text)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        doc = ast.get_docstring(node) or ""
        if length > MAX_FUNCTION_LINES and "Long because" not in doc:
          long_functions.append(f"{relative}:{node.lineno} {node.name}")
  assert not long_modules, long_modules
  assert not long_functions, long_functions


def test_no_benchmark_script_shadows_a_module():
  """A script's folder is first on its path, and benchmarks/accelerator.py
  imports from its own: a benchmarks/tokenize.py stood in for the standard
  library's tokenize there (numpy's import of jax failed). The names are
  looked up in a fresh isolated interpreter (``-I``: the standard library
  and the installed packages only; this process's path holds configs/ and
  whatever other tests put there)."""
  import json
  import subprocess
  import sys

  names = [s.stem for s in sorted((PACKAGE.parent / "benchmarks").glob("*.py"))]
  code = (
    "import importlib.machinery, json, sys; print(json.dumps([n for n in "
    "sys.argv[1:] if n in sys.stdlib_module_names or "
    "importlib.machinery.PathFinder.find_spec(n) is not None]))"
  )
  out = subprocess.run(
    [sys.executable, "-I", "-c", code, *names],
    capture_output=True,
    text=True,
    check=True,
  )
  assert json.loads(out.stdout) == [], "benchmarks/ scripts named like modules"
