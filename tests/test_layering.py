"""The core's layering: no import cycle inside ``unlearn_audit`` (imports inside functions and
under ``TYPE_CHECKING`` count too), no import of the bundled ``methods``, and re-rendering a
report loads no training loop, captum, scikit-learn or torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "result_class.json"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Every module name an import statement may load, as absolute dotted names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = package[: len(package) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``module -> modules of the same package it imports``, and ``module -> other modules it
    imports``, read from the source (ast)."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    external: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for target in _imported(node, name, path.name == "__init__.py"):
                if target in files and target != name:
                    graph[name].add(target)
                elif target not in files:
                    external[name].add(target)
    return graph, external


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_core_has_no_import_cycle() -> None:
    graph, _ = import_graph(ROOT / "unlearn_audit")
    assert len(graph) > 40, "the whole core was read"
    assert find_cycles(graph) == []


def test_the_core_never_imports_the_bundled_methods() -> None:
    _, external = import_graph(ROOT / "unlearn_audit")
    offenders = {
        module: sorted(t for t in targets if t == "methods" or t.startswith("methods."))
        for module, targets in external.items()
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path) -> None:
    """The test above can fail: a package whose modules import each other (one inside a
    function, one under TYPE_CHECKING) is reported, and so is a hand-made graph."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg.b import g\n    return g\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
        "def g():\n    return 1\n"
    )
    (package / "c.py").write_text("from pkg import a\n")
    assert find_cycles(import_graph(package)[0]) == [["pkg.a", "pkg.b"]]
    assert find_cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]
    assert find_cycles({"x": {"y"}, "y": set()}) == []


def test_report_loads_no_training_loop_captum_scikit_learn_or_torch(tmp_path: Path) -> None:
    """The report reads each check's evidence type and rendering from the check's module, and
    those modules load their heavy dependencies only when a check runs."""
    forbidden = (
        "unlearn_audit.loop",
        "unlearn_audit.classifier",
        "unlearn_audit.train",
        "unlearn_audit.pipeline",
        "unlearn_audit.context",
        "unlearn_audit.outputs",
        "unlearn_audit.functional",
        "captum",
        "sklearn",
        "torch",
    )
    script = (
        "import json, sys\n"
        "from unlearn_audit.cli import main\n"
        f"code = main(['report', {str(GOLDEN)!r}, '--no-pdf', '--out', {str(tmp_path)!r}])\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({forbidden!r}))\n"
        "print(json.dumps({'code': code, 'loaded': bad}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome == {"code": 0, "loaded": []}
    assert (tmp_path / "report.html").is_file()


def test_the_audit_pipeline_imports_its_heavy_dependencies_only_when_used() -> None:
    """Importing the audit loads no torchvision (its model zoo pulls in torch._dynamo),
    scikit-learn, captum or matplotlib: the checks, the image-folder loader, the ResNet
    builder and the report import them when they run."""
    script = (
        "import json, sys\n"
        "import unlearn_audit.pipeline, unlearn_audit.cli\n"
        "heavy = ('torchvision', 'torch._dynamo', 'sklearn', 'captum', 'matplotlib')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
