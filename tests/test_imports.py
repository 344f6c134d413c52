"""The library's modules import one another without circles."""
from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path


SRC = Path(__file__).resolve().parents[1] / "src"


def modules_of(src: Path) -> dict[str, tuple[Path, bool]]:
    """Every module under ``src``: its dotted name -> (its file, whether it is a package's ``__init__``)."""
    modules: dict[str, tuple[Path, bool]] = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if package else parts)] = (path, package)
    return modules


def imports_of(path: Path, here: str, modules: dict[str, tuple[Path, bool]], module: str = "") -> set[str]:
    """The ``reprotext.*`` modules the file ``path`` imports (anywhere in it, function bodies included).

    ``here`` is the package that relative imports start from. Importing ``a.b.c`` also runs the ``__init__``
    of ``a`` and ``a.b``, so those count too, except the packages of ``module`` itself, which Python has
    started importing before the module (an explicit import of one still counts).
    """
    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

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
    found: set[str] = set()
    for target in filter(None, targets):
        found.add(target)
        while "." in target:
            target = target.rpartition(".")[0]
            if not module.startswith(target + "."):
                found.add(target)
    found.discard(module)
    return found


def import_graph(src: Path) -> dict[str, set[str]]:
    """``reprotext.*`` module -> the ``reprotext.*`` modules it imports (see ``imports_of``)."""
    modules = modules_of(src)
    return {module: imports_of(path, module if package else module.rpartition(".")[0], modules, module)
            for module, (path, package) in modules.items()}


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


# Modules that check, report and log but compute nothing a stage writes: not stage dependencies (a new message
# must not re-run the pipeline). Parameters reach a stage through dvc.yaml's params:, not through config.py.
INFRASTRUCTURE = {"__init__.py", "config.py", "errors.py", "io.py", "stage.py", "tracking.py"}


def test_every_stage_depends_on_the_library_code_it_runs():
    """dvc.yaml lists, for each stage, every file of the library its script imports, directly or not: else
    `dvc repro` would not rerun a stage whose code changed (and `dvc.lock` would not say which code made it)."""
    import re

    import yaml

    root = SRC.parent
    modules, graph = modules_of(SRC), import_graph(SRC)
    stages = {f"{pipeline}:{name}": spec for pipeline in ("dvc.yaml", "retrieval/dvc.yaml")
              for name, spec in yaml.safe_load((root / pipeline).read_text())["stages"].items()}
    missing, checked = {}, 0
    for name, spec in stages.items():
        script = re.match(r"python -m (stages|retrieval)\.(\w+)", spec.get("cmd", ""))
        if not script:
            continue
        script_file = f"{script[1]}/{script[2]}.py"
        deps = [d.rstrip("/") for d in spec.get("deps", [])]
        todo = imports_of(root / script_file, "", modules)
        seen: set[str] = set()
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo |= graph[module]
        files = [script_file] + sorted(str(modules[m][0].relative_to(root)) for m in seen)
        lacking = [f for f in files if not any(f == d or f.startswith(d + "/") for d in deps)
                   and f not in {f"src/reprotext/{m}" for m in INFRASTRUCTURE}]
        if lacking:
            missing[name] = lacking
        checked += 1
    assert checked >= 14
    assert not missing, "dvc.yaml deps lack the code the stages run: " + "; ".join(
        f"{stage}: {', '.join(files)}" for stage, files in missing.items())
