"""Package layering: no import cycle between tinywave's packages, and every module imports on its own.

The graph counts every import, inside functions too (a function-level import hides a cycle
from the interpreter, not from the design). Lower packages that need a higher package's
kinds own a registry it fills (tinywave/plugins.py).
"""

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "tinywave"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str | None:
    """``tinywave.speech.tokenizer`` -> ``speech``; top-level modules (``tinywave.files``, the CLI) -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and (ROOT / parts[1]).is_dir() else None


def imported_modules(path: Path) -> set[str]:
    """Every ``tinywave.*`` module named by an import statement anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("tinywave.")}


def package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> {imported package: [files importing it]}."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(ROOT.rglob("*.py")):
        src = package_of(module_name(path) + ("._" if path.name == "__init__.py" else ""))
        for name in imported_modules(path):
            dst = package_of(name)
            if src and dst and dst != src:
                graph[src][dst].append(str(path.relative_to(ROOT.parent)))
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of packages (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_package_graph_has_no_cycle():
    graph = package_graph()
    assert graph["recipes"], "the walk found no imports: the graph is not being read"
    cycle = find_cycle(graph)
    if cycle:
        steps = [f"{a} -> {b} ({', '.join(graph[a][b][:3])})" for a, b in zip(cycle, cycle[1:])]
        raise AssertionError("import cycle between packages:\n  " + "\n  ".join(steps))


def test_find_cycle_finds_a_planted_cycle():
    graph = {"a": {"b": ["x.py"]}, "b": {"c": ["y.py"]}, "c": {"a": ["z.py"]}, "d": {"a": ["w.py"]}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    del graph["c"]["a"]
    assert find_cycle(graph) is None


def test_each_module_imports_on_its_own():
    """Each module imported first, in a process whose tinywave modules are forgotten before every import."""
    modules = sorted(module_name(p) for p in ROOT.rglob("*.py"))
    script = (
        "import importlib, sys, traceback\n"
        "failed = []\n"
        f"for name in {modules!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'tinywave' or m.startswith('tinywave.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT.parent, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert len(modules) > 100


def test_the_cli_and_every_recipe_config_load_without_torch():
    """Recipe modules keep torch/transformers inside ``run`` (tinywave/recipes/__init__.py): ``tinywave --help`` stays light."""
    script = (
        "import importlib, pkgutil, sys\n"
        "import tinywave.cli, tinywave.recipes as r\n"
        "for m in pkgutil.iter_modules(r.__path__):\n"
        "    importlib.import_module('tinywave.recipes.' + m.name)\n"
        "print(sorted(k for k in ('torch', 'transformers', 'peft', 'gradio') if k in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT.parent, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]", f"importing the recipe modules loaded {run.stdout.strip()}"
