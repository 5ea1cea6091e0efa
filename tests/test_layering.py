"""The package imports one way: no module of xtjax/ takes part in an import cycle, and imports sit
at module top except those of optional dependencies (read from the source with ast)."""

import ast
import functools
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xtjax"
# Installed only with an extra (or absent): imported where they are used.
OPTIONAL = {"tensorflow_datasets", "array_record", "google.cloud", "google.api_core"}


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def modules() -> dict[str, ast.Module]:
  return {module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def imported(node, known) -> list[str]:
  """The modules an import statement names (``from a import b`` names ``a.b`` if that is a
  module, else ``a``). xtjax uses absolute imports only."""
  if isinstance(node, ast.Import):
    return [a.name for a in node.names]
  assert not node.level, f"relative import of {node.module} at line {node.lineno}"
  return [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
          for a in node.names]


def graph() -> dict[str, set[str]]:
  mods = modules()
  edges = {}
  for name, tree in mods.items():
    edges[name] = {t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                   for t in imported(node, mods) if t in mods and t != name}
  return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
  state, stack = {}, []

  def visit(n):
    state[n] = "open"
    stack.append(n)
    for m in sorted(edges[n]):
      if state.get(m) == "open":
        return stack[stack.index(m):] + [m]
      if m not in state:
        found = visit(m)
        if found:
          return found
    stack.pop()
    state[n] = "done"
    return None

  for n in sorted(edges):
    if n not in state:
      found = visit(n)
      if found:
        return found
  return None


def test_find_cycle_detects_a_cycle():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
  cycle = find_cycle(graph())
  assert cycle is None, " -> ".join(cycle)


def nested_imports(tree: ast.Module) -> list[tuple[int, str]]:
  """Imports below module level (in functions, classes or conditionals) and what they import."""
  top = set(map(id, tree.body))
  out = []
  for node in ast.walk(tree):
    if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
      names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
      out += [(node.lineno, n) for n in names]
  return out


def test_nested_import_detection():
  tree = ast.parse("import os\ndef f():\n  import json\n  from tensorflow_datasets import core\n")
  assert nested_imports(tree) == [(3, "json"), (4, "tensorflow_datasets")]


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_at_module_top(name):
  tree = modules()[name]
  bad = [f"line {line}: {what}" for line, what in nested_imports(tree)
         if not any(what == o or what.startswith(o + ".") for o in OPTIONAL)]
  assert not bad, f"{name} imports inside functions: {bad}"
