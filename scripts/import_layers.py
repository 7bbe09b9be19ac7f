"""The import graph of src/, read from the source with ast: layers, depth, and what breaks them.

    python scripts/import_layers.py [ROOT]

Prints each entry script's longest import chain (packages counted once, as layers) and every
import that does not point down the layer order below; exits 1 if an entry script imports
another, an import points up or sideways, or a chain is deeper than MAX_DEPTH.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

ENTRY_SCRIPTS = (
    "train",
    "eval",
    "predict",
    "export",
    "bench",
    "report",
    "params",
    "explain",
    "probe",
    "publish",
)
# Top to bottom; a unit may import only units below it. Entry scripts sit above all of them.
LAYERS = (
    "benchmarks",
    "reporting",
    "inference",
    "runs",
    "models",
    "evaluation",
    "reference",
    "data",
    "project",
    "config_checks",
    "config",
    "utils",
)
MAX_DEPTH = 8


def module_files(src: Path) -> dict[str, Path]:
    modules = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The src modules `name` imports (anywhere in the file, lazy imports included)."""

    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {known(a.name) for a in node.names if a.name.split(".")[0] == "src"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.split(".")[0] == "src":
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in modules else known(base))
    return {m for m in found if m and m != name}


def unit(module: str) -> str:
    """The layer unit of a module: its package under src/, or the module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else module


def main(root: Path) -> int:
    modules = module_files(root / "src")
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        if name == "src":
            continue
        deps = {unit(d) for d in imports_of(name, path, modules) if d != "src"}
        graph.setdefault(unit(name), set()).update(deps - {unit(name)})

    def rank(u: str) -> int:
        return -1 if u in ENTRY_SCRIPTS else LAYERS.index(u)

    problems = []
    unplaced = sorted(u for u in graph if u not in ENTRY_SCRIPTS and u not in LAYERS)
    if unplaced:
        problems.append(f"not in any layer: {', '.join(unplaced)}")
    for u in sorted(graph):
        for d in sorted(graph[u]):
            if u in unplaced or d in unplaced:
                continue
            if d in ENTRY_SCRIPTS:
                problems.append(f"{u} imports the entry script {d}")
            elif rank(d) <= rank(u):
                problems.append(f"{u} imports {d}, which is not below it")

    @cache
    def chain(u: str) -> tuple[str, ...]:
        below = [chain(d) for d in graph.get(u, ()) if d not in unplaced and rank(d) > rank(u)]
        return (u, *max(below, key=len, default=()))

    print("longest import chain of each entry script (packages count once):")
    for script in ENTRY_SCRIPTS:
        if script in graph:
            c = chain(script)
            print(f"  {len(c):2d}  {' -> '.join(c)}")
            if len(c) > MAX_DEPTH:
                problems.append(f"{script}: {len(c)} levels > {MAX_DEPTH}")
    print("imports that break the layers:" if problems else "every import points down.")
    for problem in problems:
        print(f"  {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]))
