"""The package's import structure: no cycles between its modules (ARCHITECTURE.md's layers).

Every import counts: those at module level, those inside functions and those under
``if TYPE_CHECKING:``. An import of the package's own modules inside a function is allowed only
where its cost requires it (a heavy optional dependency: numba, jwst, romancal, ...), and then the
line says why in a comment (``# deferred: ...``).
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dask_resample"

pytestmark = pytest.mark.core

#: Cycles still present in modules this test does not yet hold to the rule, as sorted module lists;
#: each goes when its modules are reorganised. None is left.
KNOWN_CYCLES: set[tuple[str, ...]] = set()

#: Modules whose imports inside functions have not been reviewed yet (no ``# deferred:`` comment
#: required there for now); every other module's imports inside functions each carry one.
NOT_YET_REVIEWED: set[str] = set()


@dataclass(frozen=True)
class Import:
    """One import of a package module: where it is and whether it runs inside a function."""

    module: str
    target: str
    line: int
    in_function: bool
    commented: bool


def _comment_lines(source: str) -> set[int]:
    """Line numbers that carry a comment other than a bare ``noqa``/``type:`` marker."""
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            # "# noqa: F401  # deferred: ..." is two comments in one token: look past the markers
            parts = [p.strip() for p in tok.string.split("#") if p.strip()]
            if any(not p.startswith(("noqa", "type:")) for p in parts):
                lines.add(tok.start[0])
    return lines


def _imports() -> list[Import]:
    """Every import of a package module, at every depth of the package and of each file's syntax tree."""
    found: list[Import] = []
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        package = parts[:-1]  # the package a module's relative imports start from (an __init__'s own)
        name = ".".join(parts[:-1] if f.name == "__init__.py" else parts)
        source = f.read_text()
        comments = _comment_lines(source)
        tree = ast.parse(source)
        in_function: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                in_function.update(id(n) for n in ast.walk(node) if n is not node)
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    src = [*base, *(node.module.split(".") if node.module else [])]
                elif node.module and node.module.split(".")[0] == PACKAGE.name:
                    src = node.module.split(".")
                else:
                    continue
                if node.module:
                    targets.append(".".join(src))
                # ``from .. import x`` and ``from ..pkg import x``: x when it is a module of the package
                targets.extend(".".join([*src, a.name]) for a in node.names if _is_module([*src, a.name]))
            elif isinstance(node, ast.Import):
                targets.extend(a.name for a in node.names if a.name.split(".")[0] == PACKAGE.name)
            else:
                continue
            lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            found.extend(
                Import(name, t, node.lineno, id(node) in in_function, any(n in comments for n in lines))
                for t in targets
                if t != name
            )
    return found


def _module_imports() -> dict[str, set[str]]:
    """Package-internal imports (all of them, see :func:`_imports`), as ``module -> {imported modules}``."""
    edges: dict[str, set[str]] = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        edges[".".join(parts[:-1] if f.name == "__init__.py" else parts)] = set()
    for imp in _imports():
        edges[imp.module].add(imp.target)
    return edges


def _is_module(parts: list[str]) -> bool:
    path = PACKAGE.parent.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_no_import_cycles_between_modules():
    edges = _module_imports()
    assert "dask_resample.inputs.io" in edges and "dask_resample.inputs.drivers.plain_fits" in edges

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for dep in edges.get(node, ()):
                if dep == start:
                    return [*path, dep]
                if dep not in seen and dep != "dask_resample":
                    seen.add(dep)
                    stack.append((dep, [*path, dep]))
        return None

    cycles = [c for m in edges if m != "dask_resample" and (c := cycle_from(m))]
    cycles = [c for c in cycles if tuple(sorted(set(c))) not in KNOWN_CYCLES]
    assert not cycles, cycles[0]


def test_imports_inside_functions_say_why():
    """A package import inside a function is deferred for its cost, and its line says so."""
    imports = _imports()
    assert any(i.in_function for i in imports) and any(not i.in_function for i in imports)
    silent = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in imports
        if i.in_function and not i.commented and i.module not in NOT_YET_REVIEWED
    ]
    assert not silent, silent


def test_api_and_outliers_do_not_import_each_other():
    edges = _module_imports()
    for name, deps in edges.items():
        if name.startswith("dask_resample.outliers") or name in ("dask_resample.living", "dask_resample.execution.run"):
            assert "dask_resample.api" not in deps, name
    for name in ("dask_resample.planning.plan", "dask_resample.planning.mosaic"):
        assert not {d for d in edges[name] if d.startswith("dask_resample.products")}, name


def test_drivers_and_failures_sit_below_io():
    edges = _module_imports()
    for name in (
        "dask_resample.inputs.failures",
        "dask_resample.inputs.drivers.jwst_model",
        "dask_resample.inputs.drivers.plain_fits",
        "dask_resample.inputs.drivers.in_memory",
        "dask_resample.inputs.drivers._fitsfile",
        "dask_resample.inputs.drivers.roman_model",
    ):
        assert "dask_resample.inputs.io" not in edges[name], name
    assert "dask_resample.execution.graph" not in edges["dask_resample.drizzle.kernel"]


#: ARCHITECTURE.md's layers, bottom to top: a module (or a folder, for the modules in it that are not
#: named) and its layer. A module imports only from its own layer or lower ones (no climb); within a
#: layer the order is the one of the imports (no cycle).
LAYERS: dict[str, int] = {
    "store.location": 1,
    "drizzle.worker_memory": 1,
    "drizzle.fused_kernel": 1,
    "_version": 1,
    "inputs._files": 1,
    "config": 1,
    "dqflags": 1,
    "optional_module": 1,
    "inputs.dqmask": 1,
    "inputs.records": 1,
    "geometry": 1,
    "geometry.grids": 1,
    "geometry.wcs_convert": 1,
    "geometry.wcs_adapter": 1,
    "inputs": 2,
    "params": 2,
    "param_fields": 2,
    "geometry.grid": 3,
    "geometry.skycells": 3,
    "geometry.projection_regions": 3,
    "geometry.pixmap": 3,
    "geometry.pixmap_recognise": 3,
    "geometry.pixmap_program": 3,
    "geometry.pixmap_compiled_head": 3,
    "geometry.pixmap_compiled": 3,
    "geometry.exposure_pixmap": 3,
    "planning": 3,
    "drizzle": 3,
    "store": 3,
    "planning.mosaic": 4,
    "execution": 4,
    "products": 4,
    "cluster": 4,
    "outliers": 5,
    "execution.progress": 5,
    "execution.workers": 5,
    "execution.run": 6,
    "outliers.api": 6,
    "outliers.__init__": 6,
    "living": 6,
    "api": 7,
    "jwst": 8,
    "deferred_resample": 8,
    "roman": 8,
    "cli": 9,
    "testing": 9,
}


def _layer(module: str) -> int:
    parts = module.split(".")[1:]
    if (PACKAGE / Path(*parts) / "__init__.py").is_file() and ".".join([*parts, "__init__"]) in LAYERS:
        return LAYERS[".".join([*parts, "__init__"])]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    raise AssertionError(f"{module}: no layer in LAYERS (tests/test_layers.py) nor in ARCHITECTURE.md")


def test_no_module_imports_from_a_higher_layer():
    imports = [i for i in _imports() if "dask_resample" not in (i.module, i.target)]
    climbs = [
        f"{i.module} (layer {_layer(i.module)}) imports {i.target} (layer {_layer(i.target)}), line {i.line}"
        for i in imports
        if _layer(i.target) > _layer(i.module)
    ]
    assert not climbs, climbs
