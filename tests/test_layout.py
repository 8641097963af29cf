"""The layout of ``pipelines/`` (docs/architecture.md): few modules at its top, one subpackage per
stage, imports that run one way (down the stages) and never in a circle.

Read from the source with ``ast``, so function-local imports count as much as module-level ones.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipelines"
#: the stages, lowest first: a module may import its own stage and those below it, never above
STAGES = ("base", "data", "masks", "train", "evaluate", "visualize", "demo")
#: the modules directly in pipelines/ and the stage each belongs to (the rest are in subpackages
#: named after their stage)
TOP_LEVEL = {
    "pipelines": "base",
    "pipelines.fame": "base",
    "pipelines.settings": "base",
    "pipelines.atomic_files": "base",
    "pipelines.threads": "base",
    "pipelines.demo": "demo",
    "pipelines.demo_settings": "demo",
}
MAX_TOP_LEVEL = 10
#: what pipelines/ never imports: the CLI and its libraries (progress reaches the CLI by callbacks)
FORBIDDEN = ("fame_cli", "typer", "rich")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def imported(name: str, path: Path, known) -> set[str]:
    """Every module ``name`` imports, anywhere in the file (absolute names; ``from x import y``
    counts as ``x.y`` when that is a module)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for m in imported(name, path, known) if m in known and m != name} for name, path in known.items()}


def stage(name: str) -> str:
    if name in TOP_LEVEL:
        return TOP_LEVEL[name]
    first = name.split(".")[1]
    assert (PACKAGE / first).is_dir(), f"{name}: a module directly in pipelines/ must be listed in TOP_LEVEL"
    assert first in STAGES, f"pipelines/{first}/: a subpackage is named after its stage, one of {STAGES}"
    return first


def test_at_most_ten_modules_directly_in_pipelines():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, top
    assert {module_name(PACKAGE / n) for n in top} == set(TOP_LEVEL)


def test_every_module_belongs_to_a_stage():
    assert all(stage(name) in STAGES for name in modules())


def test_no_import_circle():
    edges = graph()
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(edges[name]):
            assert state.get(target) != "open", "import circle: " + " -> ".join(trail[trail.index(target):] + [target])
            if target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])


def test_imports_run_down_the_stages():
    upward = [
        f"{source} ({stage(source)}) imports {target} ({stage(target)})"
        for source, targets in sorted(graph().items())
        for target in sorted(targets)
        if STAGES.index(stage(target)) > STAGES.index(stage(source))
    ]
    assert not upward, "\n".join(upward)


def test_the_library_never_imports_the_cli():
    known = modules()
    offending = [
        f"{name} imports {m}"
        for name, path in known.items()
        for m in sorted(imported(name, path, known))
        if m.split(".")[0] in FORBIDDEN
    ]
    assert not offending, "\n".join(offending)


def test_each_stage_package_names_its_face_and_imports_nothing():
    for name in STAGES[1:-1]:
        init = PACKAGE / name / "__init__.py"
        tree = ast.parse(init.read_text())
        docstring = ast.get_docstring(tree) or ""
        assert "Its face:" in docstring, f"pipelines/{name}/__init__.py: say which names are its face"
        assert all(isinstance(node, ast.Expr) for node in tree.body), (
            f"pipelines/{name}/__init__.py: no imports (its light modules must stay light)")
