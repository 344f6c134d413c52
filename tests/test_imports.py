"""The library's modules import one another without circles."""
from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path


SRC = Path(__file__).resolve().parents[1] / "src"


def import_graph(src: Path) -> dict[str, set[str]]:
    """``reprotext.*`` module -> the ``reprotext.*`` modules it imports (anywhere in it, function bodies included).

    Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``, so those count too, except a module's own
    packages, which Python has started importing before the module itself (an explicit import of one still counts).
    """
    modules: dict[str, tuple[Path, bool]] = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if package else parts)] = (path, package)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, (path, package) in modules.items():
        graph[module] = set()
        here = module if package else module.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names if a.name.startswith("reprotext")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                if base.startswith("reprotext"):  # `from package import submodule` imports the submodule
                    targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else known(base)
                                for a in node.names}
        for target in filter(None, targets):
            graph[module].add(target)
            while "." in target:
                target = target.rpartition(".")[0]
                if not module.startswith(target + "."):
                    graph[module].add(target)
        graph[module].discard(module)
    return graph


def circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules in order, the first repeated last), or None."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        return exc.args[1]
    return None


def test_the_graph_sees_package_and_function_level_imports(tmp_path):
    pkg = tmp_path / "reprotext" / "pkg"
    pkg.mkdir(parents=True)
    (tmp_path / "reprotext" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from reprotext.pkg.a import f\n")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from reprotext.pkg import f\n")
    graph = import_graph(tmp_path)
    assert graph["reprotext.pkg.a"] == {"reprotext.pkg.b"} and graph["reprotext.pkg.b"] == {"reprotext.pkg"}
    assert set(circle(graph)) == {"reprotext.pkg", "reprotext.pkg.a", "reprotext.pkg.b"}
    (pkg / "b.py").write_text("from reprotext.pkg.a import f\n")  # a and b, without the package
    assert circle(import_graph(tmp_path)) is not None
    (pkg / "a.py").write_text("X = 1\n")
    assert circle(import_graph(tmp_path)) is None


def test_no_module_takes_part_in_an_import_circle():
    graph = import_graph(SRC)
    assert len(graph) > 50 and "reprotext.lecture.sweep" in graph["reprotext.lecture.report"]
    assert circle(graph) is None, f"import circle: {' -> '.join(circle(graph))}"
