"""The shape of the code base, checked so that it cannot drift back: no import circle
between autojudge's modules, no file over 500 lines, no private name imported from another
package, and no new module at the package root.

Read from the source with `ast` (nothing is imported), so a module whose optional extra is
missing is checked like any other.
"""
from __future__ import annotations

import ast
from pathlib import Path

from helpers import REPO

SRC = REPO / "src"
PACKAGE = SRC / "autojudge"
MAX_LINES = 500

#: Private names imported across packages that a pending change removes; each entry says
#: which. (None left: ray_worker calls the public `stages.isolation.guarded_generate`.)
PRIVATE_IMPORT_EXCEPTIONS: set[tuple[str, str, str]] = set()

#: The package root holds only these: the package itself, `autojudge` / `python -m
#: autojudge`, the types and the error every package shares, and the thin aliases that keep
#: documented `python -m autojudge.X` commands working (their code lives in autojudge.cli).
#: Everything else lives in the package of its responsibility.
ROOT_MODULES = {"__init__", "__main__", "types", "errors"}
COMMAND_ALIASES = {"rate", "gate", "validate", "compare"}
KNOWN_ROOT_MODULES = ROOT_MODULES | COMMAND_ALIASES


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    """The package a module lives in (a package's own __init__ is its package)."""
    return ".".join(path.relative_to(SRC).parts[:-1])


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def absolute(node: ast.ImportFrom, path: Path) -> str:
    """The module a `from ... import` reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = package_of(path).split(".")
    base = base[:len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_time_nodes(body: list[ast.stmt]):
    """The import statements that run when a module is imported: at module level, in
    class bodies and in if/try blocks, but not in functions, and not under TYPE_CHECKING."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not is_type_checking(node):
                yield from import_time_nodes(node.body)
            yield from import_time_nodes(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(handler.body for handler in node.handlers)):
                yield from import_time_nodes(block)
        elif isinstance(node, (ast.ClassDef, ast.With)):
            yield from import_time_nodes(node.body)


def targets(node: ast.Import | ast.ImportFrom, path: Path) -> set[str]:
    """The autojudge modules an import statement loads (`from pkg import mod` loads mod)."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        source = absolute(node, path)
        names = {f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                 for alias in node.names}
    return {name for name in names if name in MODULES}


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = set().union(*(targets(node, path)
                                    for node in import_time_nodes(tree.body))) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_level_import_circle() -> None:
    graph = import_graph()
    assert "autojudge.store.index" in graph["autojudge.store.check"]  # the graph sees real edges
    assert cycles(graph) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_file_over_500_lines() -> None:
    long = {}
    for folder in ("src", "tests", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                long[str(path.relative_to(REPO))] = lines
    assert long == {}, f"split these (at most {MAX_LINES} lines each): {long}"


def private_imports() -> set[tuple[str, str, str]]:
    """(importer, source module, name) for every `from x import _y` (anywhere in a module,
    functions included) where x lives in another package than the importer."""
    found = set()
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = absolute(node, path)
            if source not in MODULES:
                continue
            source_package = source if MODULES[source].name == "__init__.py" \
                else source.rpartition(".")[0]
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and source_package != package_of(path):
                    found.add((name, source, alias.name))
    return found


def test_no_private_name_imported_across_packages() -> None:
    found = private_imports()
    assert found - PRIVATE_IMPORT_EXCEPTIONS == set()
    stale = PRIVATE_IMPORT_EXCEPTIONS - found
    assert not stale, f"{stale} is gone: remove it from PRIVATE_IMPORT_EXCEPTIONS"


def test_no_new_module_at_the_package_root() -> None:
    root = {path.stem for path in PACKAGE.glob("*.py")}
    new = sorted(root - KNOWN_ROOT_MODULES)
    assert not new, (f"new module(s) {new} at the package root: put them in the package of "
                     "their responsibility (src/autojudge/<package>/)")
    gone = sorted(KNOWN_ROOT_MODULES - root)
    assert not gone, f"{gone} left the package root: remove them from KNOWN_ROOT_MODULES"


def test_command_aliases_at_the_root_are_thin() -> None:
    """A root alias only hands over to its command in autojudge.cli, so no logic can
    settle at the root again."""
    for name in COMMAND_ALIASES:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
        imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
        assert [(node.module, [a.name for a in node.names]) for node in imports] == \
            [(f"autojudge.cli.{name}", ["main"])], name
        assert not [node for node in tree.body
                    if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign))], name


def readme_layout() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Layout"):]
    return section[section.index("```") + 3:section.index("```", section.index("```") + 3)]


def test_the_readme_layout_names_every_root_module_package_and_doc() -> None:
    """README's Layout block is checked against the tree, so it cannot go stale: every
    root module (as `name.py`), every subpackage (`name/`) and every module in it (by
    name), every docs page and every test folder appears in it."""
    import re

    layout = readme_layout()
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*/?", layout))
    modules = {f"{p.stem}.py" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    packages = {f"{p.name}/" for p in PACKAGE.iterdir()
                if p.is_dir() and (p / "__init__.py").is_file()}
    inner = {p.stem for p in PACKAGE.glob("*/*.py") if not p.stem.startswith("__")}
    docs = {p.stem for p in (REPO / "docs").glob("*.md")}
    tests = {f"{p.name}/" for p in (REPO / "tests").iterdir()
             if p.is_dir() and not p.name.startswith(("_", "."))}
    missing = sorted((modules | packages | tests | inner) - words) + \
        sorted(d for d in docs if not re.search(rf"\b{re.escape(d)}\b", layout))
    assert not missing, f"README's Layout section does not name {missing}"
