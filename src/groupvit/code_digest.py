"""A hash of the code a job runs, so that a workflow reruns a job exactly when that code changes.

`code_digest(["groupvit.cli:cmd_train"])` follows the job's imports inside the `groupvit` package, transitively
(module-level and function-level imports, and the lazy `_LAZY` exports of package `__init__` files), and hashes
what it reaches: each module's syntax tree without docstrings, and the package-data files (.yaml, .json) beside the
modules it reaches (not the config schema, which only validates). Comments, docstrings and formatting are not part
of a syntax tree, so editing them changes no digest and reruns nothing; any change to what the code does (a
statement, a default, a data file) does.

An entry is a module (`groupvit.report.build`) or one function of a module (`groupvit.cli:cmd_train`): for a
function, only that function, the module-level functions and names it uses, and the imports behind those count,
so the CLI's other commands are not part of a training job's identity.
"""
from __future__ import annotations

import ast
import copy
import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "groupvit"
SRC = Path(__file__).resolve().parent.parent  # the folder that holds the groupvit package
DATA_SUFFIXES = (".yaml", ".json")
# Package data that only validates or documents a config: editing it changes nothing a job computes.
NOT_BEHAVIOUR = ("config.schema.yaml",)


def code_digest(entries: Iterable[str], src: Path = SRC) -> str:
    """16 hex digits identifying the code reached from `entries` (see the module docstring)."""
    reached: dict[Path, str] = {}
    for entry in entries:
        module, _, function = entry.partition(":")
        _visit(module, src, reached, function or None)
    data = {p for path in list(reached) for p in path.parent.iterdir()
            if p.suffix in DATA_SUFFIXES and p.name not in NOT_BEHAVIOUR}
    for path in data:
        reached[path] = path.read_bytes().hex()
    digest = hashlib.sha256()
    for path in sorted(reached):
        digest.update(f"{path.relative_to(src)}\0{reached[path]}\0".encode())
    return digest.hexdigest()[:16]


def module_path(module: str, src: Path = SRC) -> Path | None:
    """The file of a `groupvit` module (a package's `__init__.py`), or None when there is none."""
    base = src.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _visit(module: str, src: Path, reached: dict[Path, str], function: str | None = None) -> None:
    path = module_path(module, src)
    if path is None:
        return
    key = path if function is None else path.with_name(f"{path.name}:{function}")
    if key in reached:
        return
    tree = _parse(path)
    nodes = _function_closure(tree, function) if function else [tree]
    reached[key] = "\n".join(ast.dump(_strip_docstrings(node)) for node in nodes)
    parts = module.split(".")
    for i in range(1, len(parts)):  # importing a module runs its parent packages' __init__ first
        _visit(".".join(parts[:i]), src, reached)
    is_package = path.name == "__init__.py"
    for target in _imports(nodes, module, is_package, src):
        _visit(target, src, reached)


def _imports(nodes: list[ast.AST], module: str, is_package: bool, src: Path) -> set[str]:
    """The `groupvit` modules imported anywhere in `nodes` (a `from X import name` counts `X.name` when it is a
    submodule or a lazy export of package X)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in (n for root in nodes for n in ast.walk(root)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if _ours(alias.name)}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if not _ours(base):
                continue
            found.add(base)
            lazy = _lazy_exports(base, src)
            for alias in node.names:
                if module_path(f"{base}.{alias.name}", src):
                    found.add(f"{base}.{alias.name}")
                elif alias.name in lazy:
                    found.add(f"{base}.{lazy[alias.name]}")
    return found


def notebook_entries(notebook: Path) -> list[str]:
    """The `groupvit` modules a Jupyter notebook's code cells import (IPython magics and shell lines skipped)."""
    trees = []
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines()
        code = "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))
        try:
            trees.append(ast.parse(code))
        except SyntaxError as err:
            raise ValueError(f"{notebook}: code cell {index} is not valid Python ({err.msg}, line {err.lineno})") from None
    return sorted(_imports(trees, "__notebook__", False, SRC))


def _parse(path: Path) -> ast.Module:
    stat = path.stat()
    return _parse_version(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=None)
def _parse_version(path: Path, mtime_ns: int, size: int) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _lazy_exports(package: str, src: Path) -> dict[str, str]:
    """A package's `_LAZY = {name: submodule}` (groupvit.lazy), read from its syntax tree."""
    path = module_path(package, src)
    if path is None or path.name != "__init__.py":
        return {}
    for node in _parse(path).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def _function_closure(tree: ast.Module, function: str) -> list[ast.AST]:
    """The named top-level function, the top-level functions/assignments it uses (transitively) and the module-level
    imports that bind names it uses."""
    defined: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update({t.id: node for t in targets if isinstance(t, ast.Name)})
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                defined[(alias.asname or alias.name).split(".")[0]] = node
    if function not in defined:
        raise KeyError(f"code_digest: no top-level function {function!r}")
    chosen: list[ast.AST] = []
    todo = [defined[function]]
    while todo:
        node = todo.pop()
        if any(node is c for c in chosen):
            continue
        chosen.append(node)
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        todo += [defined[n] for n in names if n in defined]
    order = {id(n): i for i, n in enumerate(tree.body)}
    return sorted(chosen, key=lambda n: order[id(n)])


def _strip_docstrings(node: ast.AST) -> ast.AST:
    """A copy of `node` without docstrings (documentation is not behaviour)."""
    node = copy.deepcopy(node)
    for n in ast.walk(node):
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body:
            first = n.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
                    and isinstance(first.value.value, str):
                n.body = n.body[1:] or [ast.Pass()]
    return node
