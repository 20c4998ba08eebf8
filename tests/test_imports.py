"""The import graph of gan_jax, read from the source (function-local imports count), has no cycle;
experiment files import no trainer code; the loop and the scripts name no training kind."""
from __future__ import annotations

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "gan_jax")


def _modules() -> dict[str, str]:
  """Dotted module name -> file, for every module of gan_jax (a package by its __init__)."""
  out = {}
  for folder, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        out[dotted.removesuffix(".__init__")] = path
  return out


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
  if isinstance(node, ast.Import):
    return [a.name for a in node.names]
  if not isinstance(node, ast.ImportFrom):
    return []
  base = node.module or ""
  if node.level:   # relative: from the module's package, up level - 1 packages
    parts = module.split(".") if is_package else module.split(".")[:-1]
    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
  return [base] + [f"{base}.{a.name}" for a in node.names]


def import_graph() -> dict[str, set[str]]:
  """module -> the gan_jax modules it imports anywhere in its source. A package importing its own
  submodules is left out: importing a submodule imports its package first anyway."""
  modules = _modules()

  def owner(name: str) -> str | None:
    while name and name not in modules:
      name = name.rpartition(".")[0]
    return name or None

  graph = {}
  for module, path in modules.items():
    is_package = path.endswith("__init__.py")
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    targets = {owner(t) for node in ast.walk(tree) for t in _imported(node, module, is_package)
               if t.split(".")[0] == "gan_jax"}
    graph[module] = {t for t in targets if t and t != module and not (is_package and t.startswith(module + "."))}
  return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """One cycle (as a path that returns to its start) per back edge found by depth-first search."""
  state, stack, found = {}, [], []

  def visit(v: str) -> None:
    state[v] = "open"
    stack.append(v)
    for w in sorted(graph[v]):
      if state.get(w) == "open":
        found.append(stack[stack.index(w):] + [w])
      elif w not in state:
        visit(w)
    stack.pop()
    state[v] = "done"

  for v in sorted(graph):
    if v not in state:
      visit(v)
  return found


def test_the_cycle_finder_finds_a_cycle_and_no_false_one():
  assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
  assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_gan_jax_has_no_import_cycle():
  graph = import_graph()
  assert "gan_jax.train.loop" in graph and "gan_jax.errors" in graph
  assert graph["gan_jax.errors"] == set(), "errors.py imports nothing of ours"
  found = cycles(graph)
  assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_loop_and_the_scripts_name_no_kind():
  """The trainer, samplers, benchmark and sample/evaluate scripts talk to the kinds' protocol only:
  no import of a kind module, no isinstance of a kind's trainer, no branch on a kind's name."""
  kinds = os.path.join(PACKAGE, "train", "kinds")
  kind_modules = [f[:-3] for f in os.listdir(kinds) if f.endswith(".py") and f != "__init__.py"]
  assert {"gan", "progressive", "translation", "text2image"} <= set(kind_modules)
  graph = import_graph()
  files = {"gan_jax.train.loop": None, "gan_jax.sampling": None, "gan_jax.benchmark": None}
  for module in files:
    assert not any(t.startswith("gan_jax.train.kinds.") for t in graph[module]), module
  paths = [os.path.join(PACKAGE, *m.split(".")[1:]) + ".py" for m in files]
  paths += [os.path.join(ROOT, "scripts", f"{s}.py") for s in ("train", "sample", "evaluate", "benchmark")]
  # (spec.kind is the data's kind, "image" or "vector", not a training kind)
  pattern = re.compile(r"isinstance\([^)]*(GAN|ProGAN|CycleGAN|StackGAN)\b|(?<!spec)\.kind\b|kinds\.(gan|progressive|"
                       r"translation|text2image)")
  for path in paths:
    with open(path) as f:
      hits = [line.strip() for line in f if pattern.search(line)]
    assert not hits, f"{os.path.relpath(path, ROOT)} names a kind: {hits}"


def test_no_experiment_imports_trainer_code():
  experiments = os.path.join(ROOT, "experiments")
  for name in sorted(os.listdir(experiments)):
    if name.endswith(".py"):
      with open(os.path.join(experiments, name)) as f:
        tree = ast.parse(f.read())
      imported = [t for node in ast.walk(tree) for t in _imported(node, "experiments." + name[:-3], False)]
      assert not [t for t in imported if t.startswith(("gan_jax.train", "gan_jax.sampling"))], name
