"""The library's import graph has no loop: not between two modules (function-level imports included, which
hide a loop rather than remove it) and not between two packages (dermsynth.data, .demo, .diffusion, ...)."""
import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> nx.DiGraph:
    files = sorted((ROOT / "dermsynth").rglob("*.py"))
    known = {_module(f) for f in files}
    g = nx.DiGraph()
    for f in files:
        here = _module(f)
        g.add_node(here)
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from dermsynth.data import subgroups` imports the module dermsynth.data.subgroups
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name in known and name != here:
                    g.add_edge(here, name)
    return g


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])  # dermsynth.data.sources.external -> dermsynth.data


def test_no_import_loop_between_modules():
    g = _imports()
    assert g.number_of_edges() > 50  # the walk sees the imports
    loops = [c for c in nx.simple_cycles(g) if len(c) > 1]
    # a package's __init__ importing its own submodules is the one allowed back edge
    loops = [c for c in loops if not any(_package(m) == m and all(n.startswith(m) for n in c) for m in c)]
    assert not loops, loops


def test_no_import_loop_between_packages():
    g = _imports()
    packages = nx.DiGraph()
    for a, b in g.edges:
        if _package(a) != _package(b):
            packages.add_edge(_package(a), _package(b))
    loops = list(nx.simple_cycles(packages))
    assert not loops, [(c, [(a, b) for a, b in g.edges if _package(a) in c and _package(b) in c]) for c in loops]
